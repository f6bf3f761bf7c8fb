// The instance metadata service (IMDSv2) as cachenat reads it: the session
// token protocol, the paths asked, and the checks every answer passes before
// anyone uses it. Pure: the shell (src/aws/imds.ts) only fetches, and every
// value it hands here is untrusted text. The HA identity's own answers are
// parsed in ../ha/identity.ts with the same helpers.

import { awsRegionProblem, interfaceAddressProblem, macAddressProblem } from '../grammar.js';

/**
 * The token lifetime asked for. One token serves one read (a handful of
 * values within a few seconds), so a minute is plenty and a leaked token dies soon.
 */
export const IMDS_TOKEN_TTL_SECONDS = 60;
export const IMDS_TOKEN_PATH = '/latest/api/token';
export const IMDS_TOKEN_TTL_HEADER = 'X-aws-ec2-metadata-token-ttl-seconds';
export const IMDS_TOKEN_HEADER = 'X-aws-ec2-metadata-token';
export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';

/** Every metadata path cachenat reads; the per-interface ones need the (validated) MAC. */
export const imdsPaths = {
  instanceId: '/latest/meta-data/instance-id',
  mac: '/latest/meta-data/mac',
  localIpv4: '/latest/meta-data/local-ipv4',
  publicIpv4: '/latest/meta-data/public-ipv4',
  region: '/latest/meta-data/placement/region',
  interfaceId: (mac: string) => `/latest/meta-data/network/interfaces/macs/${mac}/interface-id`,
  localIpv4s: (mac: string) => `/latest/meta-data/network/interfaces/macs/${mac}/local-ipv4s`,
} as const;

/** IMDS answers fit in a few hundred bytes; anything longer is not an answer. */
export const MAX_IMDS_VALUE_CHARS = 4096;

export type Parsed<T> = { value: T } | { error: string };

/** One scalar value: the text, without the one trailing newline some proxies add. */
export const scalar = (text: string): string => (text.endsWith('\n') ? text.slice(0, -1) : text);

/** A scalar answer checked by a grammar rule; `what` names it in the error. */
export function imdsValue(what: string, text: string, problem: (value: string) => string | undefined): Parsed<string> {
  if (text.length > MAX_IMDS_VALUE_CHARS) return { error: `${what}: the answer is ${text.length} characters long, not a value` };
  const value = scalar(text);
  const why = problem(value);
  return why === undefined ? { value } : { error: `${what}: ${why}` };
}

/** The instance's region (placement/region), e.g. eu-west-1. */
export const parseRegion = (text: string): Parsed<string> => imdsValue(`IMDS ${imdsPaths.region}`, text, awsRegionProblem);

/** The MAC of the primary interface (device 0). */
export const parseMac = (text: string): Parsed<string> => imdsValue(`IMDS ${imdsPaths.mac}`, text, macAddressProblem);

/** The instance's public IPv4 (an Elastic IP or an auto-assigned one). */
export const parsePublicIpv4 = (text: string): Parsed<string> => imdsValue(`IMDS ${imdsPaths.publicIpv4}`, text, interfaceAddressProblem);
