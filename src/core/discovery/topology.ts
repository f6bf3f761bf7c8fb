// From DescribeCacheClusters + DescribeReplicationGroups answers to the list of
// endpoints worth forwarding. Pure: the SDK's output objects in, targets out.
//
// Every value taken from the API ends up in an iptables argument, a state file
// and a log line, so nothing is trusted: fields are checked for type and shape
// here, and anything odd becomes a SkippedItem naming where it was and why.
// Nothing in an answer can make this throw.

import type { CacheCluster, ReplicationGroup } from '@aws-sdk/client-elasticache';
import { targetKeyOf, type DiscoveredTarget, type Engine, type SkippedItem, type Topology } from '../model.js';
import { endpointAddressProblem, engineOf, idProblem, isId, isPort, show } from '../grammar.js';
import { compileFilter, type TargetFilter } from './glob.js';

export interface DescribeResults {
  cacheClusters: CacheCluster[];
  replicationGroups: ReplicationGroup[];
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

  targets.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { targets, skipped };
}

/** What the two walks share: the filter, where results go, and every cluster (for group engines). */
interface Collector {
  selected: (ids: string[]) => boolean;
  add: (target: DiscoveredTarget, where: string) => void;
  skip: (where: string, reason: string) => void;
  clusters: Record<string, unknown>[];
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

  // With cluster mode on, clients need every shard's nodes, which the member
  // clusters already give; a primary endpoint does not exist.
  if (group.ClusterEnabled === true || (typeof group.ClusterMode === 'string' && group.ClusterMode.toLowerCase() === 'enabled')) return;
  if (!selected([replicationGroupId])) return skip(where, 'not selected by discovery.include/exclude');

  let engine: Engine | undefined;
  if (group.Engine !== undefined && group.Engine !== null) {
    engine = engineOf(group.Engine);
    if (engine === undefined) return skip(where, `engine ${show(group.Engine)} is not redis, valkey or memcached`);
  } else {
    engine = memberEngine(replicationGroupId, group, clusters) ?? 'redis';
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
    const target = { kind, engine, replicationGroupId, address: endpoint.address, targetPort: endpoint.port };
    add({ key: targetKeyOf(target), ...target }, kindWhere);
  }
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

/** A checked endpoint, its problem, or undefined when the API gave none (yet). */
function readEndpoint(value: unknown): { address: string; port: number } | { problem: string } | undefined {
  if (!isRecord(value)) return undefined;
  const address = value.Address ?? undefined;
  const port = value.Port ?? undefined;
  if (address === undefined && port === undefined) return undefined;
  if (address === undefined) return { problem: `endpoint has a port (${show(port)}) but no address` };
  if (port === undefined) return { problem: `endpoint ${show(address)} has no port, or one that is not a number` };
  if (typeof address !== 'string') return { problem: `endpoint address ${show(address)} is not text` };
  const addressProblem = endpointAddressProblem(address);
  if (addressProblem !== undefined) return { problem: `endpoint address ${addressProblem}` };
  if (!isPort(port)) {
    return { problem: `endpoint port ${show(port)} is not a TCP port (1-65535)` };
  }
  return { address, port };
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** The objects of a list, ignoring anything that is not an object or a list that is not a list. */
const listOf = (value: unknown): Record<string, unknown>[] => (Array.isArray(value) ? value.filter(isRecord) : []);

const listOfValues = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
