// Sticky allocation of ports (port mode) and listen addresses (address mode).
// Pure: the same inputs always give the same ports and addresses.

import { portFamilyOf, type DiscoveredTarget, type TargetKey } from '../model.js';
import type { PortEntry, PortState, ReleasedAddress, ReleasedPort } from './port-state.js';

export interface PortRanges {
  /** First port for Redis and Valkey targets. */
  redis: number;
  /** First port for Memcached targets. */
  memcached: number;
}

const MAX_PORT = 65535;

/**
 * First-assignment order: (cluster or group id, node id or role). On AWS's
 * three-node Memcached example this gives 0001, 0002, 0003 → 11211, 11212,
 * 11213, and a replication group's primary and reader come before its members.
 */
export function allocationOrder(a: DiscoveredTarget, b: DiscoveredTarget): number {
  const groupA = a.cacheClusterId ?? a.replicationGroupId ?? a.serverlessCacheName ?? '';
  const groupB = b.cacheClusterId ?? b.replicationGroupId ?? b.serverlessCacheName ?? '';
  if (groupA !== groupB) return groupA < groupB ? -1 : 1;
  const nodeA = a.cacheNodeId ?? a.kind;
  const nodeB = b.cacheNodeId ?? b.kind;
  return nodeA < nodeB ? -1 : nodeA > nodeB ? 1 : 0;
}

export interface Allocation {
  ports: Map<TargetKey, number>;
  /** Targets that found no free port: the range is exhausted. */
  exhausted: TargetKey[];
}

/**
 * Gives each new target a port. Ports in use by any entry are taken; a released
 * port stays reserved for `reuseAfterMs` unless the same target comes back for it.
 *
 * `fallbackAddress` (address mode, every address taken): the ports are for
 * listeners on that address. Otherwise they are port-mode listeners, which
 * catch their port on every address of the host. Either way a port whose
 * listener would catch a quarantined address listener (`address:port` of a
 * target removed from it) is not given to anyone else before `reuseAfterMs`.
 */
export function allocatePorts(
  newTargets: readonly DiscoveredTarget[],
  state: Pick<PortState, 'entries' | 'released' | 'releasedAddresses'>,
  ranges: PortRanges,
  now: number,
  reuseAfterMs: number,
  fallbackAddress?: string,
): Allocation {
  const taken = new Set(state.entries.map((e) => e.listenPort));
  const quarantined = new Map<number, ReleasedPort>();
  for (const r of state.released) {
    if (now - r.releasedAt < reuseAfterMs) quarantined.set(r.port, r);
  }
  // Quarantined address listeners this mode's listeners would catch: every one in port mode, the fallback address's otherwise.
  const caught = (state.releasedAddresses ?? []).filter((r) => now - r.releasedAt < reuseAfterMs && (fallbackAddress === undefined || r.address === fallbackAddress));
  const catchesAnother = (port: number, key: TargetKey): boolean => caught.some((r) => r.key !== key && (r.port === undefined || r.port === port));
  const ports = new Map<TargetKey, number>();
  const exhausted: TargetKey[] = [];
  const cursor = { redis: ranges.redis, memcached: ranges.memcached };

  for (const target of [...newTargets].sort(allocationOrder)) {
    const comingBack = state.released.find((r) => r.key === target.key && !taken.has(r.port) && !catchesAnother(r.port, target.key));
    if (comingBack) {
      ports.set(target.key, comingBack.port);
      taken.add(comingBack.port);
      continue;
    }
    const family = portFamilyOf(target.engine);
    let port = cursor[family];
    while (port <= MAX_PORT && (taken.has(port) || quarantined.has(port) || catchesAnother(port, target.key))) port++;
    if (port > MAX_PORT) {
      exhausted.push(target.key);
      continue;
    }
    cursor[family] = port + 1;
    ports.set(target.key, port);
    taken.add(port);
  }
  return { ports, exhausted };
}

export interface AddressAllocation {
  addresses: Map<TargetKey, string>;
  /** Targets that found no free address: they fall back to port mode on the first address. */
  exhausted: TargetKey[];
}

/**
 * Address mode: gives each new target a listen address from `pool` (its port
 * is its native one). Targets that share a DNS name share an address (a
 * Serverless cache's endpoint and reader endpoint), as long as their ports
 * differ. A target that comes back within `reuseAfterMs` gets its old address
 * again; another target's freed address stays quarantined until then.
 */
export function allocateAddresses(
  newTargets: readonly DiscoveredTarget[],
  state: {
    entries: readonly Pick<PortEntry, 'address' | 'listenAddress' | 'listenPort' | 'targetPort' | 'fallback'>[];
    releasedAddresses: readonly ReleasedAddress[];
    released?: readonly ReleasedPort[];
  },
  pool: readonly string[],
  now: number,
  reuseAfterMs: number,
): AddressAllocation {
  /** Listen address → the ports taken on it, and the DNS name it serves (fallback entries serve none). */
  const inUse = new Map<string, { ports: Set<number>; name?: string }>();
  const take = (address: string, port: number, name?: string) => {
    const use = inUse.get(address) ?? { ports: new Set<number>() };
    use.ports.add(port);
    use.name ??= name;
    inUse.set(address, use);
  };
  for (const e of state.entries) {
    if (e.listenAddress === undefined) continue;
    if (e.fallback === undefined) take(e.listenAddress, e.targetPort, e.address);
    else take(e.listenAddress, e.listenPort);
  }
  const quarantined = new Set(state.releasedAddresses.filter((r) => now - r.releasedAt < reuseAfterMs).map((r) => r.address));
  const free = (address: string) => !inUse.has(address) && !quarantined.has(address);
  // A fallback's freed address:port: the target's native port there would catch that fallback's clients.
  const fallbacks = (state.released ?? []).filter((r) => r.address !== undefined && now - r.releasedAt < reuseAfterMs);
  const catchesFallback = (address: string, target: DiscoveredTarget): boolean =>
    fallbacks.some((r) => r.key !== target.key && r.address === address && r.port === target.targetPort);

  const addresses = new Map<TargetKey, string>();
  const exhausted: TargetKey[] = [];
  for (const target of [...newTargets].sort(allocationOrder)) {
    const shared = [...inUse].find(([address, use]) => use.name === target.address && !use.ports.has(target.targetPort) && !catchesFallback(address, target))?.[0];
    // Its own most recent address, when it is still in the pool and nobody took it (fallbacks on other ports aside).
    const untaken = (address: string): boolean => {
      const use = inUse.get(address);
      return (use === undefined || (use.name === undefined && !use.ports.has(target.targetPort))) && !catchesFallback(address, target);
    };
    const comingBack = state.releasedAddresses
      .filter((r) => r.key === target.key && pool.includes(r.address) && untaken(r.address))
      .reduce<ReleasedAddress | undefined>((latest, r) => (latest === undefined || r.releasedAt > latest.releasedAt ? r : latest), undefined)?.address;
    const address = shared ?? comingBack ?? pool.find((a) => free(a) && !catchesFallback(a, target));
    if (address === undefined) {
      exhausted.push(target.key);
      continue;
    }
    addresses.set(target.key, address);
    take(address, target.targetPort, target.address);
  }
  return { addresses, exhausted };
}
