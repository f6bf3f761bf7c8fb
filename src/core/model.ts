// Domain types shared by the pure core and the shell around it.
// Everything here is plain data: no I/O, no clocks.

export type Engine = 'redis' | 'valkey' | 'memcached';

/** Which port family a target draws from: Redis and Valkey share one range. */
export type PortFamily = 'redis' | 'memcached';

export const portFamilyOf = (engine: Engine): PortFamily =>
  engine === 'memcached' ? 'memcached' : 'redis';

export type TargetKind = 'node' | 'primary' | 'reader' | 'configuration' | 'serverless' | 'serverless-reader';

/**
 * The describe call whose answer governs a target's membership. When one call
 * fails, only its targets are held as they were; the others' still change.
 * DescribeCacheClusters and DescribeReplicationGroups are read as one unit
 * ("classic"): a group's targets need its member clusters' engine.
 */
export type TargetSource = 'classic' | 'serverless';

export const targetSourceOf = (kind: TargetKind): TargetSource =>
  kind === 'serverless' || kind === 'serverless-reader' ? 'serverless' : 'classic';

/**
 * Stable identity of a forward. It never contains an address, so a node whose
 * IP changes (replacement, failover) keeps its key and therefore its port.
 *   node/<cacheClusterId>/<cacheNodeId>
 *   primary/<replicationGroupId>
 *   reader/<replicationGroupId>
 *   configuration/<replicationGroupId or Memcached cacheClusterId>
 *   serverless/<serverlessCacheName>
 *   serverless-reader/<serverlessCacheName>
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
  serverlessCacheName?: string;
  /** The cache speaks TLS (TransitEncryptionEnabled; Serverless always). Clients must send `address` as SNI. */
  tls?: boolean;
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
  /** Sources whose call failed this time: their targets are kept exactly as they were. */
  held?: TargetSource[];
}

/** Result of resolving one endpoint name this pass. */
export type Resolution =
  /** `ip` is the lowest address; `ips` lists every address (sorted) when the name has several. */
  | { ok: true; ip: string; ips?: string[] }
  /**
   * ipv6Only: the name has AAAA records but no A record. noAnswer: silence (a
   * timeout, a resolver that did not answer), not a verdict on the name: the
   * last answer stands.
   */
  | { ok: false; error: string; ipv6Only?: true; noAnswer?: true };

/** `refused`: a plaintext cache that forward.plaintext: refuse keeps closed; its port stays reserved. */
export type ForwardState = 'active' | 'draining' | 'unresolved' | 'refused';

/** A forward as the planner wants it to be (and as `status` reports it). */
export interface Forward extends DiscoveredTarget {
  /** Address mode: the private address this target listens on (with its native port). */
  listenAddress?: string;
  /** Address mode, no address left: listens in port mode on the first address. */
  fallback?: true;
  targetIp?: string;
  /** Every address new connections are spread over, when the name resolves to several. */
  targetIps?: string[];
  /** Unresolved: the addresses it forwarded to last; connections already open there are kept. */
  lastIps?: string[];
  /** Its name has only IPv6 addresses (AAAA): cachenat forwards IPv4 only, so it is not served. */
  ipv6Only?: true;
  listenPort: number;
  state: ForwardState;
}

/** A forward that actually gets kernel rules: it has an address to send to. */
export interface RuleForward {
  key: TargetKey;
  engine: Engine;
  /** Address mode: the DNAT rule matches this destination address too. */
  listenAddress?: string;
  listenPort: number;
  targetIp: string;
  /** All addresses (targetIp among them) when new connections are spread over several. */
  targetIps?: string[];
  targetPort: number;
}

/**
 * Why the flows of a forward are forgotten (their conntrack entries deleted):
 * `moved`, the target's address changed (clients must reconnect to the new
 * one); the others take access away: `removed` (the target left after its
 * grace), `refused` (forward.plaintext: refuse), `relocated` (the listener
 * left the config: another mode, an address dropped from the pool), `source`
 * (forward.allowedSources no longer holds the client).
 */
export type FlowCause = 'moved' | 'removed' | 'refused' | 'relocated' | 'source';

/** What an audit or a log calls the two kinds of cause. */
export type FlowReason = 'moved' | 'revoked';

export const flowReasonOf = (cause: FlowCause): FlowReason => (cause === 'moved' ? 'moved' : 'revoked');

/**
 * A set of flows cachenat DNATed (they carry its connmark) that must be
 * forgotten: those that came in on a listener (its port; in address mode its
 * own address and port) and went to `targetIp`, or those from a source range.
 */
export type FlowFilter =
  | { kind: 'listener'; listenAddress?: string; listenPort: number; targetIp: string; cause: Exclude<FlowCause, 'source'> }
  | { kind: 'source'; source: string; cause: 'source' };

export const targetKeyOf = (
  t: Pick<DiscoveredTarget, 'kind' | 'cacheClusterId' | 'cacheNodeId' | 'replicationGroupId' | 'serverlessCacheName'>,
): TargetKey => {
  if (t.kind === 'node') return `node/${t.cacheClusterId}/${t.cacheNodeId}`;
  if (t.kind === 'serverless' || t.kind === 'serverless-reader') return `${t.kind}/${t.serverlessCacheName}`;
  if (t.kind === 'configuration') return `configuration/${t.replicationGroupId ?? t.cacheClusterId}`;
  return `${t.kind}/${t.replicationGroupId}`;
};
