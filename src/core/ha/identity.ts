// Who this instance is, from the instance metadata service (IMDSv2): the
// paths asked, and the validation of every answer before anyone uses it.
// The shell (src/ha/instance-identity.ts) only fetches; each value it
// passes here is untrusted text. The MAC becomes a path segment of later
// requests, so it is checked before those requests are built.

import { instanceIdProblem, interfaceAddressProblem, macAddressProblem, networkInterfaceIdProblem, show } from '../grammar.js';

export interface InstanceIdentity {
  /** i-0123abcd… (validated). */
  instanceId: string;
  /** eni-…: the primary interface (device-number 0), the one meta-data/mac names. */
  networkInterfaceId: string;
  /** The primary private IPv4 of that interface. */
  privateIp: string;
  /** Every private IPv4 on that interface, the primary first. */
  privateIps: string[];
}

/** The token lifetime asked for (the most IMDS grants: 6 hours). */
export const IMDS_TOKEN_TTL_SECONDS = 21600;
export const IMDS_TOKEN_PATH = '/latest/api/token';
export const IMDS_TOKEN_TTL_HEADER = 'X-aws-ec2-metadata-token-ttl-seconds';
export const IMDS_TOKEN_HEADER = 'X-aws-ec2-metadata-token';
export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';

/** The metadata paths read, in order; the last two need the (validated) MAC. */
export const imdsPaths = {
  instanceId: '/latest/meta-data/instance-id',
  mac: '/latest/meta-data/mac',
  localIpv4: '/latest/meta-data/local-ipv4',
  interfaceId: (mac: string) => `/latest/meta-data/network/interfaces/macs/${mac}/interface-id`,
  localIpv4s: (mac: string) => `/latest/meta-data/network/interfaces/macs/${mac}/local-ipv4s`,
} as const;

/** IMDS answers fit in a few hundred bytes; anything longer is not an answer. */
export const MAX_IMDS_VALUE_CHARS = 4096;

/** The raw text of each answer, as IMDS sent it. */
export interface ImdsAnswers {
  instanceId: string;
  mac: string;
  interfaceId: string;
  localIpv4s: string;
  localIpv4: string;
}

type Parsed<T> = { value: T } | { error: string };

/** One scalar value: the text, without the one trailing newline some proxies add. */
const scalar = (text: string): string => (text.endsWith('\n') ? text.slice(0, -1) : text);

function checked(what: string, text: string, problem: (value: string) => string | undefined): Parsed<string> {
  if (text.length > MAX_IMDS_VALUE_CHARS) return { error: `${what}: the answer is ${text.length} characters long, not a value` };
  const value = scalar(text);
  const why = problem(value);
  return why === undefined ? { value } : { error: `${what}: ${why}` };
}

export const parseInstanceId = (text: string): Parsed<string> => checked(`IMDS ${imdsPaths.instanceId}`, text, instanceIdProblem);

/** The MAC of the primary interface, needed before the per-interface paths can be asked. */
export const parseMac = (text: string): Parsed<string> => checked(`IMDS ${imdsPaths.mac}`, text, macAddressProblem);

/** The addresses of local-ipv4s: one per line, at least one, no repeats, each a unicast IPv4. */
export function parseLocalIpv4s(text: string, mac: string): Parsed<string[]> {
  const what = `IMDS ${imdsPaths.localIpv4s(mac)}`;
  if (text.length > MAX_IMDS_VALUE_CHARS) return { error: `${what}: the answer is ${text.length} characters long, not a list of addresses` };
  const lines = scalar(text).split('\n');
  if (lines.length === 1 && lines[0] === '') return { error: `${what}: the interface has no private IPv4 address` };
  const seen = new Set<string>();
  for (const [i, line] of lines.entries()) {
    const why = interfaceAddressProblem(line);
    if (why !== undefined) return { error: `${what}: line ${i + 1}: ${why}` };
    if (seen.has(line)) return { error: `${what}: ${line} is listed twice` };
    seen.add(line);
  }
  return { value: lines };
}

/**
 * The identity from the five answers, or what is wrong with the first bad
 * one. The primary address (local-ipv4) must be one of the interface's
 * addresses; it comes first in privateIps whatever order IMDS listed them in.
 */
export function parseInstanceIdentity(answers: ImdsAnswers): InstanceIdentity | { error: string } {
  const instanceId = parseInstanceId(answers.instanceId);
  if ('error' in instanceId) return instanceId;
  const mac = parseMac(answers.mac);
  if ('error' in mac) return mac;
  const eni = checked(`IMDS ${imdsPaths.interfaceId(mac.value)}`, answers.interfaceId, networkInterfaceIdProblem);
  if ('error' in eni) return eni;
  const ips = parseLocalIpv4s(answers.localIpv4s, mac.value);
  if ('error' in ips) return ips;
  const primary = checked(`IMDS ${imdsPaths.localIpv4}`, answers.localIpv4, interfaceAddressProblem);
  if ('error' in primary) return primary;
  if (!ips.value.includes(primary.value)) {
    return {
      error: `IMDS: the primary address ${primary.value} (local-ipv4) is not on the primary interface ${eni.value}, which holds ${show(ips.value.join(','))}`,
    };
  }
  return {
    instanceId: instanceId.value,
    networkInterfaceId: eni.value,
    privateIp: primary.value,
    privateIps: [primary.value, ...ips.value.filter((ip) => ip !== primary.value)],
  };
}
