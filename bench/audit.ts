// The connection audit's figures, on the lab (lab/rig.ts) with the real daemon
// forwarding to three real Redis servers (BENCHMARKS.md section 7):
//
//   delivery: a burst of short connections (10,000 in 10 s by default) through
//     the forwards, with one event reader at a time listening in the NAT
//     namespace: `conntrack -E` with every event, `conntrack -E -e DESTROY`,
//     the same with `-b 16 MB`, cachenat's reader (src/audit/reader-program.ts)
//     with the kernel's default buffer and with 16 MB (DESTROY only, and NEW +
//     DESTROY), and finally the daemon itself with audit on. Each row: the
//     fraction of flows the reader saw end, and what it said about the rest.
//   cost: the daemon's CPU, itself and every child (the reader included), with
//     audit off and on, while clients open 1,000 new connections a second;
//     windows alternate off/on so drift in the machine's load hits both alike.
//
//   node dist/bench/audit.js [--part delivery|cost|all] [--burst 10000] [--seconds 10] [--runs 1]
//                            [--time-wait 120] [--only TEXT]
//                            [--rate 1000] [--window 60] [--windows 3] [--cost-time-wait 2]
//
// --time-wait: the NAT namespace's nf_conntrack_tcp_timeout_time_wait during
// the bursts (the kernel's default, 120 s: the flows end, in the kernel's
// garbage collector's batches, two minutes after they closed). The cost part
// uses a short one (--cost-time-wait) so that flows end at the rate they
// begin within the measured window. Progress on stderr; one JSON line with
// every figure on stdout. Needs root.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { compiledLabFile } from '../lab/lab.js';
import type { LabProcess } from '../lab/process.js';
import { startRig, type LabRig, type LabSettings } from '../lab/rig.js';
import { READER_PROGRAM } from '../src/audit/reader-program.js';
import { readerArguments } from '../src/audit/event-reader.js';
import { parseAuditLine } from '../src/core/audit/record.js';
import { unitNodeOptions } from './lab-daemon.js';
import { median, round, say, sleep } from './util.js';

const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'all' },
    burst: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '1' },
    'time-wait': { type: 'string', default: '120' },
    only: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    window: { type: 'string', default: '60' },
    windows: { type: 'string', default: '3' },
    'cost-time-wait': { type: 'string', default: '2' },
  },
});

const MARK = 0x1000000;
const MARK_HEX = `0x${MARK.toString(16)}`;
const PORTS = [6379, 6380, 6381]; // primary/orders, reader/orders, node/orders-001: three Redis servers share the load
const BUFFER_16MB = 16 << 20;

interface Seen {
  ended: number;
  lostReports: number;
  /** Events reported lost, when the reader can say. */
  lostCount: number | undefined;
}

interface Listener {
  name: string;
  /** Starts listening in the NAT namespace; `stop` tells what was seen. */
  listen(rig: LabRig): Promise<{ stop(): Promise<Seen & { cpuSeconds: number }> }>;
}

/** A reader process in the NAT namespace, its lines counted. */
function processListener(name: string, command: string[], ended: (line: string) => boolean, lost: (line: string) => { count?: number } | undefined): Listener {
  return {
    name,
    async listen(rig) {
      const [file, ...args] = command as [string, ...string[]];
      const child: ChildProcess = spawn('ip', ['netns', 'exec', rig.lab.ns.nat, file, ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
      (child.stdio[3] as NodeJS.WritableStream).end(file === 'python3' ? READER_PROGRAM : '');
      const seen: Seen = { ended: 0, lostReports: 0, lostCount: undefined };
      let ready = file !== 'python3';
      const onLine = (line: string) => {
        if (line.startsWith('R ')) ready = true;
        if (ended(line)) seen.ended++;
        const l = lost(line);
        if (l) {
          seen.lostReports++;
          if (l.count !== undefined) seen.lostCount = (seen.lostCount ?? 0) + l.count;
        }
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', onLine);
      // conntrack says nothing once subscribed: give it a moment.
      for (let i = 0; i < 100 && !ready; i++) await sleep(50);
      if (!ready) throw new Error(`${name}: not ready`);
      if (file !== 'python3') await sleep(500);
      return {
        async stop() {
          const cpuSeconds = cpuOf(child.pid!);
          child.kill('SIGTERM');
          await new Promise((resolve) => child.once('exit', resolve));
          return { ...seen, cpuSeconds };
        },
      };
    },
  };
}

const conntrackEnded = (line: string) => line.includes('[DESTROY]') && line.includes(`mark=${MARK}`);
const conntrackLost = (line: string) => (line.includes('ENOBUFS') ? {} : undefined);
const readerEnded = (line: string) => line.startsWith('D ');
const readerLost = (line: string) => {
  if (!line.startsWith('L ')) return undefined;
  const n = Number(line.split(' ')[1]);
  return Number.isInteger(n) ? { count: n } : {};
};
const conntrackE = (extra: string[]) => ['conntrack', '-E', ...extra, '-o', 'extended,timestamp,id', '--mark', `${MARK_HEX}/${MARK_HEX}`];
const reader = (starts: boolean, bufferBytes: number) => ['python3', ...readerArguments({ mark: MARK, starts, bufferBytes })];

/** The daemon itself with audit on: its file and its status say what was logged and lost. */
const daemonListener: Listener = {
  name: 'cachenat run, audit on (16 MiB)',
  async listen(rig) {
    const file = join(rig.dir, `audit-${Date.now()}.jsonl`);
    const daemon = await restartDaemon(rig, { audit: { file } });
    await waitForAuditReady(file);
    return {
      async stop() {
        const records = readFileSync(file, 'utf8').split('\n').flatMap((l) => parseAuditLine(l) ?? []);
        const gaps = records.filter((r) => r.event === 'gap' && r.cause === 'overrun');
        const health = await rig.cli(['health']);
        say(`daemon health after the burst: exit ${health.exitCode}: ${health.stdout.split('\n')[0]}`);
        const cpuSeconds = treeCpu(daemon.pid);
        return {
          ended: records.filter((r) => r.event === 'end').length,
          lostReports: gaps.length,
          lostCount: gaps.reduce((a, g) => a + (g.event === 'gap' ? (g.lost ?? 0) : 0), 0),
          cpuSeconds,
        };
      },
    };
  },
};

const LISTENERS: Listener[] = [
  processListener('conntrack -E (all events)', conntrackE([]), conntrackEnded, conntrackLost),
  processListener('conntrack -E -e DESTROY', conntrackE(['-e', 'DESTROY']), conntrackEnded, conntrackLost),
  processListener('conntrack -E -e DESTROY -b 16 MB', conntrackE(['-e', 'DESTROY', '-b', String(BUFFER_16MB)]), conntrackEnded, conntrackLost),
  processListener('reader, DESTROY, default buffer', reader(false, 0), readerEnded, readerLost),
  processListener('reader, NEW+DESTROY, 16 MB', reader(true, BUFFER_16MB), readerEnded, readerLost),
  processListener('reader, DESTROY, 16 MB', reader(false, BUFFER_16MB), readerEnded, readerLost),
  daemonListener,
];

/** utime + stime of a process, in seconds (0 once it is gone). */
function cpuOf(pid: number, withChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // fields after the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    return (f[11]! + f[12]! + (withChildren ? f[13]! + f[14]! : 0)) / 100;
  } catch {
    return 0;
  }
}

/** The daemon's CPU and every child's: those it waited for (cutime, cstime) and those still running (the reader). */
function treeCpu(pid: number): number {
  let total = cpuOf(pid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += cpuOf(Number(entry), true);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

const BASE_SETTINGS: LabSettings = { discoveryInterval: '30s', dnsInterval: '5s', removalGrace: '10m', apiTimeout: '10s', logLevel: 'info' };
let daemon: LabProcess | undefined;

async function restartDaemon(rig: LabRig, options: { audit?: { file: string } }): Promise<LabProcess> {
  await daemon?.stop(10_000);
  rig.configure({ ...BASE_SETTINGS, extra: options.audit ? `audit:\n  enabled: true\n  file: ${options.audit.file}\n` : '' });
  // CACHENAT_BENCH_NODE_OPTIONS: more V8 flags for the daemon (e.g. --cpu-prof --cpu-prof-dir=DIR to see where its time goes).
  const nodeOptions = [unitNodeOptions(), process.env.CACHENAT_BENCH_NODE_OPTIONS ?? ''].join(' ').trim();
  daemon = (await rig.start({ env: { NODE_OPTIONS: nodeOptions }, readyTimeoutMs: 60_000 })).process;
  return daemon;
}

async function waitForAuditReady(file: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes('"cause":"started"')) return;
    await sleep(50);
  }
  throw new Error(`the audit did not start writing ${file}`);
}

async function marked(rig: LabRig): Promise<number> {
  const r = await rig.lab.exec(rig.lab.ns.nat, 'conntrack', ['-L', '-p', 'tcp', '--mark', `${MARK_HEX}/${MARK_HEX}`], { reject: false });
  return r.stdout.split('\n').filter((l) => l.startsWith('tcp')).length;
}

/** Connections from the client namespace at `rate` per second; resolves when all are done. */
function load(rig: LabRig, rate: number, count: number): { done: Promise<{ completed: number; failed: number; elapsedMs: number }>; stop(): void } {
  const proc = rig.lab.spawnIn(rig.lab.ns.client, process.execPath, [compiledLabFile('flow-load.js'), rig.lab.addr.natExt, PORTS.join(','), 'redis', '--rate', String(rate), '--count', String(count), '--payload', '16'], { label: 'flow-load' });
  const done = proc.exited.then(() => {
    const line = proc.stdout.find((l) => l.startsWith('{'));
    if (!line) throw new Error(`flow-load printed no result: ${proc.output.slice(-5).join(' | ')}`);
    return JSON.parse(line) as { completed: number; failed: number; elapsedMs: number };
  });
  return { done, stop: () => proc.kill('SIGKILL') };
}

async function drained(rig: LabRig, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let left = await marked(rig);
  while (left > 0 && Date.now() < deadline) {
    await sleep(1000);
    left = await marked(rig);
  }
  return left;
}

async function setTimeWait(rig: LabRig, seconds: string): Promise<void> {
  await rig.lab.exec(rig.lab.ns.nat, 'sysctl', ['-qw', `net.netfilter.nf_conntrack_tcp_timeout_time_wait=${seconds}`]);
}

async function delivery(rig: LabRig): Promise<unknown[]> {
  const count = Number(values.burst);
  const seconds = Number(values.seconds);
  const timeWait = Number(values['time-wait']);
  await setTimeWait(rig, values['time-wait']!);
  const rows: unknown[] = [];
  const chosen = values.only === undefined ? LISTENERS : LISTENERS.filter((l) => l.name.includes(values.only!));
  for (let run = 0; run < Number(values.runs); run++) {
    for (const listener of chosen) {
      if (listener !== daemonListener) await restartDaemon(rig, {});
      const listening = await listener.listen(rig);
      const loadBefore = loadavg()[0]!;
      const result = await load(rig, Math.ceil(count / seconds), count).done;
      const left = await drained(rig, (timeWait + 180) * 1000);
      await sleep(3000); // the last events reach the reader
      const seen = await listening.stop();
      const row = {
        reader: listener.name,
        run,
        flows: result.completed,
        failed: result.failed,
        burstMs: result.elapsedMs,
        logged: seen.ended,
        fractionLogged: round(seen.ended / result.completed, 3),
        lossReports: seen.lostReports,
        lostReported: seen.lostCount ?? null,
        unaccounted: seen.lostCount === undefined ? null : result.completed - seen.ended - seen.lostCount,
        leftInTable: left,
        readerCpuS: round(seen.cpuSeconds),
        loadAverage: { before: round(loadBefore), after: round(loadavg()[0]!) },
      };
      say(JSON.stringify(row));
      rows.push(row);
    }
  }
  return rows;
}

async function cost(rig: LabRig): Promise<unknown> {
  const rate = Number(values.rate);
  const windowS = Number(values.window);
  const warmS = 5;
  await setTimeWait(rig, values['cost-time-wait']!);
  const windows: { audit: boolean; cpuPercent: number; readerPercent: number; flows: number; logged: number | null; lost: number | null; load: number }[] = [];
  for (let w = 0; w < 2 * Number(values.windows); w++) {
    const on = w % 2 === 1;
    const file = join(rig.dir, `cost-${w}.jsonl`);
    const d = await restartDaemon(rig, on ? { audit: { file } } : {});
    if (on) await waitForAuditReady(file);
    const running = load(rig, rate, rate * (warmS + windowS + 2));
    await sleep(warmS * 1000);
    const ends = () => (on ? readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"event":"end"')).length : 0);
    const linesBefore = ends();
    const readerPid = () => readdirSync('/proc').find((e) => /^\d+$/.test(e) && (() => { try { const s = readFileSync(`/proc/${e}/stat`, 'utf8'); return s.includes('(python3') && Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === d.pid; } catch { return false; } })());
    const rp = readerPid();
    const before = { tree: treeCpu(d.pid), reader: rp ? cpuOf(Number(rp)) : 0, at: performance.now() };
    await sleep(windowS * 1000);
    const after = { tree: treeCpu(d.pid), reader: rp ? cpuOf(Number(rp)) : 0, at: performance.now() };
    const elapsedS = (after.at - before.at) / 1000;
    const logged = on ? ends() - linesBefore : null;
    running.stop();
    await running.done.catch(() => undefined);
    const lost = on ? readFileSync(file, 'utf8').split('\n').flatMap((l) => parseAuditLine(l) ?? []).reduce((sum, r) => sum + (r.event === 'gap' && r.cause === 'overrun' ? (r.lost ?? 1) : 0), 0) : null;
    const row = { audit: on, cpuPercent: round(((after.tree - before.tree) / elapsedS) * 100), readerPercent: round(((after.reader - before.reader) / elapsedS) * 100), flows: Math.round(rate * elapsedS), logged, lost, load: round(loadavg()[0]!) };
    say(`cost window ${w + 1}: ${JSON.stringify(row)}`);
    windows.push(row);
  }
  const off = windows.filter((w) => !w.audit).map((w) => w.cpuPercent);
  const on = windows.filter((w) => w.audit).map((w) => w.cpuPercent);
  // The kernel ends flows in its garbage collector's batches: a window may log more or fewer flows
  // than began in it. The cost per logged flow, scaled to `rate` a second, is the steadier figure.
  const onWindows = windows.filter((w) => w.audit);
  const loggedPerSecond = median(onWindows.map((w) => (w.logged ?? 0) / windowS));
  const extra = median(on) - median(off);
  return {
    rate,
    windowS,
    windows,
    medianOffPercent: round(median(off)),
    medianOnPercent: round(median(on)),
    extraPercentOfOneCore: round(extra),
    loggedPerSecond: round(loggedPerSecond),
    extraPercentAtRate: loggedPerSecond > 0 ? round((extra * rate) / loggedPerSecond) : null,
    cpuMicrosecondsPerLoggedFlow: loggedPerSecond > 0 ? round((extra / 100) * 1e6 / loggedPerSecond, 1) : null,
    readerMedianPercent: round(median(onWindows.map((w) => w.readerPercent))),
  };
}

const started = { at: new Date().toISOString(), load: round(loadavg()[0]!) };
const rig = await startRig({ lab: { redis: 3, memcached: 0 }, settings: BASE_SETTINGS });
try {
  await rig.lab.exec(rig.lab.ns.nat, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_timestamp=1']);
  const results: Record<string, unknown> = { started, cpus: cpus().length, cpuModel: cpus()[0]?.model };
  if (values.part === 'delivery' || values.part === 'all') results.delivery = await delivery(rig);
  if (values.part === 'cost' || values.part === 'all') results.cost = await cost(rig);
  results.loadAverageAtEnd = round(loadavg()[0]!);
  process.stdout.write(`${JSON.stringify(results)}\n`);
} finally {
  await daemon?.stop(10_000).catch(() => undefined);
  await rig.down();
}
