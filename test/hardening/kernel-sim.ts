// A strict model of `iptables-restore --noflush` on parsed tables, so the pure
// core can be checked against "what the kernel would hold" thousands of times
// without a namespace. Strict on purpose: whatever a real kernel would refuse
// (deleting a rule that is not there, a chain still referenced or non-empty,
// a rule for an undeclared chain) throws here too.

import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import type { SavedTable } from '../../src/core/netfilter/parse-save.js';

const clone = (table: SavedTable): SavedTable => ({
  chains: new Map([...table.chains].map(([name, chain]) => [name, { policy: chain.policy, rules: [...chain.rules] }])),
});

/** The installed rules after one restore of `text`; the input is left as it was. */
export function applyRestore(installed: InstalledRules, text: string | null): InstalledRules {
  const next: InstalledRules = { nat: clone(installed.nat), filter: clone(installed.filter) };
  if (text === null) return next;
  let table: SavedTable | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line === '*nat' || line === '*filter') {
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
    const [, op, chainName, rest = ''] = words;
    const chain = table.chains.get(chainName!);
    if (!chain) throw new Error(`restore: ${op} on missing chain ${chainName}`);
    if (op === '-A') chain.rules.push(`-A ${chainName} ${rest}`);
    else if (op === '-I') {
      const insert = /^1 (.*)$/.exec(rest);
      if (!insert) throw new Error(`restore: only inserts at 1 are modelled: ${line}`);
      chain.rules.unshift(`-A ${chainName} ${insert[1]}`);
    } else if (op === '-D') {
      const index = chain.rules.indexOf(`-A ${chainName} ${rest}`);
      if (index < 0) throw new Error(`restore: -D of a rule that is not there: ${line}`);
      chain.rules.splice(index, 1);
    } else {
      if (chain.rules.length > 0) throw new Error(`restore: -X of non-empty chain ${chainName}`);
      for (const [other, { rules }] of table.chains) {
        if (rules.some((r) => r.endsWith(` -j ${chainName}`) || r.endsWith(` -g ${chainName}`))) {
          throw new Error(`restore: -X ${chainName} while ${other} still jumps to it`);
        }
      }
      table.chains.delete(chainName!);
    }
  }
  if (table) throw new Error('restore: missing COMMIT');
  return next;
}

/** Built-in chains as a fresh namespace has them. */
export function emptyKernel(): InstalledRules {
  const table = (names: string[]): SavedTable => ({ chains: new Map(names.map((n) => [n, { policy: 'ACCEPT', rules: [] }])) });
  return { nat: table(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']), filter: table(['INPUT', 'FORWARD', 'OUTPUT']) };
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
