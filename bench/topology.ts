// Synthetic ElastiCache fleets of any size: half Redis, half Memcached, in
// clusters of ten nodes, each node with an AWS-shaped endpoint name and an
// address in the benchmarking range 198.19.0.0/16 (no packet is ever sent to
// these: they only appear in rules).

import type { FakeTopology } from '../lab/fake-elasticache-model.js';
import { targetKeyOf, type DiscoveredTarget, type Engine } from '../src/core/model.js';

export interface SyntheticNode {
  engine: Engine;
  cacheClusterId: string;
  cacheNodeId: string;
  /** The endpoint's DNS name. */
  name: string;
  ip: string;
  port: number;
}

const NODES_PER_CLUSTER = 10;

/** Node i's address; 198.19.0.x is left to the lab's real servers. */
export function syntheticIp(i: number, generation = 0): string {
  const n = i + generation * 20_000;
  return `198.19.${4 + Math.floor(n / 250) % 250}.${(n % 250) + 2}`;
}

export function syntheticNodes(count: number): SyntheticNode[] {
  return Array.from({ length: count }, (_, i) => {
    const engine: Engine = i % 2 === 0 ? 'redis' : 'memcached';
    const j = i >> 1; // index within the engine
    const cacheClusterId = `bench-${engine === 'redis' ? 'rd' : 'mc'}-${String(Math.floor(j / NODES_PER_CLUSTER)).padStart(4, '0')}`;
    const cacheNodeId = String((j % NODES_PER_CLUSTER) + 1).padStart(4, '0');
    return {
      engine,
      cacheClusterId,
      cacheNodeId,
      name: `${cacheClusterId}.bnch01.${cacheNodeId}.use1.cache.amazonaws.com`,
      ip: syntheticIp(i),
      port: engine === 'redis' ? 6379 : 11211,
    };
  });
}

/** Targets as discovery would hand them over; `address` is the IP literal unless names are asked for. */
export function targetsOf(nodes: readonly SyntheticNode[], address: 'ip' | 'name' = 'ip'): DiscoveredTarget[] {
  return nodes.map((n) => {
    const target = { kind: 'node' as const, engine: n.engine, cacheClusterId: n.cacheClusterId, cacheNodeId: n.cacheNodeId };
    return { key: targetKeyOf(target), ...target, address: address === 'ip' ? n.ip : n.name, targetPort: n.port };
  });
}

/** The same fleet as the fake API serves it. */
export function fakeTopologyOf(nodes: readonly SyntheticNode[], address: 'ip' | 'name' = 'name'): FakeTopology {
  const clusters = new Map<string, NonNullable<FakeTopology['clusters']>[number]>();
  for (const n of nodes) {
    let cluster = clusters.get(n.cacheClusterId);
    if (!cluster) {
      cluster = { id: n.cacheClusterId, engine: n.engine, nodes: [] };
      clusters.set(n.cacheClusterId, cluster);
    }
    cluster.nodes?.push({ id: n.cacheNodeId, address: address === 'ip' ? n.ip : n.name, port: n.port });
  }
  return { clusters: [...clusters.values()], replicationGroups: [] };
}
