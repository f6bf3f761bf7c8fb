// From DescribeCacheClusters + DescribeReplicationGroups answers to the list of
// endpoints worth forwarding. Pure: the SDK's output objects in, targets out.
//
// Every value taken from the API ends up in an iptables argument, a state file
// and a log line, so nothing is trusted: fields are checked for type and shape
// here, and anything odd becomes a SkippedItem naming where it was and why.
// Nothing in an answer can make this throw.

import type { CacheCluster, ReplicationGroup, ServerlessCache } from '@aws-sdk/client-elasticache';
import { targetKeyOf, type DiscoveredTarget, type Engine, type SkippedItem, type Topology } from '../model.js';
import { endpointAddressProblem, engineOf, idProblem, isId, isPort, show } from '../grammar.js';
import { compileFilter, type TargetFilter } from './glob.js';
import { addServerlessTargets } from './serverless.js';
import { isRecord, listOf, listOfValues, readEndpoint, type Collector } from './answer.js';

export interface DescribeResults {
  cacheClusters: CacheCluster[];
  replicationGroups: ReplicationGroup[];
  /** Absent when DescribeServerlessCaches was not read (or failed). */
  serverlessCaches?: ServerlessCache[];
}

// Every id, address and port rule is the grammar's (src/core/grammar.ts).
export { isHostName } from '../grammar.js';

export function toTopology(input: DescribeResults, filter: TargetFilter): Topology {
  const selected = compileFilter(filter);
  const targets: DiscoveredTarget[] = [];
  const skipped: SkippedItem[] = [];
  const seen = new Set<string>();
  const skip = (where: string, reason: string) => skipped.push({ where, reason });
  const add = (target: DiscoveredTarget, where: string) => {
    if (seen.has(target.key)) return skip(where, `the answer lists ${target.key} more than once; kept the first`);
    seen.add(target.key);
    targets.push(target);
  };

  const clusters = listOf(input.cacheClusters);
  const out: Collector = { selected, add, skip, clusters };
  clusters.forEach((cluster, index) => addNodeTargets(cluster, index, out));
  listOf(input.replicationGroups).forEach((group, index) => addGroupTargets(group, index, out));
  listOf(input.serverlessCaches).forEach((cache, index) => addServerlessTargets(cache, index, out));

  targets.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { targets, skipped };
}

function addNodeTargets(cluster: Record<string, unknown>, index: number, { selected, add, skip }: Collector) {
  const cacheClusterId = cluster.CacheClusterId;
  if (!isId(cacheClusterId)) return skip(`cache cluster #${index + 1}`, `CacheClusterId ${idProblem(cacheClusterId)}`);
  const where = `cluster ${cacheClusterId}`;

  const engine = engineOf(cluster.Engine);
  if (engine === undefined) return skip(where, `engine ${show(cluster.Engine)} is not redis, valkey or memcached`);

  const replicationGroupId = cluster.ReplicationGroupId ?? undefined;
  if (replicationGroupId !== undefined && !isId(replicationGroupId)) {
    return skip(where, `ReplicationGroupId ${idProblem(replicationGroupId)}`);
  }
  const ids = replicationGroupId === undefined ? [cacheClusterId] : [cacheClusterId, replicationGroupId];
  if (!selected(ids)) return skip(where, 'not selected by discovery.include/exclude');

  const nodes = listOf(cluster.CacheNodes);
  if (nodes.length === 0) return skip(where, `no nodes listed yet (cluster status ${show(cluster.CacheClusterStatus)})`);
  const tls = tlsOf(cluster);

  // A Memcached cluster's `.cfg.` endpoint, which auto-discovery clients are seeded with.
  if (engine === 'memcached' && cluster.ConfigurationEndpoint !== undefined && cluster.ConfigurationEndpoint !== null) {
    const configWhere = `${where} configuration endpoint`;
    const endpoint = readEndpoint(cluster.ConfigurationEndpoint);
    if (endpoint === undefined) skip(configWhere, 'configuration endpoint has neither address nor port');
    else if ('problem' in endpoint) skip(configWhere, endpoint.problem);
    else {
      const target = { kind: 'configuration' as const, engine, cacheClusterId, ...tls, address: endpoint.address, targetPort: endpoint.port };
      add({ key: targetKeyOf(target), ...target }, configWhere);
    }
  }

  nodes.forEach((node, nodeIndex) => {
    const cacheNodeId = node.CacheNodeId;
    if (!isId(cacheNodeId)) return skip(`${where} node #${nodeIndex + 1}`, `CacheNodeId ${idProblem(cacheNodeId)}`);
    const nodeWhere = `${where} node ${cacheNodeId}`;

    const endpoint = readEndpoint(node.Endpoint);
    if (endpoint === undefined) return skip(nodeWhere, `no endpoint yet (node status ${show(node.CacheNodeStatus)})`);
    if ('problem' in endpoint) return skip(nodeWhere, endpoint.problem);

    const target = {
      kind: 'node' as const,
      engine,
      cacheClusterId,
      cacheNodeId,
      ...(replicationGroupId === undefined ? {} : { replicationGroupId }),
      ...tls,
      address: endpoint.address,
      targetPort: endpoint.port,
    };
    add({ key: targetKeyOf(target), ...target }, nodeWhere);
  });
}

function addGroupTargets(group: Record<string, unknown>, index: number, { selected, add, skip, clusters }: Collector) {
  const replicationGroupId = group.ReplicationGroupId;
  if (!isId(replicationGroupId)) {
    return skip(`replication group #${index + 1}`, `ReplicationGroupId ${idProblem(replicationGroupId)}`);
  }
  const where = `replication group ${replicationGroupId}`;

  const clusterMode = group.ClusterEnabled === true || (typeof group.ClusterMode === 'string' && group.ClusterMode.toLowerCase() === 'enabled');
  if (!selected([replicationGroupId])) return skip(where, 'not selected by discovery.include/exclude');

  let engine: Engine | undefined;
  if (group.Engine !== undefined && group.Engine !== null) {
    engine = engineOf(group.Engine);
    if (engine === undefined) return skip(where, `engine ${show(group.Engine)} is not redis, valkey or memcached`);
  } else {
    engine = memberEngine(replicationGroupId, group, clusters) ?? 'redis';
  }
  const tls = tlsOf(group);

  // With cluster mode on, clients need every shard's nodes, which the member
  // clusters already give, and a seed: the configuration endpoint. A primary
  // endpoint does not exist.
  if (clusterMode) {
    const configWhere = `${where} configuration endpoint`;
    const endpoint = readEndpoint(group.ConfigurationEndpoint);
    if (endpoint === undefined) return skip(configWhere, `no configuration endpoint yet (status ${show(group.Status)})`);
    if ('problem' in endpoint) return skip(configWhere, endpoint.problem);
    const target = { kind: 'configuration' as const, engine, replicationGroupId, ...tls, address: endpoint.address, targetPort: endpoint.port };
    return add({ key: targetKeyOf(target), ...target }, configWhere);
  }

  const nodeGroup = listOf(group.NodeGroups)[0];
  if (nodeGroup === undefined) return skip(where, `no node group yet (status ${show(group.Status)})`);

  for (const kind of ['primary', 'reader'] as const) {
    const kindWhere = `${where} ${kind}`;
    const endpoint = readEndpoint(kind === 'primary' ? nodeGroup.PrimaryEndpoint : nodeGroup.ReaderEndpoint);
    if (endpoint === undefined) {
      skip(kindWhere, `no ${kind} endpoint yet (status ${show(group.Status)})`);
      continue;
    }
    if ('problem' in endpoint) {
      skip(kindWhere, endpoint.problem);
      continue;
    }
    const target = { kind, engine, replicationGroupId, ...tls, address: endpoint.address, targetPort: endpoint.port };
    add({ key: targetKeyOf(target), ...target }, kindWhere);
  }
}

/**
 * In-transit encryption as the API states it. AWS always sends the field; when
 * it is missing nothing is claimed, so the plaintext guard does not judge.
 * TransitEncryptionMode "preferred" still counts as TLS: clients can use it.
 */
function tlsOf(item: Record<string, unknown>): { tls?: boolean } {
  return typeof item.TransitEncryptionEnabled === 'boolean' ? { tls: item.TransitEncryptionEnabled } : {};
}

/** The engine of the first member cluster that names a supported one. */
function memberEngine(groupId: string, group: Record<string, unknown>, clusters: Record<string, unknown>[]): Engine | undefined {
  const members = new Set(listOfValues(group.MemberClusters));
  for (const cluster of clusters) {
    if (cluster.ReplicationGroupId !== groupId && !members.has(cluster.CacheClusterId)) continue;
    const engine = engineOf(cluster.Engine);
    if (engine !== undefined) return engine;
  }
  return undefined;
}
