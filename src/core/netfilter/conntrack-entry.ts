// One entry as the conntrack tool prints it (`-L`, and `-D`, which prints each
// entry it deletes): `tcp 6 <timeout> <STATE> src=… dst=… sport=… dport=… …`,
// the original direction first. Pure; shared by the open-connection counts
// and the audit's flush notes, so the format is read in one place.

import { isIpv4 } from '../ipv4.js';

/** One direction of a conntrack entry. */
export interface FlowTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface ConntrackEntry {
  /** conntrack's TCP state name, e.g. ESTABLISHED. */
  state: string;
  /** The original direction: the client and the address and port it dialled. */
  orig: FlowTuple;
}

const value = (fields: readonly string[], key: string): string | undefined => fields.find((f) => f.startsWith(`${key}=`))?.slice(key.length + 1);

/** A TCP entry's state and original tuple, or undefined for any other line (a summary, UDP, a malformed entry). */
export function parseConntrackEntry(line: string): ConntrackEntry | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== 'tcp' || fields.length < 8) return undefined;
  const state = fields[3]!;
  if (!/^[A-Z_0-9]+$/.test(state)) return undefined;
  // The first src=, dst=, sport= and dport= are the original direction's.
  const src = value(fields, 'src') ?? '';
  const dst = value(fields, 'dst') ?? '';
  const sport = Number(value(fields, 'sport'));
  const dport = Number(value(fields, 'dport'));
  const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (!isIpv4(src) || !isIpv4(dst) || !isPort(sport) || !isPort(dport)) return undefined;
  return { state, orig: { src, dst, sport, dport } };
}

/** Every TCP entry of a listing. */
export const parseConntrackEntries = (listing: string): ConntrackEntry[] => listing.split('\n').flatMap((line) => parseConntrackEntry(line) ?? []);
