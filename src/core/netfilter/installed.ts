// What cachenat reads of the kernel: the nat and filter tables of one
// `iptables-save`. Every reader (a daemon pass, flush, health) goes through here.

import type { InstalledRules } from './diff.js';
import { parseSaveAll, type SavedChain, type SavedTable } from './parse-save.js';

const BUILT_IN_CHAINS = {
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
} as const;

// iptables-legacy-save without -t lists only the tables already loaded; a
// table that is not loaded holds its empty built-in chains.
const unloaded = (names: readonly string[]): SavedTable => ({ chains: new Map(names.map((name) => [name, { policy: 'ACCEPT', rules: [] }])) });

/** Built-in chains as a fresh network namespace has them. */
export const emptyInstalledRules = (): InstalledRules => ({ nat: unloaded(BUILT_IN_CHAINS.nat), filter: unloaded(BUILT_IN_CHAINS.filter) });

/** The nat and filter tables of an `iptables-save` text of every table. */
export function installedFromSave(text: string): InstalledRules {
  const tables = parseSaveAll(text);
  return { nat: tables.get('nat') ?? unloaded(BUILT_IN_CHAINS.nat), filter: tables.get('filter') ?? unloaded(BUILT_IN_CHAINS.filter) };
}

/**
 * Whether two reads show the same rules, packet counters aside: the same
 * chains of both tables in the same order, each with the same policy and the
 * same lines. A plan made from one is then the plan of the other.
 */
export function sameInstalledRules(a: InstalledRules, b: InstalledRules): boolean {
  if (a === b) return true;
  return sameTable(a.nat, b.nat) && sameTable(a.filter, b.filter);
}

function sameTable(a: SavedTable, b: SavedTable): boolean {
  if (a.chains.size !== b.chains.size) return false;
  const others = b.chains.entries();
  for (const [name, chain] of a.chains) {
    const [otherName, other] = others.next().value as [string, SavedChain];
    if (name !== otherName || chain.policy !== other.policy || chain.rules.length !== other.rules.length) return false;
    for (let i = 0; i < chain.rules.length; i++) if (chain.rules[i] !== other.rules[i]) return false;
  }
  return true;
}

// `[packets:bytes]` at the start of a rule line and at the end of a chain line
// (a rule line never ends in one: a comment that does is printed in quotes).
const RULE_COUNTERS = /^\[\d+:\d+\] /gm;
const CHAIN_COUNTERS = / \[\d+:\d+\]$/gm;
const COMMENT_LINES = /^#.*$/gm;

/**
 * An `iptables-save` text without its packet counters and its comment lines
 * (they carry the time of the save): equal for two reads of the same rules.
 */
export function withoutCounters(text: string): string {
  return text.replace(RULE_COUNTERS, '').replace(CHAIN_COUNTERS, '').replace(COMMENT_LINES, '');
}
