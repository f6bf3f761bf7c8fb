// Computes the one `iptables-restore --noflush` input that turns what is
// installed into what is desired, touching nothing that is not cachenat's.
//
// What cachenat may write:
//   - its own chains (CACHENAT-*): rewritten whole when they differ
//     (`:CHAIN - [0:0]` empties just that chain in noflush mode);
//   - in built-in chains, only the exact jump lines of JUMPS, inserted at the
//     top when missing and deleted when duplicated or stray;
//   - leftover CACHENAT-* chains (from an older version): emptied and deleted,
//     unless a rule cachenat does not own still jumps to them.

import type { DesiredRules } from './render.js';
import type { SavedTable } from './parse-save.js';
import { CHAIN_PREFIX, JUMPS, OWNER_COMMENT, type Table } from './types.js';

export interface InstalledRules {
  nat: SavedTable;
  filter: SavedTable;
}

export interface RuleChanges {
  /** Input for one `iptables-restore --noflush`, or null when nothing differs. */
  restore: string | null;
  /** Owned chains created or rewritten. */
  chainsWritten: string[];
  /** Jumps inserted, as `FROM -> TO`. */
  jumpsAdded: string[];
  /** Duplicate or stray jump lines deleted. */
  jumpsRemoved: number;
  /** Leftover CACHENAT-* chains deleted. */
  chainsDeleted: string[];
  /** Leftover CACHENAT-* chains left in place because a rule cachenat does not own jumps to them. */
  leftoversKept: string[];
}

const TABLES: readonly Table[] = ['nat', 'filter'];

/** The rule spec by which a built-in chain hands packets to an owned chain. */
export const jumpSpec = (to: string): string => `-m comment --comment ${OWNER_COMMENT} -j ${to}`;

const JUMP_LINE = new RegExp(`^-A (\\S+) -m comment --comment ${OWNER_COMMENT} -j (${CHAIN_PREFIX}\\S+)$`);
// A rule's words as iptables-save prints them: a word with spaces is quoted,
// with `\"` and `\\` escaped inside. The target comes from the first unquoted
// `-j`/`-g`, so a comment that reads like a jump is not taken for one.
const WORD = /"((?:[^"\\]|\\.)*)"|(\S+)/g;

const isOurs = (chain: string): boolean => chain.startsWith(CHAIN_PREFIX);
const isBuiltIn = (policy: string): boolean => policy !== '-';

function targetOf(rule: string): string | undefined {
  let jumpNext = false;
  for (const [, quoted, plain] of rule.matchAll(WORD)) {
    if (jumpNext) return plain ?? quoted;
    jumpNext = plain === '-j' || plain === '-g';
  }
  return undefined;
}

interface TablePlan {
  declare: string[];
  append: string[];
  remove: string[];
  insert: string[];
  drop: string[];
  written: string[];
  jumpsAdded: string[];
  deleted: string[];
  kept: string[];
}

/**
 * Plans one table. `wanted` are the jumps that must exist once; with
 * `removeAllJumps`, every built-in rule that jumps into a CACHENAT-* chain
 * goes (that is `flush`).
 */
function planTable(
  desired: Record<string, string[]>,
  saved: SavedTable,
  wanted: readonly { from: string; to: string }[],
  removeAllJumps: boolean,
): TablePlan {
  const plan: TablePlan = { declare: [], append: [], remove: [], insert: [], drop: [], written: [], jumpsAdded: [], deleted: [], kept: [] };

  for (const [chain, lines] of Object.entries(desired)) {
    if (!isOurs(chain)) throw new Error(`refusing to write chain ${chain}: cachenat only writes chains named ${CHAIN_PREFIX}*`);
    const bad = lines.find((line) => !line.startsWith(`-A ${chain} `));
    if (bad !== undefined) throw new Error(`refusing to write ${JSON.stringify(bad)} into chain ${chain}`);
  }

  // A jump is only wanted into a chain that stays; any other goes with its chain.
  const jumps = wanted.filter(({ to }) => to in desired);

  // Rules cachenat does not own that jump into a CACHENAT-* chain pin it.
  const pinned = new Set<string>();
  const seenJumps = new Set<string>();
  for (const [chain, { policy, rules }] of saved.chains) {
    if (isOurs(chain)) continue;
    for (const rule of rules) {
      const target = targetOf(rule);
      if (target === undefined || !isOurs(target)) continue;
      const jump = JUMP_LINE.exec(rule);
      const isWanted = jump !== null && jumps.some((j) => j.from === chain && j.to === jump[2]);
      if (isBuiltIn(policy) && isWanted && !seenJumps.has(rule)) {
        seenJumps.add(rule);
      } else if (isBuiltIn(policy) && (jump !== null || removeAllJumps)) {
        plan.remove.push(`-D ${chain}${rule.slice(`-A ${chain}`.length)}`);
      } else {
        pinned.add(target);
      }
    }
  }

  for (const { from, to } of jumps) {
    if (!seenJumps.has(`-A ${from} ${jumpSpec(to)}`)) {
      plan.insert.push(`-I ${from} 1 ${jumpSpec(to)}`);
      plan.jumpsAdded.push(`${from} -> ${to}`);
    }
  }

  for (const [chain, lines] of Object.entries(desired)) {
    const installed = saved.chains.get(chain)?.rules;
    if (installed && installed.length === lines.length && installed.every((line, i) => line === lines[i])) continue;
    plan.declare.push(`:${chain} - [0:0]`);
    plan.append.push(...lines);
    plan.written.push(chain);
  }

  // A pinned leftover keeps every leftover it jumps to, too.
  const leftovers = [...saved.chains.keys()].filter((chain) => isOurs(chain) && !(chain in desired));
  const queue = [...pinned];
  for (let chain = queue.pop(); chain !== undefined; chain = queue.pop()) {
    for (const rule of saved.chains.get(chain)?.rules ?? []) {
      const target = targetOf(rule);
      if (target !== undefined && isOurs(target) && !pinned.has(target)) {
        pinned.add(target);
        queue.push(target);
      }
    }
  }
  for (const chain of leftovers) {
    if (pinned.has(chain)) {
      plan.kept.push(chain);
      continue;
    }
    plan.declare.push(`:${chain} - [0:0]`);
    plan.drop.push(`-X ${chain}`);
    plan.deleted.push(chain);
  }
  return plan;
}

function assemble(plans: Map<Table, TablePlan>): RuleChanges {
  const changes: RuleChanges = { restore: null, chainsWritten: [], jumpsAdded: [], jumpsRemoved: 0, chainsDeleted: [], leftoversKept: [] };
  let restore = '';
  for (const [table, plan] of plans) {
    // Chains exist (and are filled) before anything jumps to them; jumps are
    // gone before a chain is deleted.
    const lines = [...plan.declare, ...plan.append, ...plan.remove, ...plan.insert, ...plan.drop];
    if (lines.length > 0) restore += `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
    changes.chainsWritten.push(...plan.written);
    changes.jumpsAdded.push(...plan.jumpsAdded);
    changes.jumpsRemoved += plan.remove.length;
    changes.chainsDeleted.push(...plan.deleted);
    changes.leftoversKept.push(...plan.kept);
  }
  changes.restore = restore === '' ? null : restore;
  return changes;
}

export function diffRules(desired: DesiredRules, installed: InstalledRules): RuleChanges {
  const plans = new Map<Table, TablePlan>();
  for (const table of TABLES) {
    const wanted = JUMPS.filter((j) => j.table === table);
    plans.set(table, planTable(desired[table], installed[table], wanted, false));
  }
  return assemble(plans);
}

/** Restore text that removes every jump into CACHENAT-* chains from built-in chains and deletes those chains; null when there are none. */
export function renderFlush(installed: InstalledRules): string | null {
  const plans = new Map<Table, TablePlan>();
  for (const table of TABLES) plans.set(table, planTable({}, installed[table], [], true));
  return assemble(plans).restore;
}
