// Active connections per forward from `conntrack -L` output: the flows that
// carry cachenat's connmark bit, grouped by their original destination port
// (the forward's listen port).

/** TCP states of a connection that is over but still remembered by conntrack. */
const CLOSED_STATES = new Set(['TIME_WAIT', 'CLOSE']);

/**
 * Counts open TCP connections by original destination port. Lines that do not
 * read as a TCP entry are skipped (the tool prints a summary line on stderr,
 * but an unexpected line must not count).
 */
export function activeConnectionsByPort(listing: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of listing.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // tcp 6 <timeout> <STATE> src=… dst=… sport=… dport=… (original direction first)
    if (fields[0] !== 'tcp' || fields.length < 8) continue;
    const state = fields[3]!;
    if (!/^[A-Z_]+$/.test(state) || CLOSED_STATES.has(state)) continue;
    const dport = fields.find((f) => f.startsWith('dport='));
    const port = Number(dport?.slice('dport='.length));
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    counts.set(port, (counts.get(port) ?? 0) + 1);
  }
  return counts;
}
