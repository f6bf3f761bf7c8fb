// How the port map evolves in one pass: membership from the API, addresses
// from DNS, grace periods from the clock. Pure: (state, observations, now) → state.

import { targetSourceOf, type DiscoveredTarget, type Forward, type Resolution, type Topology, type TargetKey } from '../model.js';
import { allocateAddresses, allocatePorts, type PortRanges } from '../ports/allocate.js';
import { MAX_TARGET_IPS } from '../grammar.js';
import { compareListeners, listenerText, type Listener, type PortEntry, type PortState, type ReleasedAddress, type ReleasedPort } from '../ports/port-state.js';

export interface ForwardPolicy {
  ranges: PortRanges;
  /** Address mode: the private listen addresses (forward.listenAddresses), in config order. Absent: port mode. */
  listenAddresses?: readonly string[];
  /** A target gone from the API keeps its forward this long. */
  removalGraceMs: number;
  /** A freed port is not given to another target before this. */
  reuseAfterMs: number;
  /** A name that stops resolving keeps its last address this long, then goes unresolved. */
  staleAddressMs: number;
}

export type ForwardEvent =
  | { type: 'added'; key: TargetKey; listenPort: number; listenAddress?: string }
  /** The mode or the address pool changed: the target listens somewhere else now. */
  | { type: 'relocated'; key: TargetKey; listenPort: number; listenAddress?: string; from: string }
  /** Address mode, every address taken: the target listens in port mode on the first address. */
  | { type: 'addresses-exhausted'; key: TargetKey; listenPort: number; listenAddress: string }
  | { type: 'draining'; key: TargetKey; listenPort: number; listenAddress?: string; until: number }
  | { type: 'returned'; key: TargetKey; listenPort: number }
  /** ownAddress: address mode, the freed address is quarantined (else the port is). */
  | { type: 'removed'; key: TargetKey; listenPort: number; listenAddress?: string; ownAddress?: true }
  | { type: 'ip-changed'; key: TargetKey; listenPort: number; from: string; to: string }
  | { type: 'resolve-failed'; key: TargetKey; address: string; error: string; keepingIp?: string; ipv6Only?: true }
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
  const memory: Memory = {
    entries: state.entries.map((e) => ({ ...e })),
    released: state.released.filter((r) => now - r.releasedAt < policy.reuseAfterMs),
    releasedAddresses: (state.releasedAddresses ?? []).filter((r) => now - r.releasedAt < policy.reuseAfterMs),
  };
  const fresh = seen.topology ? applyMembership(memory, seen.topology, policy, now, events) : [];
  place(memory, fresh, policy, now, events);
  const { entries, released, releasedAddresses } = memory;
  for (const entry of entries) applyResolution(entry, seen.resolutions.get(entry.address), policy, now, events);

  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  released.sort((a, b) => a.port - b.port);
  releasedAddresses.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    state: { version: 1, entries, released, ...(releasedAddresses.length > 0 ? { releasedAddresses } : {}) },
    forwards: entries.map((e) => forwardOf(e, seen.resolutions.get(e.address))).sort(compareListeners),
    events,
  };
}

/**
 * The earliest time at which planForwards may change this state with nothing
 * else changed: a quarantine ending (reuseAfter), a removal grace running
 * out, an address given up after failing to resolve for staleAddressMs.
 * Before then, a state that planForwards left as it was stays as it is.
 */
export function nextChangeAt(state: PortState, policy: ForwardPolicy): number {
  let at = Infinity;
  for (const r of state.released) at = Math.min(at, r.releasedAt + policy.reuseAfterMs);
  for (const r of state.releasedAddresses ?? []) at = Math.min(at, r.releasedAt + policy.reuseAfterMs);
  for (const e of state.entries) {
    if (e.goneSince !== undefined) at = Math.min(at, e.goneSince + policy.removalGraceMs);
    if (e.unresolvedSince !== undefined && e.ip !== undefined) at = Math.min(at, e.unresolvedSince + policy.staleAddressMs);
  }
  return at;
}

/**
 * HA standby (docs/design/ha.md): installs exactly the leader's map. No
 * membership, no placement, no allocation: only this host's own DNS answers
 * are applied, as on the leader. Entries whose listener does not fit this
 * instance's forward config (another mode, an address not in its pool) are
 * installed all the same, and named in `misfits`: the two configs disagree.
 */
export function planFollower(map: PortState, resolutions: ReadonlyMap<string, Resolution>, policy: ForwardPolicy, now: number): ForwardPlan & { misfits: TargetKey[] } {
  const events: ForwardEvent[] = [];
  const entries = map.entries.map((e) => ({ ...e }));
  for (const entry of entries) applyResolution(entry, resolutions.get(entry.address), policy, now, events);
  const first = policy.listenAddresses?.[0];
  const misfits = entries.filter((e) => !fitsMode(e, policy.listenAddresses) && !(e.fallback !== undefined && e.listenAddress === first)).map((e) => e.key);
  return { state: { ...map, entries }, forwards: entries.map((e) => forwardOf(e, resolutions.get(e.address))).sort(compareListeners), events, misfits };
}

/** Whether an entry's listener fits the mode: port mode, or one of the pool's addresses on its native port. */
function fitsMode(e: PortEntry, pool: readonly string[] | undefined): boolean {
  return pool === undefined ? e.listenAddress === undefined : e.fallback === undefined && e.listenAddress !== undefined && pool.includes(e.listenAddress) && e.listenPort === e.targetPort;
}

/** The map as a pass changes it. */
interface Memory {
  entries: PortEntry[];
  released: ReleasedPort[];
  releasedAddresses: ReleasedAddress[];
}

/** Membership from the API: known targets refreshed, gone ones drained then freed. Returns the new targets, not yet placed. */
function applyMembership(memory: Memory, { targets, held = [] }: Topology, policy: ForwardPolicy, now: number, events: ForwardEvent[]): DiscoveredTarget[] {
  const byKey = new Map(targets.map((t) => [t.key, t]));
  const kept: PortEntry[] = [];
  for (const entry of memory.entries) {
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
      events.push({ type: 'removed', key: entry.key, ...listenerOf(entry), ...(entry.listenAddress !== undefined && entry.fallback === undefined ? { ownAddress: true as const } : {}) });
      release(memory, entry, now);
      continue;
    }
    if (entry.goneSince === undefined) events.push({ type: 'draining', key: entry.key, ...listenerOf(entry), until: now + policy.removalGraceMs });
    kept.push({ ...entry, goneSince });
  }
  memory.entries = kept;
  const known = new Set(kept.map((e) => e.key));
  return targets.filter((t) => !known.has(t.key));
}

/** The listener fields of an entry, for events: the port, and the address in address mode. */
const listenerOf = (e: PortEntry): Listener => ({ listenPort: e.listenPort, ...(e.listenAddress === undefined ? {} : { listenAddress: e.listenAddress }) });

/** Frees what an entry held: its own address (address mode) or its port, quarantined but kept for the same target. */
function release(memory: Memory, entry: PortEntry, now: number): void {
  if (entry.listenAddress !== undefined && entry.fallback === undefined) {
    const address = entry.listenAddress;
    // One record per (target, address): two targets that shared the address (one DNS name) can both
    // come back to it, and a target that moved twice keeps both addresses quarantined.
    memory.releasedAddresses = [...memory.releasedAddresses.filter((r) => r.key !== entry.key || r.address !== address), { address, port: entry.listenPort, key: entry.key, releasedAt: now }];
  } else {
    // A fallback's port keeps its address: an address listener on that port there would catch its clients.
    // So does a port-mode listener that got the port back from its own fallback: it caught those clients since.
    const held = entry.listenAddress ?? memory.released.find((r) => r.port === entry.listenPort && r.key === entry.key)?.address;
    const address = held === undefined ? {} : { address: held };
    memory.released = [...memory.released.filter((r) => r.port !== entry.listenPort), { port: entry.listenPort, key: entry.key, releasedAt: now, ...address }];
  }
}

/**
 * Gives every entry a listener that fits the mode: new targets, entries the
 * mode or the address pool no longer fits (their old listener is released for
 * them to get back later), and, in address mode, fallback entries once an
 * address is free. Entries that fit are never touched.
 */
function place(memory: Memory, fresh: readonly DiscoveredTarget[], policy: ForwardPolicy, now: number, events: ForwardEvent[]): void {
  const pool = policy.listenAddresses;
  const first = pool?.[0];
  const fits = (e: PortEntry): boolean => fitsMode(e, pool);
  // Address mode: a fallback entry keeps its port on the first address until an address is free for it.
  const waiting = (e: PortEntry): boolean => e.fallback !== undefined && e.listenAddress === first;

  const settled = memory.entries.filter((e) => fits(e) || waiting(e));
  const moving = memory.entries.filter((e) => !fits(e) && !waiting(e));
  for (const entry of moving) release(memory, entry, now);
  const unplaced: { target: DiscoveredTarget; entry?: PortEntry }[] = [...moving.map((entry) => ({ target: entry, entry })), ...fresh.map((target) => ({ target }))];

  const put = (item: { target: DiscoveredTarget; entry?: PortEntry }, listener: Listener & { fallback?: true }) => {
    const next: PortEntry = { ...(item.entry ?? identityOf(item.target)), listenPort: listener.listenPort };
    delete next.listenAddress;
    delete next.fallback;
    if (listener.listenAddress !== undefined) next.listenAddress = listener.listenAddress;
    if (listener.fallback) next.fallback = true;
    settled.push(next);
    const placed = { key: next.key, listenPort: next.listenPort, ...(next.listenAddress === undefined ? {} : { listenAddress: next.listenAddress }) };
    if (listener.fallback) events.push({ type: 'addresses-exhausted', ...placed, listenAddress: first! });
    else if (item.entry) events.push({ type: 'relocated', ...placed, from: listenerText(item.entry) });
    else events.push({ type: 'added', ...placed });
  };

  let needPorts = unplaced;
  if (pool !== undefined && first !== undefined) {
    const upgrading = settled.filter(waiting).map((entry) => ({ target: entry as DiscoveredTarget, entry }));
    const candidates = [...unplaced, ...upgrading];
    const { addresses } = allocateAddresses(
      candidates.map((c) => c.target),
      { entries: settled, releasedAddresses: memory.releasedAddresses, released: memory.released },
      pool,
      now,
      policy.reuseAfterMs,
    );
    for (const item of candidates) {
      const address = addresses.get(item.target.key);
      if (address === undefined) continue;
      if (item.entry && waiting(item.entry)) {
        settled.splice(settled.indexOf(item.entry), 1);
        release(memory, item.entry, now);
      }
      put(item, { listenAddress: address, listenPort: item.target.targetPort });
      // Its own quarantine ends; another target's record for the address (one DNS name shares it) stays.
      memory.releasedAddresses = memory.releasedAddresses.filter((r) => r.address !== address || r.key !== item.target.key);
    }
    needPorts = unplaced.filter((item) => !addresses.has(item.target.key));
  }

  const { ports, exhausted } = allocatePorts(
    needPorts.map((item) => item.target),
    { entries: settled, released: memory.released, releasedAddresses: memory.releasedAddresses },
    policy.ranges,
    now,
    policy.reuseAfterMs,
    first,
  );
  for (const key of exhausted) events.push({ type: 'ports-exhausted', key });
  for (const item of needPorts) {
    const listenPort = ports.get(item.target.key);
    if (listenPort === undefined) continue;
    put(item, first === undefined ? { listenPort } : { listenAddress: first, listenPort, fallback: true });
    // A fallback's record stays while the same target holds its port again: its clients may still dial that address.
    memory.released = memory.released.filter((r) => r.port !== listenPort || (r.key === item.target.key && r.address !== undefined));
  }
  memory.entries = settled;
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
  if (entry.listenAddress !== undefined) next.listenAddress = entry.listenAddress;
  if (entry.fallback !== undefined) next.fallback = entry.fallback;
  if (target.address === entry.address) {
    if (entry.ip !== undefined) next.ip = entry.ip;
    if (entry.ips !== undefined) next.ips = entry.ips;
    if (entry.lastIps !== undefined) next.lastIps = entry.lastIps;
    if (entry.resolvedAt !== undefined) next.resolvedAt = entry.resolvedAt;
    if (entry.unresolvedSince !== undefined) next.unresolvedSince = entry.unresolvedSince;
  } else if (entry.ip !== undefined) {
    // A new name: keep forwarding to the old addresses until the new name resolves.
    next.ip = entry.ip;
    if (entry.ips !== undefined) next.ips = entry.ips;
  } else if (entry.lastIps !== undefined) {
    next.lastIps = entry.lastIps;
  }
  return next;
}

function applyResolution(entry: PortEntry, answer: Resolution | undefined, policy: ForwardPolicy, now: number, events: ForwardEvent[]): void {
  if (!answer) return;
  if (answer.ok) {
    const before = entry.ips ?? (entry.ip === undefined ? (entry.lastIps ?? []) : [entry.ip]);
    // One DNAT rule per address: a longer answer keeps its lowest addresses (the answer is sorted).
    const after = (answer.ips ?? [answer.ip]).slice(0, MAX_TARGET_IPS);
    // Each address that left the answer is a move: its flows are forgotten so clients reconnect.
    for (const gone of before.filter((ip) => !after.includes(ip))) {
      events.push({ type: 'ip-changed', key: entry.key, listenPort: entry.listenPort, from: gone, to: answer.ip });
    }
    // resolvedAt marks when these addresses were first seen, not every lookup:
    // a steady answer must not rewrite the port map on disk every pass.
    if (entry.ip === undefined || before.join() !== after.join()) entry.resolvedAt = now;
    entry.ip = answer.ip;
    if (after.length > 1) entry.ips = after;
    else delete entry.ips;
    delete entry.lastIps;
    delete entry.unresolvedSince;
    return;
  }
  const firstFailure = entry.unresolvedSince === undefined;
  entry.unresolvedSince ??= now;
  if (firstFailure) {
    const event: ForwardEvent = { type: 'resolve-failed', key: entry.key, address: entry.address, error: answer.error };
    if (entry.ip !== undefined) event.keepingIp = entry.ip;
    if (answer.ipv6Only) event.ipv6Only = true;
    events.push(event);
  }
  if (entry.ip !== undefined && now - entry.unresolvedSince >= policy.staleAddressMs) {
    events.push({ type: 'unresolved', key: entry.key, address: entry.address });
    // Its rules go, but the connections already open stay: remember where they go.
    entry.lastIps = entry.ips ?? [entry.ip];
    delete entry.ip;
    delete entry.ips;
  }
}

/** The forward of an entry; `answer` (this pass's DNS answer for its name) tells an IPv6-only name. */
function forwardOf(entry: PortEntry, answer: Resolution | undefined): Forward {
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
  if (entry.listenAddress !== undefined) forward.listenAddress = entry.listenAddress;
  if (entry.fallback !== undefined) forward.fallback = entry.fallback;
  if (entry.ip !== undefined) forward.targetIp = entry.ip;
  if (entry.ips !== undefined) forward.targetIps = entry.ips;
  if (entry.lastIps !== undefined) forward.lastIps = entry.lastIps;
  if (answer?.ok === false && answer.ipv6Only) forward.ipv6Only = true;
  return forward;
}
