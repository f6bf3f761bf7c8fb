// forward.plaintext: what to do with a cache that does not speak TLS when a
// client range outside private address space may reach it. AWS names
// "unencrypted traffic" as the reason a NAT in front of ElastiCache is for
// testing only; a plaintext forward open to the internet carries data (and
// AUTH tokens) in the clear. Pure.

import { isPrivateRange } from '../ipv4.js';
import type { Forward, TargetKey } from '../model.js';

export type PlaintextPolicy = 'allow' | 'warn' | 'refuse';

/** The allowedSources ranges that are not wholly inside private address space (clients there come over the internet). */
export const publicSources = (allowedSources: readonly string[]): string[] => allowedSources.filter((text) => !isPrivateRange(text));

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
