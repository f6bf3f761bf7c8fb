// Who this instance is, from the instance metadata service (IMDSv2): the
// paths asked, and the validation of every answer before anyone uses it.
// The shell (src/aws/instance-identity.ts) only fetches; each value it
// passes here is untrusted text. The MAC becomes a path segment of later
// requests, so it is checked before those requests are built.

import { imdsPaths, imdsValue, MAX_IMDS_VALUE_CHARS, parseMac, scalar, type Parsed } from '../aws/imds.js';
import { instanceIdProblem, interfaceAddressProblem, networkInterfaceIdProblem, show } from '../grammar.js';

export { imdsPaths, parseMac } from '../aws/imds.js';

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

/** The raw text of each answer, as IMDS sent it. */
export interface ImdsAnswers {
  instanceId: string;
  mac: string;
  interfaceId: string;
  localIpv4s: string;
  localIpv4: string;
}

export const parseInstanceId = (text: string): Parsed<string> => imdsValue(`IMDS ${imdsPaths.instanceId}`, text, instanceIdProblem);

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
  const eni = imdsValue(`IMDS ${imdsPaths.interfaceId(mac.value)}`, answers.interfaceId, networkInterfaceIdProblem);
  if ('error' in eni) return eni;
  const ips = parseLocalIpv4s(answers.localIpv4s, mac.value);
  if ('error' in ips) return ips;
  const primary = imdsValue(`IMDS ${imdsPaths.localIpv4}`, answers.localIpv4, interfaceAddressProblem);
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
