// The two kernel reads and writes every command shares: "read both tables"
// and "flush what we own". The pure halves are installedFromSave and renderFlush.

import type { InstalledRules } from '../core/netfilter/diff.js';
import { renderFlush } from '../core/netfilter/diff.js';
import { installedFromSave, withoutCounters } from '../core/netfilter/installed.js';
import type { Netfilter } from '../core/netfilter/types.js';
import { dnatPacketCounts, type DnatPackets } from '../core/metrics/rule-counters.js';

/** Both tables from one `iptables-save`: each spawn costs more than parsing. */
export async function readInstalledRules(netfilter: Pick<Netfilter, 'saveAll'>): Promise<InstalledRules> {
  return installedFromSave(await netfilter.saveAll());
}

export interface CountedRead {
  installed: InstalledRules;
  dnatPackets: DnatPackets;
  /** The text read, counters left out: two reads with the same rules have the same text. */
  rules: string;
}

/**
 * The same one read with `-c`: the DNAT rules' packet counters come along for
 * the metrics; the diff ignores them. When the rules are those of `last`
 * (counters aside), last's parsed tables are returned as they are, not parsed
 * again: at 1000 forwards parsing is most of a quiet pass after the read.
 */
export async function readInstalledRulesCounted(netfilter: Pick<Netfilter, 'saveAll'>, last?: CountedRead): Promise<CountedRead> {
  const text = await netfilter.saveAll({ counters: true });
  const rules = withoutCounters(text);
  const installed = last !== undefined && last.rules === rules ? last.installed : installedFromSave(text);
  return { installed, dnatPackets: dnatPacketCounts(text), rules };
}

/**
 * Removes every CACHENAT-* chain and every jump into one, in one
 * `iptables-restore --noflush`; nothing else. Returns the restore input it
 * wrote, or null when nothing of cachenat's was installed.
 */
export async function flushOwnedRules(netfilter: Pick<Netfilter, 'saveAll' | 'restore'>): Promise<string | null> {
  const restore = renderFlush(await readInstalledRules(netfilter));
  if (restore !== null) await netfilter.restore(restore);
  return restore;
}
