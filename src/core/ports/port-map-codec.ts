// The port map as text: the one schema every copy of it passes through on
// the way in (the state file in state.dir, the HA map item in DynamoDB), and
// the one byte-stable way to write it. Pure. Whatever reads a map from outside
// the process treats it as untrusted: anything that does not validate is
// reported as corrupt, never half-used.

import { z } from 'zod';
import { isIpv4 } from '../ipv4.js';
import { ENGINES, endpointAddressProblem, isEngine, isId, isPort, keyProblem, listenAddressProblem, TARGET_KINDS } from '../grammar.js';
import type { PortState } from './port-state.js';
import { emptyPortState, listenerClash, listenerText } from './port-state.js';

// Ids, keys, engines, ports and addresses follow the grammar (src/core/grammar.ts),
// so a file entry is valid exactly when the renderer and recovery accept it too.
const port = z.number().refine(isPort, 'expected a TCP port (1-65535)');
const time = z.number().int().nonnegative();
const id = z.string().refine(isId, 'expected an AWS id');
const listenAddress = z.string().refine((address) => listenAddressProblem(address) === undefined, 'expected a unicast IPv4 address');

const entrySchema = z.strictObject({
  key: z.string().refine((key) => keyProblem(key) === undefined, 'expected a target key such as node/<cluster>/<node>, primary/<group> or serverless/<name>'),
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
  ip: z.string().refine(isIpv4).optional(),
  ips: z.array(z.string().refine(isIpv4)).min(2).max(64).optional(),
  resolvedAt: time.optional(),
  unresolvedSince: time.optional(),
  goneSince: time.optional(),
});

const stateSchema = z.strictObject({
  version: z.literal(1),
  entries: z.array(entrySchema),
  released: z.array(z.strictObject({ port, key: z.string().max(200), releasedAt: time })),
  releasedAddresses: z.array(z.strictObject({ address: listenAddress, key: z.string().max(200), releasedAt: time })).optional(),
});

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
  const clash = listenerClash(result.data.entries);
  if (clash) return { status: 'corrupt', state: emptyPortState(), problem: `${clash[0].key} and ${clash[1].key} both listen on ${listenerText(clash[1])}` };
  return { status: 'ok', state: result.data as PortState };
}

/** Keys in a fixed order, so the same state is always the same bytes (and an idle pass writes nothing). */
export const serializeState = (state: PortState): string =>
  `${JSON.stringify(state, (_key, value: unknown) => (value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1))) : value), 1)}\n`;
