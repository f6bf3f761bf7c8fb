// The port map as text: the one schema every copy of it passes through on
// the way in (the state file in state.dir, the HA map item in DynamoDB), and
// the one byte-stable way to write it. Pure. Whatever reads a map from outside
// the process treats it as untrusted: anything that does not validate is
// reported as corrupt, never half-used.

import { z } from 'zod';
import { targetAddressProblem } from '../ipv4.js';
import { ENGINES, endpointAddressProblem, isEngine, isId, isPort, keyProblem, listenAddressProblem, MAX_TARGET_IPS, TARGET_KINDS } from '../grammar.js';
import type { PortEntry, PortState, ReleasedAddress, ReleasedPort } from './port-state.js';
import { emptyPortState, listenerClash, listenerText } from './port-state.js';

// Ids, keys, engines, ports and addresses follow the grammar (src/core/grammar.ts),
// so a file entry is valid exactly when the renderer and recovery accept it too.
const port = z.number().refine(isPort, 'expected a TCP port (1-65535)');
const time = z.number().int().nonnegative();
const id = z.string().refine(isId, 'expected an AWS id');
const listenAddress = z.string().refine((address) => listenAddressProblem(address) === undefined, 'expected a unicast IPv4 address');
const key = z.string().refine((key) => keyProblem(key) === undefined, 'expected a target key such as node/<cluster>/<node>, primary/<group> or serverless/<name>');
// Where a forward may send traffic: the renderer refuses anything else (169.254.169.254 among them).
const targetIp = z.string().refine((ip) => targetAddressProblem(ip) === undefined, 'expected an IPv4 address a forward may point at');
const distinct = (ips: string[]) => new Set(ips).size === ips.length;
const targetIps = (min: number) => z.array(targetIp).min(min).max(MAX_TARGET_IPS).refine(distinct, 'expected distinct addresses');

const entryShape = {
  key,
  kind: z.enum(TARGET_KINDS),
  engine: z.string().refine(isEngine, `expected one of ${ENGINES.join(', ')}`),
  cacheClusterId: id.optional(),
  cacheNodeId: id.optional(),
  replicationGroupId: id.optional(),
  serverlessCacheName: id.optional(),
  tls: z.boolean().optional(),
  address: z.string().refine((address) => endpointAddressProblem(address) === undefined, 'expected an IPv4 address or a DNS name'),
  targetPort: port,
  listenPort: port,
  listenAddress: listenAddress.optional(),
  fallback: z.literal(true).optional(),
  ip: targetIp.optional(),
  ips: targetIps(2).optional(),
  lastIps: targetIps(1).optional(),
  resolvedAt: time.optional(),
  unresolvedSince: time.optional(),
  goneSince: time.optional(),
};

const entrySchema = z
  .strictObject(entryShape)
  .refine((e) => e.fallback === undefined || e.listenAddress !== undefined, 'a fallback listens on the first listen address: listenAddress is missing')
  .refine((e) => e.ips === undefined || e.ips[0] === e.ip, 'ips must start with ip')
  .refine((e) => e.lastIps === undefined || e.ip === undefined, 'lastIps belongs to an unresolved entry (no ip)');

const releasedShape = { port, key, releasedAt: time, address: listenAddress.optional() };
const releasedAddressShape = { address: listenAddress, port: port.optional(), key, releasedAt: time };
const stateShape = {
  version: z.literal(1),
  entries: z.array(entrySchema),
  released: z.array(z.strictObject(releasedShape)),
  releasedAddresses: z.array(z.strictObject(releasedAddressShape)).optional(),
};
const stateSchema = z.strictObject(stateShape);

/**
 * Every field name a map may hold (the schemas are strict: there are no
 * others), sorted: as JSON.stringify's key list it writes each object's keys
 * in this order without copying the map.
 */
const FIELDS = [...new Set([entryShape, releasedShape, releasedAddressShape, stateShape].flatMap((shape) => Object.keys(shape)))].sort();

// A field the types gain without the schema would be dropped on write: the compiler says so here.
type Unwritten =
  | Exclude<keyof PortEntry, keyof typeof entryShape>
  | Exclude<keyof ReleasedPort, keyof typeof releasedShape>
  | Exclude<keyof ReleasedAddress, keyof typeof releasedAddressShape>
  | Exclude<keyof PortState, keyof typeof stateShape>;
const everyFieldWritten: [Unwritten] extends [never] ? true : Unwritten = true;
void everyFieldWritten;

export type LoadedState =
  | { status: 'ok'; state: PortState }
  | { status: 'missing'; state: PortState }
  | { status: 'corrupt'; state: PortState; problem: string };

/** Text of a port map (the state file, the HA map item) → state, or why it cannot be used. */
export function parseState(text: string): LoadedState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { status: 'corrupt', state: emptyPortState(), problem: `not JSON (${(err as Error).message})` };
  }
  const result = stateSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    return { status: 'corrupt', state: emptyPortState(), problem: `${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}` };
  }
  const { entries, released, releasedAddresses = [] } = result.data;
  // Every pass would refuse these (the renderer: "the key appears twice"): the map is lost, not half-used.
  const twice = repeated(entries.map((e) => e.key));
  if (twice !== undefined) return { status: 'corrupt', state: emptyPortState(), problem: `${twice} appears twice` };
  const clash = listenerClash(entries);
  if (clash) return { status: 'corrupt', state: emptyPortState(), problem: `${clash[0].key} and ${clash[1].key} both listen on ${listenerText(clash[1])}` };
  const port = repeated(released.map((r) => String(r.port)));
  if (port !== undefined) return { status: 'corrupt', state: emptyPortState(), problem: `port ${port} is quarantined twice` };
  const address = repeated(releasedAddresses.map((r) => `${r.key} on ${r.address}`));
  if (address !== undefined) return { status: 'corrupt', state: emptyPortState(), problem: `${address} is quarantined twice` };
  return { status: 'ok', state: result.data as PortState };
}

function repeated(values: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) return value;
    seen.add(value);
  }
  return undefined;
}

/** Keys in a fixed order, so the same state is always the same bytes (and an idle pass writes nothing). */
export const serializeState = (state: PortState): string => `${JSON.stringify(state, FIELDS, 1)}\n`;
