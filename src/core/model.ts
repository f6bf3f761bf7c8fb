// Domain types shared by the pure core and the shell around it.
// Everything here is plain data: no I/O, no clocks.

export type Engine = 'redis' | 'valkey' | 'memcached';

/** Which port family a target draws from: Redis and Valkey share one range. */
export type PortFamily = 'redis' | 'memcached';

export const portFamilyOf = (engine: Engine): PortFamily =>
  engine === 'memcached' ? 'memcached' : 'redis';

export type TargetKind = 'node' | 'primary' | 'reader';

/**
 * Stable identity of a forward. It never contains an address, so a node whose
 * IP changes (replacement, failover) keeps its key and therefore its port.
 *   node/<cacheClusterId>/<cacheNodeId>
 *   primary/<replicationGroupId>
 *   reader/<replicationGroupId>
 */
export type TargetKey = string;

/** A forwardable endpoint as discovered from the ElastiCache API, already validated. */
export interface DiscoveredTarget {
  key: TargetKey;
  kind: TargetKind;
  engine: Engine;
  cacheClusterId?: string;
  cacheNodeId?: string;
  replicationGroupId?: string;
  /** DNS name (or IPv4 literal) the API gave for this endpoint. */
  address: string;
  /** Port the cache listens on behind the NAT. */
  targetPort: number;
}

/** Something in an API answer that was not turned into a target, and why. */
export interface SkippedItem {
  where: string; // e.g. "cluster c1 node 0002"
  reason: string;
}

/** One complete, successful view of the topology. */
export interface Topology {
  targets: DiscoveredTarget[];
  skipped: SkippedItem[];
}

/** Result of resolving one endpoint name this pass. */
export type Resolution =
  | { ok: true; ip: string }
  | { ok: false; error: string };

export type ForwardState = 'active' | 'draining' | 'unresolved';

/** A forward as the planner wants it to be (and as `status` reports it). */
export interface Forward extends DiscoveredTarget {
  targetIp?: string;
  listenPort: number;
  state: ForwardState;
}

/** A forward that actually gets kernel rules: it has an address to send to. */
export interface RuleForward {
  key: TargetKey;
  engine: Engine;
  listenPort: number;
  targetIp: string;
  targetPort: number;
}

export const targetKeyOf = (t: Pick<DiscoveredTarget, 'kind' | 'cacheClusterId' | 'cacheNodeId' | 'replicationGroupId'>): TargetKey =>
  t.kind === 'node' ? `node/${t.cacheClusterId}/${t.cacheNodeId}` : `${t.kind}/${t.replicationGroupId}`;
