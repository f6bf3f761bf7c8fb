// How the port map evolves in one pass: membership from the API, addresses
// from DNS, grace periods from the clock. Pure: (state, observations, now) → state.

import { targetSourceOf, type DiscoveredTarget, type Forward, type Resolution, type Topology, type TargetKey } from '../model.js';
import { allocatePorts, type PortRanges } from '../ports/allocate.js';
import type { PortEntry, PortState } from '../ports/port-state.js';

export interface ForwardPolicy {
  ranges: PortRanges;
  /** A target gone from the API keeps its forward this long. */
  removalGraceMs: number;
  /** A freed port is not given to another target before this. */
  reuseAfterMs: number;
  /** A name that stops resolving keeps its last address this long, then goes unresolved. */
  staleAddressMs: number;
}

export type ForwardEvent =
  | { type: 'added'; key: TargetKey; listenPort: number }
  | { type: 'draining'; key: TargetKey; listenPort: number; until: number }
  | { type: 'returned'; key: TargetKey; listenPort: number }
  | { type: 'removed'; key: TargetKey; listenPort: number }
  | { type: 'ip-changed'; key: TargetKey; listenPort: number; from: string; to: string }
  | { type: 'resolve-failed'; key: TargetKey; address: string; error: string; keepingIp?: string }
  | { type: 'unresolved'; key: TargetKey; address: string }
  | { type: 'ports-exhausted'; key: TargetKey };

export interface ForwardPlan {
  state: PortState;
  forwards: Forward[];
  events: ForwardEvent[];
}

export interface ForwardObservations {
  /** A complete view from the API, or undefined when none is available this pass (fail-static). */
  topology?: Topology;
  /** This pass's DNS answers by address; an address missing here was not looked up. */
  resolutions: ReadonlyMap<string, Resolution>;
}

export function planForwards(state: PortState, seen: ForwardObservations, policy: ForwardPolicy, now: number): ForwardPlan {
  const events: ForwardEvent[] = [];
  let entries = state.entries.map((e) => ({ ...e }));
  let released = state.released.filter((r) => now - r.releasedAt < policy.reuseAfterMs);

  if (seen.topology) {
    ({ entries, released } = applyMembership(entries, released, seen.topology, policy, now, events));
  }
  for (const entry of entries) applyResolution(entry, seen.resolutions.get(entry.address), policy, now, events);

  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  released.sort((a, b) => a.port - b.port);
  return {
    state: { version: 1, entries, released },
    forwards: entries.map(forwardOf).sort((a, b) => a.listenPort - b.listenPort),
    events,
  };
}

function applyMembership(
  entries: PortEntry[],
  released: PortState['released'],
  { targets, held = [] }: Topology,
  policy: ForwardPolicy,
  now: number,
  events: ForwardEvent[],
): { entries: PortEntry[]; released: PortState['released'] } {
  const byKey = new Map(targets.map((t) => [t.key, t]));
  const kept: PortEntry[] = [];
  for (const entry of entries) {
    // Its describe call failed this time: nothing is known about it, so nothing changes.
    if (held.includes(targetSourceOf(entry.kind))) {
      kept.push(entry);
      continue;
    }
    const target = byKey.get(entry.key);
    if (target) {
      if (entry.goneSince !== undefined) events.push({ type: 'returned', key: entry.key, listenPort: entry.listenPort });
      kept.push(refresh(entry, target));
      continue;
    }
    const goneSince = entry.goneSince ?? now;
    if (now - goneSince >= policy.removalGraceMs) {
      events.push({ type: 'removed', key: entry.key, listenPort: entry.listenPort });
      released = [...released.filter((r) => r.port !== entry.listenPort), { port: entry.listenPort, key: entry.key, releasedAt: now }];
      continue;
    }
    if (entry.goneSince === undefined) events.push({ type: 'draining', key: entry.key, listenPort: entry.listenPort, until: now + policy.removalGraceMs });
    kept.push({ ...entry, goneSince });
  }

  const known = new Set(kept.map((e) => e.key));
  const fresh = targets.filter((t) => !known.has(t.key));
  const { ports, exhausted } = allocatePorts(fresh, { entries: kept, released }, policy.ranges, now, policy.reuseAfterMs);
  for (const key of exhausted) events.push({ type: 'ports-exhausted', key });
  for (const target of fresh) {
    const listenPort = ports.get(target.key);
    if (listenPort === undefined) continue;
    kept.push({ ...identityOf(target), listenPort });
    released = released.filter((r) => r.port !== listenPort);
    events.push({ type: 'added', key: target.key, listenPort });
  }
  return { entries: kept, released };
}

const OPTIONAL_IDENTITY = ['cacheClusterId', 'cacheNodeId', 'replicationGroupId', 'serverlessCacheName', 'tls'] as const;
type OptionalIdentity = (typeof OPTIONAL_IDENTITY)[number];

function identityOf(t: DiscoveredTarget): Omit<PortEntry, 'listenPort'> {
  const entry: Omit<PortEntry, 'listenPort'> = { key: t.key, kind: t.kind, engine: t.engine, address: t.address, targetPort: t.targetPort };
  copyOptionalIdentity(t, entry);
  return entry;
}

/** The identity fields only some kinds carry, copied only when set (the port map stays free of undefined keys). */
function copyOptionalIdentity(from: Pick<DiscoveredTarget, OptionalIdentity>, to: Pick<DiscoveredTarget, OptionalIdentity>): void {
  for (const field of OPTIONAL_IDENTITY) {
    if (from[field] !== undefined) (to as Record<OptionalIdentity, unknown>)[field] = from[field];
  }
}

/** The API's latest word on a known target; its port and DNS memory stay. */
function refresh(entry: PortEntry, target: DiscoveredTarget): PortEntry {
  const next: PortEntry = { ...identityOf(target), listenPort: entry.listenPort };
  if (target.address === entry.address) {
    if (entry.ip !== undefined) next.ip = entry.ip;
    if (entry.ips !== undefined) next.ips = entry.ips;
    if (entry.resolvedAt !== undefined) next.resolvedAt = entry.resolvedAt;
    if (entry.unresolvedSince !== undefined) next.unresolvedSince = entry.unresolvedSince;
  } else if (entry.ip !== undefined) {
    // A new name: keep forwarding to the old addresses until the new name resolves.
    next.ip = entry.ip;
    if (entry.ips !== undefined) next.ips = entry.ips;
  }
  return next;
}

function applyResolution(entry: PortEntry, answer: Resolution | undefined, policy: ForwardPolicy, now: number, events: ForwardEvent[]): void {
  if (!answer) return;
  if (answer.ok) {
    const before = entry.ips ?? (entry.ip === undefined ? [] : [entry.ip]);
    const after = answer.ips ?? [answer.ip];
    // Each address that left the answer is a move: its flows are forgotten so clients reconnect.
    for (const gone of before.filter((ip) => !after.includes(ip))) {
      events.push({ type: 'ip-changed', key: entry.key, listenPort: entry.listenPort, from: gone, to: answer.ip });
    }
    // resolvedAt marks when these addresses were first seen, not every lookup:
    // a steady answer must not rewrite the port map on disk every pass.
    if (before.join() !== after.join()) entry.resolvedAt = now;
    entry.ip = answer.ip;
    if (after.length > 1) entry.ips = after;
    else delete entry.ips;
    delete entry.unresolvedSince;
    return;
  }
  const firstFailure = entry.unresolvedSince === undefined;
  entry.unresolvedSince ??= now;
  if (firstFailure) {
    const event: ForwardEvent = { type: 'resolve-failed', key: entry.key, address: entry.address, error: answer.error };
    if (entry.ip !== undefined) event.keepingIp = entry.ip;
    events.push(event);
  }
  if (entry.ip !== undefined && now - entry.unresolvedSince >= policy.staleAddressMs) {
    events.push({ type: 'unresolved', key: entry.key, address: entry.address });
    delete entry.ip;
    delete entry.ips;
  }
}

function forwardOf(entry: PortEntry): Forward {
  const forward: Forward = {
    key: entry.key,
    kind: entry.kind,
    engine: entry.engine,
    address: entry.address,
    targetPort: entry.targetPort,
    listenPort: entry.listenPort,
    state: entry.ip === undefined ? 'unresolved' : entry.goneSince !== undefined ? 'draining' : 'active',
  };
  copyOptionalIdentity(entry, forward);
  if (entry.ip !== undefined) forward.targetIp = entry.ip;
  if (entry.ips !== undefined) forward.targetIps = entry.ips;
  return forward;
}
