// What cachenat reads of the kernel: the nat and filter tables of one
// `iptables-save`. Every reader (a daemon pass, flush, health) goes through here.

import type { InstalledRules } from './diff.js';
import { parseSaveAll, type SavedTable } from './parse-save.js';

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
