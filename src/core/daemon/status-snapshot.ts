// The status snapshot the daemon publishes after every pass (world-readable,
// nothing secret in it), so `status` and `health` work for an unprivileged
// user who cannot read the kernel's rules.

import type { Forward } from '../model.js';
import type { ForwardConnections } from '../metrics/daemon-metrics.js';
import type { HaStatus } from '../ha/ha-status.js';
import type { AuditStatus } from '../audit/audit-health.js';

export type { HaStatus } from '../ha/ha-status.js';

export interface StatusSnapshot {
  version: 1;
  /** The cachenat release that wrote it (package.json's version). */
  cachenatVersion?: string;
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
  /** Targets the API lists that found no free port (the ports.redis / ports.memcached range is used up): not forwarded. */
  withoutPort?: string[];
  /** Per forward: open connections now and new ones since the daemon started. */
  connections?: ForwardConnections[];
  /** forward.inboundInterface as the daemon runs it (auto decided): health checks it is still there. */
  inboundInterface?: string;
  /** HA pair (config `ha`): this instance's role, the lease, the peer, the shared map. */
  ha?: HaStatus;
  /** Connection audit (config `audit`): the event reader, what was logged and lost. */
  audit?: AuditStatus;
}
