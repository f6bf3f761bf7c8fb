// Active connections per forward from `conntrack -L` output: the flows that
// carry cachenat's connmark bit, grouped by their original destination
// address and port (the forward's listener: its port in port mode, its own
// address and port in address mode).

import { parseConntrackEntries } from '../netfilter/conntrack-entry.js';

/** TCP states of a connection that is over but still remembered by conntrack. */
const CLOSED_STATES = new Set(['TIME_WAIT', 'CLOSE']);

/** Open connections by original destination, keyed "address:port". */
export type OpenConnections = ReadonlyMap<string, number>;

/**
 * Counts open TCP connections by original destination address and port. Lines
 * that do not read as a TCP entry are skipped (the tool prints a summary line
 * on stderr, but an unexpected line must not count).
 */
export function activeConnectionsByDestination(listing: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { state, orig } of parseConntrackEntries(listing)) {
    if (CLOSED_STATES.has(state)) continue;
    // The original destination: the address and port the client dialled.
    const key = `${orig.dst}:${orig.dport}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** A forward's open connections: on its own address and port, or on its port at any address (port mode). */
export function openConnectionsOf(open: OpenConnections): (listener: { listenAddress?: string; listenPort: number }) => number {
  const byPort = new Map<number, number>();
  for (const [destination, count] of open) {
    const port = Number(destination.slice(destination.lastIndexOf(':') + 1));
    byPort.set(port, (byPort.get(port) ?? 0) + count);
  }
  return (l) => (l.listenAddress === undefined ? byPort.get(l.listenPort) : open.get(`${l.listenAddress}:${l.listenPort}`)) ?? 0;
}
