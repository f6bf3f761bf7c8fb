// forward.plaintext: what to do with a cache that does not speak TLS when a
// client range outside private address space may reach it. AWS names
// "unencrypted traffic" as the reason a NAT in front of ElastiCache is for
// testing only; a plaintext forward open to the internet carries data (and
// AUTH tokens) in the clear. Pure.

import { parseCidr, type Cidr } from '../ipv4.js';
import type { Forward, TargetKey } from '../model.js';

export type PlaintextPolicy = 'allow' | 'warn' | 'refuse';

// RFC 1918 and the shared address space (RFC 6598): clients there reach the
// NAT over a private network (VPN, peering, Direct Connect), not the internet.
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].map((c) => parseCidr(c) as Cidr);

const within = (inner: Cidr, outer: Cidr): boolean => {
  if (inner.prefix < outer.prefix) return false;
  const mask = outer.prefix === 0 ? 0 : (~0 << (32 - outer.prefix)) >>> 0;
  return ((inner.network & mask) >>> 0) === outer.network;
};

/** The allowedSources ranges that are not wholly inside private address space. */
export function publicSources(allowedSources: readonly string[]): string[] {
  return allowedSources.filter((text) => {
    const cidr = parseCidr(text);
    return 'error' in cidr || !PRIVATE.some((range) => within(cidr, range));
  });
}

export interface PlaintextExposure {
  key: TargetKey;
  /** The cache a person would look for in the console. */
  cache: string;
  listenPort: number;
  /** What the policy did with it. */
  action: 'warn' | 'refuse';
  sources: string[];
}

/**
 * Forwards to caches known to be plaintext (tls === false; unknown is not
 * judged) that a public source range may reach, with what the policy does.
 */
export function plaintextExposures(forwards: readonly Forward[], allowedSources: readonly string[], policy: PlaintextPolicy): PlaintextExposure[] {
  if (policy === 'allow') return [];
  const sources = publicSources(allowedSources);
  if (sources.length === 0) return [];
  return forwards
    .filter((f) => f.tls === false)
    .map((f) => ({ key: f.key, cache: cacheNameOf(f), listenPort: f.listenPort, action: policy, sources }));
}

export const cacheNameOf = (f: Pick<Forward, 'replicationGroupId' | 'cacheClusterId' | 'serverlessCacheName' | 'key'>): string =>
  f.replicationGroupId ?? f.cacheClusterId ?? f.serverlessCacheName ?? f.key;

/** The health and log line for one exposure. */
export function describeExposure(e: PlaintextExposure): string {
  const what = `cache ${e.cache} (${e.key}, port ${e.listenPort}) has no in-transit encryption and ${e.sources.join(', ')} may reach it`;
  return e.action === 'refuse'
    ? `${what}: not forwarded (forward.plaintext: refuse); its port stays reserved`
    : `${what}: forwarded in the clear; turn on in-transit encryption, narrow forward.allowedSources, or set forward.plaintext: allow`;
}
