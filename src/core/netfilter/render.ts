// Turns forwards into the exact rule lines of cachenat's own chains.
//
// Every line is written in the canonical form `iptables-save` prints back
// (verified against iptables 1.8.9, nf_tables and legacy), so comparing the
// rendered text with a later save is a plain string comparison: a pass with
// nothing to change sees no difference and writes nothing.
//
// This is the last gate before the kernel: every value that goes into a line
// is checked again here, whatever validated it before.

import type { Engine, RuleForward } from '../model.js';
import { isIpv4, parseCidr, targetAddressProblem } from '../ipv4.js';
import { OWNER_COMMENT } from './types.js';

/** Owned chain → its rule lines (`-A CHAIN …`), in order, per table. */
export interface DesiredRules {
  nat: Record<string, string[]>;
  filter: Record<string, string[]>;
}

export interface RenderOptions {
  /** Interface clients arrive on. */
  inboundInterface: string;
  /** Canonical IPv4 CIDRs allowed to use the forwards, in config order. */
  allowedSources: string[];
  /** `masquerade`, or the IPv4 address to SNAT to. */
  snat: 'masquerade' | string;
  /** The connmark bit that tags flows cachenat DNATed (config forward.connmark). */
  connmark?: number;
}

/** Bit 24: clear of kube-proxy's 0x4000/0x8000, the AWS VPC CNI's 0x80 and tailscale's 0xff0000. */
export const DEFAULT_CONNMARK = 0x1000000;

export function connmarkProblem(mark: unknown): string | undefined {
  if (typeof mark !== 'number' || !Number.isInteger(mark) || mark < 1 || mark > 0x80000000 || (mark & (mark - 1)) !== 0) {
    return `expected a single bit such as 0x1000000, got ${JSON.stringify(mark)}`;
  }
  return undefined;
}

const ENGINES: readonly Engine[] = ['redis', 'valkey', 'memcached'];

// Ids as ElastiCache allows them (letters, digits, hyphens), with some slack
// for dots and underscores, but never a space, quote or anything iptables or
// a shell would read specially.
const ID = '[A-Za-z0-9][A-Za-z0-9._-]{0,63}';
const KEY = new RegExp(`^(?:node/${ID}/${ID}|(?:primary|reader|configuration|serverless|serverless-reader)/${ID})$`);

// Linux interface names: at most 15 characters; iptables adds a trailing `+`
// as a prefix wildcard.
const INTERFACE = /^[A-Za-z0-9_.-]{1,15}\+?$/;

export function keyProblem(key: string): string | undefined {
  return KEY.test(key) ? undefined : `target key ${JSON.stringify(key)} is not of the form node/<cluster>/<node>, primary/<group>, reader/<group>, configuration/<id>, serverless/<name> or serverless-reader/<name> with letters, digits, ".", "_" or "-"`;
}

export function engineProblem(engine: string): string | undefined {
  return (ENGINES as readonly string[]).includes(engine) ? undefined : `engine ${JSON.stringify(engine)} is not one of ${ENGINES.join(', ')}`;
}

export function portProblem(port: unknown): string | undefined {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535
    ? undefined
    : `port ${JSON.stringify(port)} is not an integer from 1 to 65535`;
}

export function interfaceProblem(name: string): string | undefined {
  return INTERFACE.test(name) ? undefined : `interface name ${JSON.stringify(name)} is not a Linux interface name (1-15 of letters, digits, ".", "_", "-", optional trailing "+")`;
}

/** The comment that marks a forward's rules as cachenat's, and names it. */
export const ownerComment = (engine: Engine, key: string): string => `${OWNER_COMMENT} ${engine} ${key}`;

function fail(where: string, problem: string): never {
  throw new Error(`refusing to render iptables rules: ${where}: ${problem}`);
}

function checkForward(f: RuleForward): void {
  const where = `forward ${JSON.stringify(f.key)}`;
  const problem =
    keyProblem(f.key) ??
    engineProblem(f.engine) ??
    portProblem(f.listenPort) ??
    portProblem(f.targetPort) ??
    targetAddressProblem(f.targetIp) ??
    (f.targetIps ?? []).map(targetAddressProblem).find((p) => p !== undefined);
  if (problem) fail(where, problem);
}

export function renderRules(forwards: RuleForward[], options: RenderOptions): DesiredRules {
  const ifaceProblem = interfaceProblem(options.inboundInterface);
  if (ifaceProblem) fail('forward.inboundInterface', ifaceProblem);
  const connmark = options.connmark ?? DEFAULT_CONNMARK;
  const markProblem = connmarkProblem(connmark);
  if (markProblem) fail('forward.connmark', markProblem);

  const sources: string[] = [];
  for (const source of options.allowedSources) {
    const cidr = parseCidr(source);
    if ('error' in cidr) fail('forward.allowedSources', cidr.error);
    if (!sources.includes(cidr.text)) sources.push(cidr.text);
  }

  let snatTarget: string;
  if (options.snat === 'masquerade') snatTarget = '-j MASQUERADE';
  else if (isIpv4(options.snat)) snatTarget = `-j SNAT --to-source ${options.snat}`;
  else fail('forward.snat', `${JSON.stringify(options.snat)} is neither "masquerade" nor an IPv4 address`);

  const ports = new Set<number>();
  const keys = new Set<string>();
  for (const f of forwards) {
    checkForward(f);
    if (ports.has(f.listenPort)) fail(`forward ${JSON.stringify(f.key)}`, `listen port ${f.listenPort} is used by another forward too`);
    if (keys.has(f.key)) fail(`forward ${JSON.stringify(f.key)}`, 'the key appears twice');
    ports.add(f.listenPort);
    keys.add(f.key);
  }
  const sorted = [...forwards].sort((a, b) => a.listenPort - b.listenPort);

  // Only traffic to one of this host's own addresses is DNATed: a packet the
  // NAT instance merely routes must pass untouched. iptables-save leaves out
  // `-s 0.0.0.0/0`, so the canonical form does too.
  const prerouting = sources.map(
    (cidr) =>
      `-A CACHENAT-PREROUTING ${cidr === '0.0.0.0/0' ? '' : `-s ${cidr} `}-i ${options.inboundInterface} -m addrtype --dst-type LOCAL -j CACHENAT-DNAT`,
  );
  const output = ['-A CACHENAT-OUTPUT -m addrtype --dst-type LOCAL -j CACHENAT-DNAT'];

  // Flows are tagged in the conntrack entry: every new connection entering
  // CACHENAT-DNAT gets the bit, a DNAT rule that matches ends the chain with the
  // bit kept, and the last rule clears it again for connections no forward
  // took. SNAT and the FORWARD accept then need one rule each, matching only
  // flows cachenat DNATed (both directions), whatever the number of forwards.
  // With no forwards the three chains stay empty.
  const mark = `0x${connmark.toString(16)}`;
  const dnat = sorted.flatMap((f) => {
    const head = `-A CACHENAT-DNAT -p tcp -m tcp --dport ${f.listenPort} -m comment --comment "${ownerComment(f.engine, f.key)}"`;
    // A name with several addresses: new connections go round-robin over all of
    // them. Rule i of n takes every (n-i)th connection still unclaimed; the last
    // takes the rest.
    const ips = f.targetIps ?? [f.targetIp];
    return ips.map((ip, i) => {
      const nth = i < ips.length - 1 ? ` -m statistic --mode nth --every ${ips.length - i} --packet 0` : '';
      return `${head}${nth} -j DNAT --to-destination ${ip}:${f.targetPort}`;
    });
  });
  if (dnat.length > 0) {
    dnat.unshift(`-A CACHENAT-DNAT -j CONNMARK --set-xmark ${mark}/${mark}`);
    dnat.push(`-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x0/${mark}`);
  }
  const postrouting = dnat.length > 0 ? [`-A CACHENAT-POSTROUTING -m connmark --mark ${mark}/${mark} ${snatTarget}`] : [];
  const forward = dnat.length > 0 ? [`-A CACHENAT-FORWARD -m connmark --mark ${mark}/${mark} -j ACCEPT`] : [];

  return {
    nat: {
      'CACHENAT-PREROUTING': prerouting,
      'CACHENAT-OUTPUT': output,
      'CACHENAT-DNAT': dnat,
      'CACHENAT-POSTROUTING': postrouting,
    },
    filter: { 'CACHENAT-FORWARD': forward },
  };
}

