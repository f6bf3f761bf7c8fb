// What a failover does to an HA pair in the lab (lab/ha-rig.ts), measured the
// way issue #12's "Proof" asks: the client's outage (a failover prober on a
// Redis port and a Memcached port through the Elastic IP), the fake EC2's
// association time, the ports by key before and after, and the DNAT rules on
// both hosts. Shared by test/e2e/ha-failover.test.ts and bench/failover.ts.

import { DNAT_RULE_PATTERN } from '../src/core/grammar.js';
import type { HaStatus } from '../src/core/daemon/status-snapshot.js';
import type { FakeAssociation } from './fake-ec2.js';
import { type AttemptSummary, type HaRig, type NatName, type RunningProber } from './ha-rig.js';
import { portsOf, stretch, waitFor } from './rig.js';

export const other = (which: NatName): NatName => (which === 'nat' ? 'nat2' : 'nat');

/** The base topology's forwards the probers use: primary/orders answers `whoami` with redis-11, node/mc/0001 with memc-21. */
export const PROBED = [
  { key: 'primary/orders', protocol: 'redis', answers: 'redis-11' },
  { key: 'node/mc/0001', protocol: 'memcached', answers: 'memc-21' },
] as const;

export type Status = Awaited<ReturnType<HaRig['status']>> & { ha?: HaStatus };

/** `status --json` on that host, with its `ha` part. */
export const statusOf = async (rig: HaRig, which: NatName): Promise<Status> => (await rig.status(which)) as Status;

/** The CACHENAT-DNAT rules of one host (iptables-save -t nat), parsed with the grammar's own pattern. */
export interface DnatRules {
  lines: string[];
  /** Listen port → the keys and targets of its rules. */
  byPort: Map<number, { keys: Set<string>; targets: string[] }>;
  /** Duplicates: a port served for two keys, the same target twice on a port, a line twice. */
  problems: string[];
}

export async function dnatRules(rig: HaRig, which: NatName): Promise<DnatRules> {
  const pattern = new RegExp(`^${DNAT_RULE_PATTERN}$`);
  const lines = (await rig.save(which, 'nat')).split('\n').filter((line) => line.startsWith('-A CACHENAT-DNAT ') && line.includes(' -j DNAT '));
  const byPort = new Map<number, { keys: Set<string>; targets: string[] }>();
  const problems: string[] = [];
  for (const line of lines) {
    const m = pattern.exec(line);
    if (!m) {
      problems.push(`a DNAT rule the grammar does not know: ${line}`);
      continue;
    }
    const port = Number(m[2]);
    const entry = byPort.get(port) ?? { keys: new Set<string>(), targets: [] };
    entry.keys.add(m[4]!);
    entry.targets.push(`${m[5]}:${m[6]}`);
    byPort.set(port, entry);
  }
  for (const [port, { keys, targets }] of byPort) {
    if (keys.size !== 1) problems.push(`--dport ${port} is DNATed for ${keys.size} keys: ${[...keys].join(', ')}`);
    if (new Set(targets).size !== targets.length) problems.push(`--dport ${port} has the same target twice: ${targets.join(', ')}`);
  }
  if (new Set(lines).size !== lines.length) problems.push(`a DNAT line appears twice on ${which}`);
  return { lines, byPort, problems };
}

/** The port each key's DNAT rules listen on, as the kernel has them. */
export const kernelPorts = (rules: DnatRules): Record<string, number> =>
  Object.fromEntries([...rules.byPort].flatMap(([port, { keys }]) => [...keys].map((key) => [key, port])));

export interface Pair {
  leader: NatName;
  standby: NatName;
  /** Ports by key (the leader's status; the standby's is identical). */
  ports: Record<string, number>;
  term: number;
}

/**
 * Waits until `leader` leads with the Elastic IP held (and on its ext0), the
 * other host is its standby, both have `forwards` forwards active on the same
 * ports and exactly the same DNAT rules, without duplicates.
 */
export async function settledPair(rig: HaRig, leader: NatName, forwards: number, timeoutMs = stretch(30_000)): Promise<Pair> {
  const standby = other(leader);
  return waitFor(
    `${leader} leading with the Elastic IP, ${standby} its standby, ${forwards} forwards active and the same rules on both`,
    async () => {
      const [l, s] = await Promise.all([statusOf(rig, leader), statusOf(rig, standby)]);
      if (l.ha?.role !== 'leader' || !l.ha.mayAllocate || l.ha.elasticIps.length === 0 || l.ha.elasticIps.some((e) => e.state !== 'held')) return undefined;
      if (s.ha?.role !== 'standby' || s.ha.lease?.holder !== l.ha.instanceId) return undefined;
      if (![l, s].every((x) => x.forwards.length === forwards && x.forwards.every((f) => f.state === 'active'))) return undefined;
      const ports = portsOf(l);
      if (JSON.stringify(sorted(portsOf(s))) !== JSON.stringify(sorted(ports))) return undefined;
      const [rl, rs] = await Promise.all([dnatRules(rig, leader), dnatRules(rig, standby)]);
      if (rl.problems.length > 0 || rs.problems.length > 0) return undefined;
      if (JSON.stringify([...rl.lines].sort()) !== JSON.stringify([...rs.lines].sort())) return undefined;
      if ((await rig.eipHolder()) !== leader) return undefined;
      return { leader, standby, ports, term: l.ha.lease?.term ?? Number.NaN };
    },
    timeoutMs,
    250,
  );
}

export const sorted = (ports: Record<string, number>): [string, number][] => Object.entries(ports).sort(([a], [b]) => a.localeCompare(b));

/** One prober per PROBED forward, through the Elastic IP, a new connection every 10 ms. */
export async function startProbers(rig: HaRig, ports: Record<string, number>): Promise<{ key: string; answers: string; prober: RunningProber }[]> {
  return Promise.all(
    PROBED.map(async ({ key, protocol, answers }) => {
      const port = ports[key];
      if (port === undefined) throw new Error(`no port for ${key} in ${JSON.stringify(ports)}`);
      return { key, answers, prober: await rig.startProber(port, { protocol }) };
    }),
  );
}

export interface ProbedOutage {
  key: string;
  summary: AttemptSummary;
  /** firstSuccessAfterOutageAt − the event (ms); 0 when no probe failed. */
  servedAgainMs: number;
  /** The prober's own outage (first failure → first success after it); 0 when no probe failed. */
  outageMs: number;
}

/**
 * Stops the probers once each has been served again after `from` (the
 * event: a loss, a handover) and for a while after; their summaries, with
 * the time from the event until each was served again.
 */
export async function stopProbers(
  rig: HaRig,
  probers: Awaited<ReturnType<typeof startProbers>>,
  ports: Record<string, number>,
  from: number,
  timeoutMs: number,
): Promise<ProbedOutage[]> {
  await Promise.all(
    PROBED.map(({ key, protocol, answers }) =>
      waitFor(`${key} answering ${answers} through the Elastic IP again`, async () => (await rig.probe(ports[key]!, protocol, 1_000)) === answers, timeoutMs),
    ),
  );
  // A little of the served state after the outage, so the summary shows it.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return Promise.all(
    probers.map(async ({ key, prober }) => {
      const summary = await prober.stop();
      const again = summary.firstSuccessAfterOutageAt;
      return { key, summary, servedAgainMs: again === null ? 0 : again - from, outageMs: summary.outageMs ?? 0 };
    }),
  );
}

/** The fake EC2's times for one association: call arrived → address on the new ext0, → answer sent, → gratuitous ARP done. */
export interface AssociationTimes {
  to: string;
  movedMs: number;
  answeredMs: number;
  arpingMs: number;
}

export const associationTimes = (a: FakeAssociation): AssociationTimes => ({
  to: a.to.instanceId,
  movedMs: a.movedAt - a.arrivedAt,
  answeredMs: (a.answeredAt ?? Number.NaN) - a.arrivedAt,
  arpingMs: (a.arping?.finishedAt ?? Number.NaN) - a.arrivedAt,
});

/**
 * The associations the fake EC2 made since `count` were made (the list is
 * append-only), once each one's gratuitous ARP has finished (about 2 s after
 * the move; `arpingTimeoutMs` 0: as they are now).
 */
export async function associationsSince(rig: HaRig, count: number, arpingTimeoutMs = stretch(5_000)): Promise<FakeAssociation[]> {
  const made = async () => (await rig.associations()).slice(count);
  if (arpingTimeoutMs === 0) return made();
  return waitFor('the gratuitous ARP after each association', async () => {
    const list = await made();
    return list.length > 0 && list.every((a) => a.arping !== undefined) ? list : undefined;
  }, arpingTimeoutMs, 250).catch(made);
}

/** The time of a daemon's log line (its own `time` field) matching `pattern`, from mark `from` on. */
export async function logTime(rig: HaRig, which: NatName, pattern: RegExp, timeoutMs: number, from: number): Promise<{ at: number; line: string }> {
  const daemon = rig.nodes[which].daemon;
  if (daemon === undefined) throw new Error(`no daemon on ${which}`);
  const line = await daemon.process.waitForLine(pattern, timeoutMs, from);
  return { at: (JSON.parse(line) as { time: number }).time, line };
}

/**
 * Before an event (a loss, a handover): the fake EC2's association count, both
 * probers running and served for half a second, and a mark on the standby's log.
 */
export async function armProbers(rig: HaRig, pair: Pair): Promise<{ associated: number; probers: Awaited<ReturnType<typeof startProbers>>; mark: number }> {
  const associated = (await rig.associations()).length;
  const probers = await startProbers(rig, pair.ports);
  await new Promise((resolve) => setTimeout(resolve, 500));
  return { associated, probers, mark: markLog(rig, pair.standby) };
}

/** A mark on that host's daemon output: lines after it are new. */
export const markLog = (rig: HaRig, which: NatName): number => rig.nodes[which].daemon?.process.mark() ?? 0;

