// The persisted memory of cachenat: which target owns which port, where it
// pointed last, and which freed ports are still quarantined.

import type { DiscoveredTarget, TargetKey } from '../model.js';

export interface PortEntry extends DiscoveredTarget {
  listenPort: number;
  /** Last successful resolution of `address`. */
  ip?: string;
  /** Every address of the last resolution (sorted, `ip` first) when there were several. */
  ips?: string[];
  /** When `address` first resolved to `ip` (epoch ms). */
  resolvedAt?: number;
  /** First failed resolution since the last success (epoch ms). */
  unresolvedSince?: number;
  /** First complete API answer that no longer listed this target (epoch ms). */
  goneSince?: number;
}

/** A port whose target was removed. Nobody else gets it before `reuseAfter`. */
export interface ReleasedPort {
  port: number;
  key: TargetKey;
  releasedAt: number;
}

export interface PortState {
  version: 1;
  entries: PortEntry[];
  released: ReleasedPort[];
}

export const emptyPortState = (): PortState => ({ version: 1, entries: [], released: [] });
