// The persisted memory of cachenat: which target owns which port (and, in
// address mode, which listen address), where it pointed last, and which freed
// ports and addresses are still quarantined.

import type { DiscoveredTarget, TargetKey } from '../model.js';
import { parseIpv4 } from '../ipv4.js';

/**
 * Where a forward listens. Port mode: `listenPort` on every address of the
 * host. Address mode: `listenPort` (the target's native port) on
 * `listenAddress` only.
 */
export interface Listener {
  listenAddress?: string;
  listenPort: number;
}

export interface PortEntry extends DiscoveredTarget, Listener {
  /**
   * Address mode with every listen address taken: the target listens in port
   * mode on the first address (a port from ports.redis / ports.memcached up).
   */
  fallback?: true;
  /** Last successful resolution of `address`. */
  ip?: string;
  /** Every address of the last resolution (sorted, `ip` first) when there were several (at most MAX_TARGET_IPS). */
  ips?: string[];
  /**
   * Unresolved (no `ip`): the addresses it forwarded to before. Connections
   * already open there are kept; they are forgotten when the name comes back
   * on other addresses, as for any move.
   */
  lastIps?: string[];
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
  /**
   * A fallback's port (address mode): the address it listened on. Its clients
   * dial address:port, which an address listener on that native port would
   * catch too, so nobody else gets that address on that port before `reuseAfter`.
   */
  address?: string;
}

/**
 * Address mode: a listen address whose target was removed (or moved off it).
 * Nobody else gets the address before `reuseAfter`, and no listener that
 * would catch `address:port` (a port-mode forward on that port, a fallback
 * on that address and port) is given to another target either.
 */
export interface ReleasedAddress {
  address: string;
  /** The port its target listened on there (its native port); absent in maps written before it was kept: every port. */
  port?: number;
  key: TargetKey;
  releasedAt: number;
}

export interface PortState {
  version: 1;
  entries: PortEntry[];
  released: ReleasedPort[];
  /** Present only when some address is quarantined, so a port-mode map stays byte-identical. */
  releasedAddresses?: ReleasedAddress[];
}

export const emptyPortState = (): PortState => ({ version: 1, entries: [], released: [] });

/**
 * Two listeners that would catch the same packets: the same port on the same
 * address, or the same port where one of them listens on every address.
 * Returns the first such pair, or undefined when every listener is distinct.
 */
export function listenerClash<T extends Listener>(listeners: readonly T[]): [T, T] | undefined {
  const byPort = new Map<number, T[]>();
  for (const listener of listeners) {
    const same = byPort.get(listener.listenPort) ?? [];
    const other = same.find((o) => o.listenAddress === undefined || listener.listenAddress === undefined || o.listenAddress === listener.listenAddress);
    if (other) return [other, listener];
    same.push(listener);
    byPort.set(listener.listenPort, same);
  }
  return undefined;
}

/**
 * Hands out keys and listeners one at a time: each call says whether this one
 * is still free (no key twice, no listener that would catch another's
 * packets) and takes it if so. In time proportional to the entries, for maps
 * of thousands rebuilt in one go.
 */
export function listenerClaims(): (claim: Listener & { key: string }) => boolean {
  const keys = new Set<string>();
  // Per port, the addresses taken on it; undefined stands for every address (port mode).
  const ports = new Map<number, Set<string | undefined>>();
  return ({ key, listenAddress, listenPort }) => {
    const taken = ports.get(listenPort);
    if (keys.has(key) || (taken !== undefined && (listenAddress === undefined || taken.has(undefined) || taken.has(listenAddress)))) return false;
    keys.add(key);
    ports.set(listenPort, (taken ?? new Set()).add(listenAddress));
    return true;
  };
}

/** "10.0.1.21:6379", or ":6379" in port mode: for messages. */
export const listenerText = (l: Listener): string => `${l.listenAddress ?? ''}:${l.listenPort}`;

/** Listeners in a fixed order: by port, then by address (numerically; port mode first). */
export const compareListeners = (a: Listener, b: Listener): number =>
  a.listenPort - b.listenPort || (a.listenAddress === undefined ? -1 : parseIpv4(a.listenAddress) ?? 0) - (b.listenAddress === undefined ? -1 : parseIpv4(b.listenAddress) ?? 0);
