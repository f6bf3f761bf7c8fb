// The config against the host it runs on: what the file leaves to the host
// (aws.region, forward.inboundInterface: auto) is decided here, and what the
// host cannot serve (a missing interface, a listen address it does not hold, a
// port range over a local service) is refused like a bad config: exit 78,
// nothing touched. Pure: the shell (src/cli/host-facts.ts) gathers the facts,
// asking IMDS only for what the file leaves open.

import type { Listener } from '../host/proc-net.js';
import { awsRegionProblem, show } from '../grammar.js';
import { inboundInterfaces, missingListenAddresses } from './listen-addresses.js';
import { AUTO, type Config } from './schema.js';
import { MIN_RANGE_ROOM } from './validate.js';
import type { ConfigIssue } from './issues.js';

/** A value, or why there is none. */
export type Answer<T> = { value: T } | { reason: string };

export interface HostInterface {
  name: string;
  /** Lower-case aa:bb:cc:dd:ee:ff, when the interface has one. */
  mac?: string;
  ipv4: readonly string[];
}

export interface HostFacts {
  interfaces: readonly HostInterface[];
  /** The interface of the default IPv4 route, when there is one. */
  defaultRoute?: string | undefined;
  /** IMDS's primary MAC; asked only for inboundInterface: auto. */
  primaryMac?: Answer<string>;
  /** IMDS's placement/region; asked only without aws.region. */
  imdsRegion?: Answer<string>;
  /** $AWS_REGION. */
  envRegion?: string | undefined;
  /** Listening TCP sockets; absent when they could not be read (the check is then skipped). */
  listeners?: readonly Listener[];
}

/** What to ask IMDS for: only what the file leaves to the host. */
export const imdsQuestions = (file: Config) => ({ region: file.aws.region === AUTO, primaryMac: file.forward.inboundInterface === AUTO });

export interface Decided<T> {
  value: T;
  /** How it was decided, for the start-up log; undefined when the file said it. */
  note?: string;
}

const interfaceList = (facts: HostFacts): string => facts.interfaces.map((i) => i.name).sort().join(', ') || 'none';

/** aws.region: the file's, else the instance's (IMDS), else $AWS_REGION. */
export function decideRegion(file: Config, facts: HostFacts): Decided<string> | ConfigIssue {
  if (file.aws.region !== AUTO) return { value: file.aws.region };
  if (facts.imdsRegion !== undefined && 'value' in facts.imdsRegion) return { value: facts.imdsRegion.value, note: `aws.region is auto: ${facts.imdsRegion.value}, the instance's region (IMDS)` };
  const envProblem = facts.envRegion === undefined || facts.envRegion === '' ? undefined : awsRegionProblem(facts.envRegion);
  if (facts.envRegion && envProblem === undefined) return { value: facts.envRegion, note: `aws.region is auto and IMDS gave none: ${facts.envRegion}, from $AWS_REGION` };
  const imds = facts.imdsRegion === undefined ? 'not asked' : 'reason' in facts.imdsRegion ? facts.imdsRegion.reason : 'no answer';
  const env = facts.envRegion ? `$AWS_REGION ${envProblem}` : '$AWS_REGION is not set';
  return {
    path: 'aws.region',
    message: `auto found no region (IMDSv2 placement/region: ${imds}; ${env}). Set aws.region to the caches' region, e.g. us-east-1`,
  };
}

/**
 * forward.inboundInterface: "auto" is the interface holding the instance's
 * primary MAC (IMDS), else the default route's. A name (or a "+" pattern)
 * must match an interface of this host.
 */
export function decideInterface(file: Config, facts: HostFacts): Decided<string> | ConfigIssue {
  const configured = file.forward.inboundInterface;
  const path = 'forward.inboundInterface';
  if (configured !== AUTO) {
    const names = Object.fromEntries(facts.interfaces.map((i) => [i.name, i.ipv4]));
    if (inboundInterfaces(configured, names).length > 0) return { value: configured };
    const what = configured.endsWith('+') ? `${configured}, which matches none of them` : `${configured}, which does not exist here`;
    return {
      path,
      message: `expected an interface of this host (it has ${interfaceList(facts)}), got ${what}. Set it to auto (the instance's primary interface: ens5 on Nitro instances such as Amazon Linux 2023, eth0 on older ones) or to one of those names`,
    };
  }
  const tried: string[] = [];
  const mac = facts.primaryMac;
  if (mac !== undefined && 'value' in mac) {
    const holder = facts.interfaces.find((i) => i.mac === mac.value);
    if (holder) return { value: holder.name, note: `forward.inboundInterface is auto: ${holder.name} holds the instance's primary MAC ${mac.value} (IMDS)` };
    tried.push(`IMDS names the primary MAC ${mac.value}, which no interface here holds`);
  } else {
    tried.push(`IMDSv2 mac: ${mac === undefined ? 'not asked' : mac.reason}`);
  }
  const route = facts.defaultRoute;
  if (route !== undefined && facts.interfaces.some((i) => i.name === route)) {
    return { value: route, note: `forward.inboundInterface is auto: ${route} carries the default route (${tried.join('; ')})` };
  }
  tried.push(route === undefined ? 'there is no default route' : `the default route's interface ${show(route)} is not usable`);
  return { path, message: `auto found no interface (${tried.join('; ')}); this host has ${interfaceList(facts)}. Set forward.inboundInterface to the interface clients arrive on` };
}

/**
 * The ports each range starts with (its first MIN_RANGE_ROOM) must be free of
 * local services that clients could reach: a listener on every address, or
 * on one the forwards catch (the inbound interface's, or a listen address).
 */
export function portListenerIssues(config: Pick<Config, 'ports' | 'forward'>, facts: HostFacts, inbound: string): ConfigIssue[] {
  if (facts.listeners === undefined) return [];
  const names = Object.fromEntries(facts.interfaces.map((i) => [i.name, i.ipv4]));
  const reachable = new Set(['0.0.0.0', ...inboundInterfaces(inbound, names).flatMap((n) => names[n] ?? []), ...(config.forward.listenAddresses ?? []).map((l) => l.address)]);
  const issues: ConfigIssue[] = [];
  for (const engine of ['redis', 'memcached'] as const) {
    const first = config.ports[engine];
    const last = Math.min(65535, first + MIN_RANGE_ROOM - 1);
    const taken = facts.listeners.filter((l) => l.port >= first && l.port <= last && reachable.has(l.address));
    const ports = [...new Set(taken.map((l) => l.port))].sort((a, b) => a - b);
    if (ports.length === 0) continue;
    const where = taken.filter((l, i) => taken.findIndex((o) => o.port === l.port) === i).map((l) => `${l.address}:${l.port}`).join(', ');
    issues.push({
      path: `ports.${engine}`,
      message: `expected a range free of local services, got ${first}, and its first ${MIN_RANGE_ROOM} ports (${first}-${last}) include ${ports.join(', ')}, where a local process listens (${where}): cachenat's forwards would take ${ports.length > 1 ? 'those ports' : 'that port'} over for allowedSources. Move ports.${engine}, or the service (ss -ltnp shows which)`,
    });
  }
  return issues;
}

/**
 * The config as the daemon runs it on this host, or every reason it cannot:
 * region and interface decided, listen addresses held, port ranges free.
 */
export function configForHost(file: Config, facts: HostFacts): { config: Config; notes: string[] } | { issues: ConfigIssue[] } {
  const region = decideRegion(file, facts);
  const inbound = decideInterface(file, facts);
  const issues: ConfigIssue[] = [];
  if ('path' in region) issues.push(region);
  if ('path' in inbound) issues.push(inbound);
  if ('path' in region || 'path' in inbound) return { issues };
  const config: Config = { ...file, aws: { ...file.aws, region: region.value }, forward: { ...file.forward, inboundInterface: inbound.value } };
  const names = Object.fromEntries(facts.interfaces.map((i) => [i.name, i.ipv4]));
  issues.push(...missingListenAddresses(config, names), ...portListenerIssues(config, facts, inbound.value));
  if (issues.length > 0) return { issues };
  return { config, notes: [region.note, inbound.note].filter((n): n is string => n !== undefined) };
}

