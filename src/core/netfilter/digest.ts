// Lets health compare what is installed with what the daemon last applied,
// without either side holding the other's full text.

import { createHash } from 'node:crypto';
import { jumpSpec, type InstalledRules } from './diff.js';
import type { DesiredRules } from './render.js';
import { JUMPS, OWNED_CHAINS, type Table } from './types.js';

const TABLES: readonly Table[] = ['nat', 'filter'];

/** sha256 (hex) of the rules, independent of key order in the objects. */
export function digestRules(rules: DesiredRules): string {
  const stable = TABLES.map((table) =>
    Object.keys(rules[table])
      .sort()
      .map((chain) => [chain, rules[table][chain]]),
  );
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex');
}

/** The owned chains as installed; a missing chain is absent, so it never digests like an empty one. */
export function installedOwnedRules(installed: InstalledRules): DesiredRules {
  const owned = (table: Table): Record<string, string[]> => {
    const chains: Record<string, string[]> = {};
    for (const chain of OWNED_CHAINS[table]) {
      const saved = installed[table].chains.get(chain);
      if (saved) chains[chain] = [...saved.rules];
    }
    return chains;
  };
  return { nat: owned('nat'), filter: owned('filter') };
}

/** Jumps from built-in chains into owned chains that are not installed, as `FROM -> TO`. */
export function missingJumps(installed: InstalledRules): string[] {
  return JUMPS.filter(({ table, from, to }) => !installed[table].chains.get(from)?.rules.includes(`-A ${from} ${jumpSpec(to)}`)).map(
    ({ from, to }) => `${from} -> ${to}`,
  );
}
