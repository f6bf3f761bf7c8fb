// What the daemon costs the NAT instance while nothing changes: RSS and CPU
// of `cachenat run` at several fleet sizes with the default intervals (API
// every 30 s, DNS every 5 s), each size in a lab of its own. Names are
// answered by a DNS server in the NAT namespace, as the VPC resolver answers
// them (bench/fake-dns.ts). At 1000 nodes the same lab first times one whole
// daemon pass (bench/daemon-pass), and the daemon's heap is broken down from
// a snapshot taken after its window. Everything runs with the NODE_OPTIONS of
// systemd/cachenat.service.

import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyseHeapSnapshot, type HeapBreakdown } from './heap-snapshot.js';
import { benchFile, startDaemonLab, unitNodeOptions, type DaemonLab } from './lab-daemon.js';
import { fakeTopologyOf, syntheticNodes } from './topology.js';
import { CLI } from '../lab/rig.js';
import { median, round, say, sleep } from './util.js';

/** One fleet size's steady state. */
export interface FootprintRow {
  nodes: number;
  rssPeakMb: number;
  rssMedianMb: number;
  /** Median of the anonymous part of RSS (heap, stacks, malloc); the rest is pages of the node binary and libraries, shared and reclaimable. */
  anonMedianMb: number;
  /** Daemon and children, % of one core. */
  cpuPercent: number;
  selfCpuPercent: number;
  childCpuPercent: number;
  /** Passes completed per minute over the window (status.json's counter). */
  passesPerMinute: number;
  /** Kernel writes during the window (nothing changed, so 0). */
  rulesUpdated: number;
  windowS: number;
}

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
  names: Names;
  intervals: { discoveryS: number; dnsS: number };
  /** Kernel writes during the window (nothing changed, so 0). */
  rulesUpdated: number;
  /** NODE_OPTIONS the daemon ran with: those of systemd/cachenat.service. */
  nodeOptions: string;
  /** Every size measured (the fields above repeat the 1000-node row). */
  sizes?: FootprintRow[];
  /** What the daemon's heap holds at 1000 nodes, after its window. */
  heap?: HeapBreakdown;
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

/** Resident memory in MB: all of it, and the anonymous part (what is not pages of mapped files, such as the node binary). */
function residentMb(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}

/**
 * How the daemon's lookups are answered: `dns`, a DNS server in the NAT
 * namespace (bench/fake-dns.ts) as the VPC resolver answers on EC2; or
 * `hosts-file`, every name in the namespace's hosts file, which glibc scans
 * line by line on every lookup (a cost no EC2 host pays at this scale).
 */
export type Names = 'dns' | 'hosts-file';

/**
 * The lab the footprint is measured in: N synthetic nodes by name, the
 * default intervals. The names of `named` nodes resolve (default N), so one
 * lab can serve several fleet sizes one after another (setTopology).
 */
export async function startFootprintLab(count: number, names: Names = 'dns', named = count): Promise<DaemonLab> {
  const nodes = syntheticNodes(count);
  const table = Object.fromEntries(syntheticNodes(Math.max(count, named)).map((n) => [n.name, n.ip]));
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

export interface FootprintOptions {
  sizes: number[];
  /** Window per size, in seconds. */
  windowS: Record<number, number>;
  quick: boolean;
  passRuns: number;
}

const HEAP_SIGNAL = 'SIGTTIN';

/** How long after READY the windows start. */
export const SETTLE_MS = 15_000;

/** Waits until a file ending in `suffix` appears in `dir` and stops growing. */
export async function settledFile(dir: string, suffix: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const file = readdirSync(dir).find((f) => f.endsWith(suffix));
    if (file !== undefined) {
      const size = statSync(join(dir, file)).size;
      if (size > 0 && size === last) return join(dir, file);
      last = size;
    }
    if (Date.now() > deadline) throw new Error(`no ${suffix} in ${dir} after ${timeoutMs} ms`);
    await sleep(500);
  }
}

const passesOf = (rig: DaemonLab): number => {
  try {
    return (JSON.parse(readFileSync(join(rig.dir, 'run', 'status.json'), 'utf8')) as { passes: number }).passes;
  } catch {
    return NaN;
  }
};

/**
 * Runs the daemon for one window at one size, from a clean start (no rules,
 * no port map); with `heap`, a heap snapshot afterwards.
 */
async function measureSize(rig: DaemonLab, nodes: number, windowS: number, options: { passRuns: number; heap: boolean }): Promise<{ row: FootprintRow; daemonPass?: DaemonPassResult; heap?: HeapBreakdown }> {
  const { lab } = rig;
  await rig.serveTopology(fakeTopologyOf(syntheticNodes(nodes), 'name'));
  let daemon: Awaited<ReturnType<DaemonLab['startDaemon']>> | undefined;
  try {
    let daemonPass: DaemonPassResult | undefined;
    if (nodes === 1000) {
      say(`footprint: one whole daemon pass at ${nodes} nodes (API paging, DNS, kernel), ${options.passRuns} runs`);
      const pass = await lab.exec(lab.ns.nat, process.execPath, [benchFile('daemon-pass.js'), '--api', rig.apiUrl, '--runs', String(options.passRuns), '--state', join(rig.dir, 'pass-state')], {
        env: rig.env,
        timeoutMs: 300_000,
      });
      daemonPass = { nodes, ...(JSON.parse(pass.stdout.trim()) as Omit<DaemonPassResult, 'nodes'>) };
    }

    say(`footprint: cachenat run at ${nodes} nodes, default intervals, ${windowS} s window`);
    const snapshots = join(rig.dir, 'heap');
    mkdirSync(snapshots, { recursive: true });
    daemon = await rig.startDaemon(300_000, options.heap ? `--heapsnapshot-signal=${HEAP_SIGNAL} --diagnostic-dir=${snapshots}` : '');
    const pid = daemon.process.pid;
    // Start-up is not the steady state: the first passes, their garbage, and the
    // mark-compacts V8's memory reducer runs some 10 s after the allocation rate drops.
    await sleep(SETTLE_MS);
    const mark = daemon.process.mark();
    const before = cpuSeconds(pid);
    const passesBefore = passesOf(rig);
    const started = performance.now();
    const rss: number[] = [];
    const anon: number[] = [];
    while (performance.now() - started < windowS * 1000) {
      const resident = residentMb(pid);
      rss.push(resident.rss);
      anon.push(resident.anon);
      await sleep(1000);
    }
    const after = cpuSeconds(pid);
    const seconds = (performance.now() - started) / 1000;
    const passes = passesOf(rig) - passesBefore;
    const self = ((after.self - before.self) / seconds) * 100;
    const children = ((after.children - before.children) / seconds) * 100;
    const row: FootprintRow = {
      nodes,
      rssPeakMb: round(Math.max(...rss), 1),
      rssMedianMb: round(median(rss), 1),
      anonMedianMb: round(median(anon), 1),
      cpuPercent: round(self + children, 2),
      selfCpuPercent: round(self, 2),
      childCpuPercent: round(children, 2),
      passesPerMinute: round((passes / seconds) * 60, 1),
      rulesUpdated: daemon.process.output.slice(mark).filter((l) => l.includes('"msg":"rules updated"')).length,
      windowS: round(seconds, 0),
    };
    say(`footprint: ${nodes} nodes: RSS ${row.rssPeakMb} MB peak, ${row.rssMedianMb} MB median (anonymous ${row.anonMedianMb} MB); CPU ${row.cpuPercent}% (daemon ${row.selfCpuPercent}%, children ${row.childCpuPercent}%); ${row.passesPerMinute} passes/min`);
    let heap: HeapBreakdown | undefined;
    if (options.heap) {
      daemon.process.kill(HEAP_SIGNAL);
      const file = await settledFile(snapshots, '.heapsnapshot', 120_000);
      heap = analyseHeapSnapshot(JSON.parse(readFileSync(file, 'utf8')));
      rmSync(file);
    }
    return { row, ...(daemonPass ? { daemonPass } : {}), ...(heap ? { heap } : {}) };
  } finally {
    await daemon?.process.stop(10_000);
    await lab.exec(lab.ns.nat, process.execPath, [CLI, 'flush', '--config', rig.configPath], { env: rig.env });
    for (const leftover of ['state', 'run', 'pass-state']) rmSync(join(rig.dir, leftover), { recursive: true, force: true });
  }
}

export async function benchFootprint(options: FootprintOptions): Promise<{ footprint: FootprintResult; daemonPass?: DaemonPassResult }> {
  const rows: FootprintRow[] = [];
  let daemonPass: DaemonPassResult | undefined;
  let heap: HeapBreakdown | undefined;
  // One lab for every size: the machine's lab lock is taken once.
  const rig = await startFootprintLab(options.sizes[0] ?? 1000, 'dns', Math.max(...options.sizes));
  try {
    for (const nodes of options.sizes) {
      const measured = await measureSize(rig, nodes, options.windowS[nodes] ?? 60, { passRuns: options.passRuns, heap: nodes === 1000 });
      rows.push(measured.row);
      daemonPass ??= measured.daemonPass;
      heap ??= measured.heap;
    }
  } finally {
    await rig.down();
  }
  const main = rows.find((r) => r.nodes === 1000) ?? (rows[rows.length - 1] as FootprintRow);
  return {
    ...(daemonPass ? { daemonPass } : {}),
    footprint: {
      nodes: main.nodes,
      rssMb: main.rssPeakMb,
      cpuPercent: main.cpuPercent,
      rssMedianMb: main.rssMedianMb,
      selfCpuPercent: main.selfCpuPercent,
      childCpuPercent: main.childCpuPercent,
      windowS: main.windowS,
      quick: options.quick,
      names: 'dns',
      intervals: { discoveryS: 30, dnsS: 5 },
      rulesUpdated: main.rulesUpdated,
      nodeOptions: unitNodeOptions(),
      sizes: rows,
      ...(heap ? { heap } : {}),
    },
  };
}
