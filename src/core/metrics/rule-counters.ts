// Per-forward packet counters from `iptables-save -c`. A DNAT rule only sees
// the first packet of each connection (conntrack handles the rest), so its
// packet counter is the number of connections it forwarded: a new-connections
// counter per forward at no extra cost, read from the pass's one kernel read.

import { DNAT_RULE_PATTERN } from '../grammar.js';

/** `listenPort key` → packets, for every owned DNAT rule in the text. */
export type DnatPackets = Map<string, number>;

export const forwardId = (listenPort: number, key: string): string => `${listenPort} ${key}`;

// One scan of the whole text (multiline): at 1000 forwards cheaper than splitting it into lines first.
const COUNTED_DNAT_LINES = new RegExp(`^\\[(\\d+):\\d+\\] ${DNAT_RULE_PATTERN}$`, 'gm');

/** Reads the DNAT rules' packet counters; text saved without `-c` simply yields none. */
export function dnatPacketCounts(saveText: string): DnatPackets {
  const counts: DnatPackets = new Map();
  const complete = new Set<string>();
  for (const match of saveText.matchAll(COUNTED_DNAT_LINES)) {
    const line = match[0];
    const id = forwardId(Number(match[3]), match[5]!);
    // A name with several addresses has one rule per address, each counting
    // the connections it took: they add up. The first rule without a
    // statistic match takes everything left, so rules behind it are ignored.
    if (complete.has(id)) continue;
    counts.set(id, (counts.get(id) ?? 0) + Number(match[1]));
    if (!line.includes(' -m statistic ')) complete.add(id);
  }
  return counts;
}

/** Running totals since the daemon started, carried across kernel counter resets. */
export interface NewConnectionTotals {
  /** Kernel counter at the last read, per forward. */
  lastSeen: ReadonlyMap<string, number>;
  /** Connections counted since the daemon started, per forward. */
  totals: ReadonlyMap<string, number>;
}

export const emptyTotals = (): NewConnectionTotals => ({ lastSeen: new Map(), totals: new Map() });

/**
 * Folds one read of the counters into the totals. A forward's first read is
 * its baseline (what came before the daemon is not counted). When the DNAT
 * chain was rewritten since the previous read, its counters restarted at zero,
 * so the whole value read is new; a counter that went down without us writing
 * (someone flushed the chain) is treated the same way. Forwards no longer in
 * the kernel are dropped.
 */
export function foldDnatPackets(previous: NewConnectionTotals, read: DnatPackets, chainRewritten: boolean): NewConnectionTotals {
  const lastSeen = new Map<string, number>();
  const totals = new Map<string, number>();
  for (const [id, packets] of read) {
    const before = previous.lastSeen.get(id);
    const total = previous.totals.get(id) ?? 0;
    let added: number;
    if (before === undefined) added = chainRewritten ? packets : 0;
    else added = chainRewritten || packets < before ? packets : packets - before;
    lastSeen.set(id, packets);
    totals.set(id, total + added);
  }
  return { lastSeen, totals };
}
