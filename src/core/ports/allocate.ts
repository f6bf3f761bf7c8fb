// Sticky port allocation. Pure: the same inputs always give the same ports.

import { portFamilyOf, type DiscoveredTarget, type TargetKey } from '../model.js';
import type { PortState, ReleasedPort } from './port-state.js';

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
 */
export function allocatePorts(
  newTargets: readonly DiscoveredTarget[],
  state: Pick<PortState, 'entries' | 'released'>,
  ranges: PortRanges,
  now: number,
  reuseAfterMs: number,
): Allocation {
  const taken = new Set(state.entries.map((e) => e.listenPort));
  const quarantined = new Map<number, ReleasedPort>();
  for (const r of state.released) {
    if (now - r.releasedAt < reuseAfterMs) quarantined.set(r.port, r);
  }
  const ports = new Map<TargetKey, number>();
  const exhausted: TargetKey[] = [];
  const cursor = { redis: ranges.redis, memcached: ranges.memcached };

  for (const target of [...newTargets].sort(allocationOrder)) {
    const comingBack = state.released.find((r) => r.key === target.key && !taken.has(r.port));
    if (comingBack) {
      ports.set(target.key, comingBack.port);
      taken.add(comingBack.port);
      continue;
    }
    const family = portFamilyOf(target.engine);
    let port = cursor[family];
    while (port <= MAX_PORT && (taken.has(port) || quarantined.has(port))) port++;
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
