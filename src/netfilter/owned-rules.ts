// The two kernel reads and writes every command shares: "read both tables"
// and "flush what we own". The pure halves are installedFromSave and renderFlush.

import type { InstalledRules } from '../core/netfilter/diff.js';
import { renderFlush } from '../core/netfilter/diff.js';
import { installedFromSave } from '../core/netfilter/installed.js';
import type { Netfilter } from '../core/netfilter/types.js';
import { dnatPacketCounts, type DnatPackets } from '../core/metrics/rule-counters.js';

/** Both tables from one `iptables-save`: each spawn costs more than parsing. */
export async function readInstalledRules(netfilter: Pick<Netfilter, 'saveAll'>): Promise<InstalledRules> {
  return installedFromSave(await netfilter.saveAll());
}

/** The same one read with `-c`: the DNAT rules' packet counters come along for the metrics; the diff ignores them. */
export async function readInstalledRulesCounted(netfilter: Pick<Netfilter, 'saveAll'>): Promise<{ installed: InstalledRules; dnatPackets: DnatPackets }> {
  const text = await netfilter.saveAll({ counters: true });
  return { installed: installedFromSave(text), dnatPackets: dnatPacketCounts(text) };
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
