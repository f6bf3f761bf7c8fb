// The HA-relevant part of an instance's config, as a fingerprint both
// instances of a pair publish in the members item: a digest per key, so a
// difference can be named. These are the keys whose values change what the
// leader writes into the shared map or how it reads what the other wrote: a
// leader with another value would re-place, drain or quarantine targets
// differently after a takeover. Private listen addresses are per instance
// by design (only their Elastic IPs are compared).

import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';

export type Fingerprint = Record<string, string>;

/** Each key, and the part of the config it stands for. */
const KEYS: Record<string, (config: Config) => unknown> = {
  'aws.region': (c) => c.aws.region,
  'discovery.include': (c) => c.discovery.include,
  'discovery.exclude': (c) => c.discovery.exclude,
  'discovery.removalGrace': (c) => c.discovery.removalGrace,
  'ports.redis': (c) => c.ports.redis,
  'ports.memcached': (c) => c.ports.memcached,
  'ports.reuseAfter': (c) => c.ports.reuseAfter,
  'ha.elasticIp': (c) => c.ha?.elasticIp ?? null,
  // Their Elastic IPs and allocation ids, in order (the order places targets); not the private addresses.
  'forward.listenAddresses': (c) => c.forward.listenAddresses?.map((l) => [l.public, l.allocationId ?? null]) ?? null,
};

export const FINGERPRINT_KEYS: readonly string[] = Object.keys(KEYS);

const digest = (value: unknown): string => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);

export function configFingerprint(config: Config): Fingerprint {
  return Object.fromEntries(Object.entries(KEYS).map(([key, of]) => [key, digest(of(config))]));
}

/** The keys both fingerprints carry with different values (a key only one carries, from another release, is not compared). */
export function fingerprintDiff(mine: Fingerprint, theirs: Fingerprint): string[] {
  return Object.keys(mine)
    .filter((key) => theirs[key] !== undefined && theirs[key] !== mine[key])
    .sort();
}
