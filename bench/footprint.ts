// What the daemon costs the NAT instance while nothing changes: RSS and CPU
// of `cachenat run` at 1000 nodes with the default intervals (API every 30 s,
// DNS every 5 s). The 1000 endpoint names resolve through the NAT
// namespace's hosts file (getaddrinfo reads it on every lookup). Before the
// daemon starts, the same lab times one whole daemon pass (bench/daemon-pass).
// Both run with the NODE_OPTIONS of systemd/cachenat.service.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchFile, startDaemonLab, unitNodeOptions, type DaemonLab } from './lab-daemon.js';
import { fakeTopologyOf, syntheticNodes } from './topology.js';
import { median, round, say, sleep } from './util.js';

export interface FootprintResult {
  nodes: number;
  rssMb: number;
  cpuPercent: number;
  /** Median RSS over the window (rssMb is the peak). */
  rssMedianMb: number;
  /** The daemon itself, and the iptables/conntrack programs it ran. */
  selfCpuPercent: number;
  childCpuPercent: number;
  windowS: number;
  quick: boolean;
  names: 'hosts-file';
  intervals: { discoveryS: number; dnsS: number };
  /** Kernel writes during the window (nothing changed, so 0). */
  rulesUpdated: number;
  /** NODE_OPTIONS the daemon ran with: those of systemd/cachenat.service. */
  nodeOptions: string;
}

export interface DaemonPassResult {
  nodes: number;
  firstPassMs: number;
  discoveryPassMs: number;
  dnsPassMs: number;
  describeMs: number;
  resolveMs: number;
  forwards: number;
  writesAfterFirst: number;
  runs: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of the process, and of its waited-for children, in seconds. */
function cpuSeconds(pid: number): { self: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 of proc(5), counted from the state field (3) here.
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]) / CLOCK_TICKS) as [number, number, number, number];
  return { self: utime + stime, children: cutime + cstime };
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/**
 * How the daemon's lookups are answered: `dns`, a DNS server in the NAT
 * namespace (bench/fake-dns.ts) as the VPC resolver answers on EC2; or
 * `hosts-file`, every name in the namespace's hosts file, which glibc scans
 * line by line on every lookup (a cost no EC2 host pays at this scale).
 */
export type Names = 'dns' | 'hosts-file';

/** The lab the footprint is measured in: N synthetic nodes by name, the default intervals. */
export async function startFootprintLab(count: number, names: Names = 'dns'): Promise<DaemonLab> {
  const nodes = syntheticNodes(count);
  const table = Object.fromEntries(nodes.map((n) => [n.name, n.ip]));
  const rig = await startDaemonLab({
    redis: 0,
    memcached: 0,
    topology: fakeTopologyOf(nodes, 'name'),
    hosts: names === 'hosts-file' ? table : {},
    dnsInterval: '5s',
    discoveryInterval: '30s',
  });
  if (names === 'dns') {
    try {
      const file = join(rig.dir, 'dns-names.json');
      writeFileSync(file, JSON.stringify(table));
      const server = rig.lab.spawnIn(rig.lab.ns.nat, process.execPath, [benchFile('fake-dns.js'), '--names', file], { env: { NODE_OPTIONS: '' }, label: 'fake DNS' });
      await server.waitForLine(/^listening$/, 20_000);
    } catch (err) {
      await rig.down();
      throw err;
    }
  }
  return rig;
}

export async function benchFootprint(options: { nodes: number; windowS: number; quick: boolean; passRuns: number }): Promise<{ footprint: FootprintResult; daemonPass: DaemonPassResult }> {
  const rig = await startFootprintLab(options.nodes);
  const { lab } = rig;
  try {
    say(`footprint: one whole daemon pass at ${options.nodes} nodes (API paging, hosts-file DNS, kernel), ${options.passRuns} runs`);
    const pass = await lab.exec(lab.ns.nat, process.execPath, [benchFile('daemon-pass.js'), '--api', rig.apiUrl, '--runs', String(options.passRuns), '--state', join(rig.dir, 'pass-state')], {
      env: rig.env,
      timeoutMs: 300_000,
    });
    const daemonPass = { nodes: options.nodes, ...(JSON.parse(pass.stdout.trim()) as Omit<DaemonPassResult, 'nodes'>) };

    say(`footprint: cachenat run at ${options.nodes} nodes, default intervals, ${options.windowS} s window`);
    const daemon = await rig.startDaemon(120_000);
    const pid = daemon.process.pid;
    await sleep(5_000); // let the start-up pass and its garbage settle
    const mark = daemon.process.mark();
    const before = cpuSeconds(pid);
    const started = performance.now();
    const rss: number[] = [];
    while (performance.now() - started < options.windowS * 1000) {
      rss.push(rssMb(pid));
      await sleep(1000);
    }
    const after = cpuSeconds(pid);
    const seconds = (performance.now() - started) / 1000;
    const rulesUpdated = daemon.process.output.slice(mark).filter((l) => l.includes('"msg":"rules updated"')).length;
    const self = ((after.self - before.self) / seconds) * 100;
    const children = ((after.children - before.children) / seconds) * 100;
    return {
      daemonPass,
      footprint: {
        nodes: options.nodes,
        rssMb: round(Math.max(...rss), 1),
        cpuPercent: round(self + children, 2),
        rssMedianMb: round(median(rss), 1),
        selfCpuPercent: round(self, 2),
        childCpuPercent: round(children, 2),
        windowS: round(seconds, 0),
        quick: options.quick,
        names: 'hosts-file',
        intervals: { discoveryS: 30, dnsS: 5 },
        rulesUpdated,
        nodeOptions: unitNodeOptions(),
      },
    };
  } finally {
    await rig.down();
  }
}
