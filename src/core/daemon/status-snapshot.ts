// The status snapshot the daemon publishes after every pass (world-readable,
// nothing secret in it), so `status` and `health` work for an unprivileged
// user who cannot read the kernel's rules.

import type { Forward } from '../model.js';
import type { ForwardConnections } from '../metrics/daemon-metrics.js';

export interface StatusSnapshot {
  version: 1;
  pid: number;
  startedAt: string; // ISO 8601
  /** Updated at the end of every pass: the loop's heartbeat. */
  lastPassAt?: string;
  passes: number;
  lastPassOk: boolean;
  /** Last complete answer from the ElastiCache API. */
  lastSyncAt?: string;
  lastSyncError?: string;
  discoveryIntervalMs: number;
  dnsIntervalMs: number;
  /** Health thresholds from config, in discovery intervals. */
  syncWarnIntervals: number;
  syncCriticalIntervals: number;
  /** True when running on remembered state because the API or the kernel is failing. */
  degraded: boolean;
  degradedReason?: string;
  ipForward?: 0 | 1;
  /** Files cachenat cannot write right now (port map, persisted rules): forwarding goes on, but a restart or reboot may not. */
  diskErrors?: string[];
  /** Standing warnings: a missing optional permission, plaintext caches open to public sources. */
  warnings?: string[];
  /** Last write to the kernel failed with this message. */
  lastKernelError?: string;
  /** Digest of cachenat's own chains as last applied (see netfilter digest). */
  rulesDigest?: string;
  forwards: Forward[];
  /** Per forward: open connections now and new ones since the daemon started. */
  connections?: ForwardConnections[];
  /** HA pair (config `ha`): this instance's role, the lease, the peer, the shared map. */
  ha?: HaStatus;
}

export interface HaStatus {
  role: 'leader' | 'standby' | 'starting';
  /** When this instance took its present role (ISO 8601). */
  roleSince: string;
  group: string;
  leaseMs: number;
  /** Leader with a confirmed hold: it may allocate and write the map. */
  mayAllocate: boolean;
  instanceId?: string;
  /** IMDSv2 could not be read: the instance stands by until it can. */
  identityError?: string;
  /** The lease as last read: its holder (null: released), its term, and when its version last changed (on this instance's clock). */
  lease?: { holder: string | null; term?: number; changedAt: string };
  /** The shared map as last read or written. */
  map?: { version: string; term: number; writer: string; entries: number };
  /** Other instances of the group, and when their heartbeat last changed. */
  peers: { instanceId: string; role: 'leader' | 'standby'; lastSeenAt: string }[];
  /** The leader's Elastic IPs. */
  elasticIps: { allocationId: string; privateIp: string; state: 'held' | 'associating' | 'failed'; error?: string; heldSince?: string }[];
  /** DynamoDB does not answer (since when): forwarding goes on with the last map. */
  storeError?: { error: string; since: string };
  /** Targets the API lists that have no port yet while this instance follows the map. */
  waiting: number;
  /** Map entries that do not fit this instance's forward config. */
  misfits: string[];
}
