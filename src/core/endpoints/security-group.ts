// The inbound rules the NAT instance's security group needs for the current
// forwards: TCP from every allowed client CIDR to every listen port. Printed
// from the same forwards and allowedSources the daemon uses, so the security
// group and the iptables rules cannot drift apart. Pure: no I/O.

import { portFamilyOf, type Forward, type PortFamily } from '../model.js';
import { parseCidr } from '../ipv4.js';

export interface SecurityGroupRule {
  protocol: 'tcp';
  fromPort: number;
  toPort: number;
  /** Canonical a.b.c.d/n. */
  cidr: string;
  description: string;
}

export interface SecurityGroupInput {
  forwards: Pick<Forward, 'engine' | 'listenPort'>[];
  allowedSources: string[];
}

interface PortRange {
  from: number;
  to: number;
  families: Set<PortFamily>;
}

const FAMILY_LABEL: Record<PortFamily, string> = { redis: 'redis/valkey', memcached: 'memcached' };

/**
 * One rule per (port range, CIDR): listen ports merged into contiguous
 * ranges, CIDRs canonicalised and deduplicated, sorted by port then address.
 * Forwards of every state count: a draining forward still carries clients and
 * an unresolved one gets rules as soon as its name resolves.
 */
export function securityGroupRules(input: SecurityGroupInput): SecurityGroupRule[] {
  const cidrs = canonicalCidrs(input.allowedSources);
  const ranges = portRanges(input.forwards);
  return ranges.flatMap((range) =>
    cidrs.map(({ text }) => ({
      protocol: 'tcp' as const,
      fromPort: range.from,
      toPort: range.to,
      cidr: text,
      description: `cachenat ${[...range.families].sort().map((f) => FAMILY_LABEL[f]).join(', ')}`,
    })),
  );
}

function canonicalCidrs(sources: string[]): { text: string; network: number; prefix: number }[] {
  const byText = new Map<string, { text: string; network: number; prefix: number }>();
  for (const source of sources) {
    const cidr = parseCidr(source.trim());
    if ('error' in cidr) throw new Error(`forward.allowedSources: ${cidr.error}`);
    byText.set(cidr.text, cidr);
  }
  return [...byText.values()].sort((a, b) => a.network - b.network || a.prefix - b.prefix);
}

function portRanges(forwards: SecurityGroupInput['forwards']): PortRange[] {
  const familiesByPort = new Map<number, Set<PortFamily>>();
  for (const { engine, listenPort } of forwards) {
    if (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535) {
      throw new Error(`listen port ${listenPort} of a ${engine} forward is not a TCP port`);
    }
    const families = familiesByPort.get(listenPort) ?? new Set<PortFamily>();
    families.add(portFamilyOf(engine));
    familiesByPort.set(listenPort, families);
  }

  const ranges: PortRange[] = [];
  for (const port of [...familiesByPort.keys()].sort((a, b) => a - b)) {
    const families = familiesByPort.get(port)!;
    const last = ranges.at(-1);
    if (last && last.to === port - 1) {
      last.to = port;
      families.forEach((f) => last.families.add(f));
    } else {
      ranges.push({ from: port, to: port, families: new Set(families) });
    }
  }
  return ranges;
}

const portsText = (rule: Pick<SecurityGroupRule, 'fromPort' | 'toPort'>): string =>
  rule.fromPort === rule.toPort ? String(rule.fromPort) : `${rule.fromPort}-${rule.toPort}`;

/** Aligned columns for people; says so plainly when there is nothing to allow. */
export function renderSecurityGroupRulesTable(rules: SecurityGroupRule[]): string {
  if (rules.length === 0) return 'No forwards yet: the security group needs no cache port rules.\n';
  const rows = [
    ['DIRECTION', 'PROTOCOL', 'PORTS', 'SOURCE', 'DESCRIPTION'],
    ...rules.map((r) => ['inbound', r.protocol, portsText(r), r.cidr, r.description]),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * One `aws ec2 authorize-security-group-ingress` command granting every rule:
 * one IP permission per port range, listing its CIDRs. With no rules it
 * prints a shell comment, which does nothing if run.
 */
export function renderSecurityGroupRulesAwsCli(rules: SecurityGroupRule[], groupIdPlaceholder = 'sg-XXXXXXXX'): string {
  if (rules.length === 0) return '# No forwards yet: the security group needs no cache port rules.\n';

  const permissions = new Map<string, { IpProtocol: string; FromPort: number; ToPort: number; IpRanges: { CidrIp: string; Description: string }[] }>();
  for (const rule of rules) {
    const key = `${rule.protocol}/${rule.fromPort}/${rule.toPort}`;
    const permission = permissions.get(key) ?? { IpProtocol: rule.protocol, FromPort: rule.fromPort, ToPort: rule.toPort, IpRanges: [] };
    permission.IpRanges.push({ CidrIp: rule.cidr, Description: rule.description });
    permissions.set(key, permission);
  }

  return [
    `aws ec2 authorize-security-group-ingress --group-id ${shellWord(groupIdPlaceholder)} \\`,
    `  --ip-permissions ${shellWord(JSON.stringify([...permissions.values()]))}`,
  ].join('\n') + '\n';
}

/** Quotes a word for POSIX shells unless it is plainly safe as is. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
