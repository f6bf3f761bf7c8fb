// The one in-memory netfilter of the tests: a strict model of
// `iptables-restore --noflush` on parsed tables, so the pure core can be
// checked against "what the kernel would hold" thousands of times without a
// namespace. Strict on purpose: whatever a real kernel refuses throws here too
// (a rule for an undeclared chain, a jump to a chain that does not exist,
// deleting a rule that is not there, deleting a chain that is not empty or
// still jumped to, a line outside a table, a missing COMMIT).

import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import { emptyInstalledRules, installedFromSave } from '../../src/core/netfilter/installed.js';
import type { SavedTable } from '../../src/core/netfilter/parse-save.js';
import type { Netfilter, Table } from '../../src/core/netfilter/types.js';

export type { InstalledRules };

/** Built-in chains as a fresh namespace has them. */
export const emptyKernel = emptyInstalledRules;

/** Both tables of an iptables-save text, read the way cachenat reads them. */
export const installedFrom = installedFromSave;

// Targets that are extensions, not chains; any other target must be a chain of the table.
const EXTENSION_TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'LOG', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'CONNMARK', 'MARK', 'NOTRACK']);

const clone = (table: SavedTable): SavedTable => ({
  chains: new Map([...table.chains].map(([name, chain]) => [name, { policy: chain.policy, rules: [...chain.rules] }])),
});

const jumpTarget = (rule: string): string | undefined => /(?:^| )-[jg] (\S+)/.exec(rule)?.[1];

/** The installed rules after one restore of `text` (null: nothing written); the input is left as it was. */
export function applyRestore(installed: InstalledRules, text: string | null): InstalledRules {
  const next: InstalledRules = { nat: clone(installed.nat), filter: clone(installed.filter) };
  if (text === null) return next;
  let table: SavedTable | undefined;
  const chainOf = (name: string, line: string) => {
    const chain = table!.chains.get(name);
    if (!chain) throw new Error(`restore: chain ${name} does not exist: ${line}`);
    return chain;
  };
  const checkTarget = (rule: string, line: string) => {
    const target = jumpTarget(rule);
    if (target !== undefined && !EXTENSION_TARGETS.has(target)) chainOf(target, line);
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line === '*nat' || line === '*filter') {
      if (table) throw new Error(`restore: ${line} before the previous table's COMMIT`);
      table = next[line.slice(1) as 'nat' | 'filter'];
      continue;
    }
    if (!table) throw new Error(`restore: ${JSON.stringify(line)} outside a table`);
    if (line === 'COMMIT') {
      table = undefined;
      continue;
    }
    const declared = /^:(\S+) - \[0:0\]$/.exec(line);
    if (declared) {
      const name = declared[1]!;
      const existing = table.chains.get(name);
      // --noflush: declaring a chain creates it, or empties it when it exists.
      if (existing) existing.rules = [];
      else table.chains.set(name, { policy: '-', rules: [] });
      continue;
    }
    const words = /^(-A|-D|-I|-X) (\S+)(?: (.*))?$/.exec(line);
    if (!words) throw new Error(`restore: cannot read ${JSON.stringify(line)}`);
    const [, op, chainName = '', rest = ''] = words;
    const chain = chainOf(chainName, line);
    if (op === '-A') {
      checkTarget(rest, line);
      chain.rules.push(`-A ${chainName} ${rest}`);
    } else if (op === '-I') {
      const insert = /^(\d+) (.*)$/.exec(rest);
      if (!insert) throw new Error(`restore: -I needs a position: ${line}`);
      const position = Number(insert[1]);
      if (position < 1 || position > chain.rules.length + 1) throw new Error(`restore: index of insertion too big: ${line}`);
      checkTarget(insert[2]!, line);
      chain.rules.splice(position - 1, 0, `-A ${chainName} ${insert[2]}`);
    } else if (op === '-D') {
      const index = chain.rules.indexOf(`-A ${chainName} ${rest}`);
      if (index < 0) throw new Error(`restore: -D of a rule that is not there: ${line}`);
      chain.rules.splice(index, 1);
    } else {
      if (chain.rules.length > 0) throw new Error(`restore: -X of non-empty chain ${chainName}`);
      for (const [other, { rules }] of table.chains) {
        if (rules.some((r) => jumpTarget(r) === chainName)) throw new Error(`restore: -X ${chainName} while ${other} still jumps to it`);
      }
      table.chains.delete(chainName);
    }
  }
  if (table) throw new Error('restore: missing COMMIT');
  return next;
}

/** Every rule line, table-qualified, for comparisons. */
export function ruleLines(installed: InstalledRules): string[] {
  const lines: string[] = [];
  for (const name of ['nat', 'filter'] as const) {
    for (const [chain, { rules }] of installed[name].chains) {
      lines.push(`*${name} :${chain}`);
      for (const rule of rules) lines.push(`*${name} ${rule}`);
    }
  }
  return lines;
}

/**
 * What `iptables-save` prints for these tables (all of them, or one with `-t`).
 * With `packets` (listen port → count), rules carry `iptables-save -c`
 * counters: a DNAT rule gets its port's count, every other rule 0.
 */
export function saveText(installed: InstalledRules, table?: 'nat' | 'filter', packets?: Map<number, number>): string {
  const counted = (rule: string) => (packets ? `[${packets.get(Number(/--dport (\d+) .* -j DNAT /.exec(rule)?.[1])) ?? 0}:0] ${rule}` : rule);
  const lines: string[] = [];
  for (const name of table === undefined ? (['nat', 'filter'] as const) : [table]) {
    lines.push(`*${name}`);
    for (const [chain, { policy }] of installed[name].chains) lines.push(`:${chain} ${policy} [0:0]`);
    for (const { rules } of installed[name].chains.values()) lines.push(...rules.map(counted));
    lines.push('COMMIT');
  }
  return `${lines.join('\n')}\n`;
}

/** A Netfilter backed by the simulator: restores that the kernel would refuse throw, and change nothing. */
export class SimulatedNetfilter implements Netfilter {
  readonly restores: string[] = [];

  constructor(public kernel: InstalledRules = emptyKernel()) {}

  async save(table: Table): Promise<string> {
    return saveText(this.kernel, table);
  }

  async saveAll(): Promise<string> {
    return saveText(this.kernel);
  }

  async restore(text: string): Promise<void> {
    this.kernel = applyRestore(this.kernel, text);
    this.restores.push(text);
  }
}
