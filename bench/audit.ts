// The connection audit's two figures, on the lab (lab/rig.ts) with the real
// daemon forwarding to real Redis servers:
//
//   delivery: a burst of short connections (10,000 in 10 s by default) through
//     the forwards, with one event reader at a time listening in the NAT
//     namespace: `conntrack -E` with every event, `conntrack -E -e DESTROY`,
//     the same with `-b`, cachenat's reader (src/audit/reader-program.ts) with
//     the default and a large receive buffer, and the daemon with audit on.
//     Each reports the fraction of flows it saw end, and what it said about
//     the rest.
//   cost: the daemon's CPU (itself and its children, the reader included)
//     with audit off and on, at a steady rate of new connections (1,000/s by
//     default), in alternating windows.
//
//   node dist/bench/audit.js [--part delivery|cost|all] [--burst 10000] [--seconds 10] [--runs 2]
//                            [--rate 1000] [--window 20] [--windows 3] [--time-wait 120]
//
// Prints progress on stderr and one JSON line with every figure on stdout.
// Needs root. BENCHMARKS.md §7 is written from it by hand.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { compiledLabFile } from '../lab/lab.js';
import { startRig, type LabRig } from '../lab/rig.js';
import { READER_BOOTSTRAP, READER_PROGRAM } from '../src/audit/reader-program.js';
import { round, say, sleep } from './util.js';

const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'all' },
    burst: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '2' },
    rate: { type: 'string', default: '1000' },
    window: { type: 'string', default: '20' },
    windows: { type: 'string', default: '3' },
    'time-wait': { type: 'string', default: '120' },
    only: { type: 'string' },
  },
});

const MARK = '0x1000000';
const PORTS = [6379, 6380, 6381]; // primary, reader, a node: three Redis servers share the load

interface Reader {
  name: string;
  /** What is run in the NAT namespace. */
  command: string[];
  /** The line that says an ended flow was seen. */
  ended: (line: string) => boolean;
  /** The line that says events were lost; with the count when the reader knows it. */
  lost: (line: string) => { count?: number } | undefined;
}

const conntrackEnded = (line: string) => line.includes('[DESTROY]') && line.includes('mark=16777216');
const conntrackLost = (line: string) => (line.includes('ENOBUFS') ? {} : undefined);
const ourEnded = (line: string) => line.startsWith('D ');
const ourLost = (line: string) => {
  if (!line.startsWith('L ')) return undefined;
  const n = Number(line.split(' ')[1]);
  return Number.isInteger(n) ? { count: n } : {};
};
const python = (args: string[]) => ['python3', '-I', '-c', READER_BOOTSTRAP, '--mark', MARK, ...args];

const READERS: Reader[] = [
  { name: 'conntrack -E (all events)', command: ['conntrack', '-E', '-o', 'extended,timestamp,id', '--mark', `${MARK}/${MARK}`], ended: conntrackEnded, lost: conntrackLost },
  { name: 'conntrack -E -e DESTROY', command: ['conntrack', '-E', '-e', 'DESTROY', '-o', 'extended,timestamp,id', '--mark', `${MARK}/${MARK}`], ended: conntrackEnded, lost: conntrackLost },
  { name: 'conntrack -E -e DESTROY -b 16 MB', command: ['conntrack', '-E', '-e', 'DESTROY', '-b', String(16 << 20), '-o', 'extended,timestamp,id', '--mark', `${MARK}/${MARK}`], ended: conntrackEnded, lost: conntrackLost },
  { name: 'reader, DESTROY, default buffer', command: python(['--events', 'destroy']), ended: ourEnded, lost: ourLost },
  { name: 'reader, NEW+DESTROY, 16 MB', command: python(['--events', 'new,destroy', '--buffer', String(16 << 20)]), ended: ourEnded, lost: ourLost },
  { name: 'reader, DESTROY, 16 MB', command: python(['--events', 'destroy', '--buffer', String(16 << 20)]), ended: ourEnded, lost: ourLost },
];

interface Listening {
  stop(): Promise<{ ended: number; lostReports: number; lostCount: number | undefined; cpuSeconds: number }>;
}

/** Starts a reader in the NAT namespace; resolves once it listens. */
async function listen(rig: LabRig, reader: Reader): Promise<Listening> {
  const [file, ...args] = reader.command;
  const child: ChildProcess = spawn('ip', ['netns', 'exec', rig.lab.ns.nat, file!, ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  if (file === 'python3') (child.stdio[3] as NodeJS.WritableStream).end(READER_PROGRAM);
  else (child.stdio[3] as NodeJS.WritableStream).end();
  let ended = 0;
  let lostReports = 0;
  let lostCount: number | undefined;
  const onLine = (line: string) => {
    if (reader.ended(line)) ended++;
    const lost = reader.lost(line);
    if (lost) {
      lostReports++;
      if (lost.count !== undefined) lostCount = (lostCount ?? 0) + lost.count;
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  // conntrack says nothing when it is ready; the reader says R.
  await (file === 'python3'
    ? new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', () => resolve());
        child.once('exit', (code) => reject(new Error(`${reader.name} exited ${code}`)));
      })
    : sleep(500));
  return {
    async stop() {
      const cpuSeconds = cpuOf(child.pid!);
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      return { ended, lostReports, lostCount, cpuSeconds };
    },
  };
}

/** utime + stime of a process, in seconds. */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function marked(rig: LabRig): Promise<number> {
  const r = await rig.lab.exec(rig.lab.ns.nat, 'conntrack', ['-L', '--mark', `${MARK}/${MARK}`], { reject: false });
  return r.stdout.split('\n').filter((l) => l.startsWith('tcp')).length;
}

async function burst(rig: LabRig, count: number, seconds: number): Promise<{ completed: number; failed: number; elapsedMs: number }> {
  const r = await rig.lab.exec(rig.lab.ns.client, process.execPath, [compiledLabFile('flow-load.js'), rig.lab.addr.natExt, PORTS.join(','), 'redis', '--rate', String(Math.ceil(count / seconds)), '--count', String(count), '--payload', '16'], { reject: false, timeoutMs: 600_000 });
  const result = JSON.parse(r.stdout) as { completed: number; failed: number; elapsedMs: number };
  return result;
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

async function delivery(rig: LabRig): Promise<unknown[]> {
  const count = Number(values.burst);
  const seconds = Number(values.seconds);
  const timeWait = Number(values['time-wait']);
  const rows: unknown[] = [];
  const chosen = values.only === undefined ? READERS : READERS.filter((r) => r.name.includes(values.only!));
  for (let run = 0; run < Number(values.runs); run++) {
    for (const reader of chosen) {
      const listening = await listen(rig, reader);
      const load = await burst(rig, count, seconds);
      const left = await drained(rig, (timeWait + 120) * 1000);
      await sleep(2000);
      const seen = await listening.stop();
      const row = { reader: reader.name, run, flows: load.completed, failed: load.failed, burstMs: load.elapsedMs, ended: seen.ended, fraction: round(seen.ended / load.completed, 3), lostReports: seen.lostReports, lostCount: seen.lostCount, leftInTable: left, readerCpuS: round(seen.cpuSeconds), load: round(loadavg()[0]!) };
      say(JSON.stringify(row));
      rows.push(row);
    }
  }
  return rows;
}

const rig = await startRig({ lab: { redis: 3, memcached: 0 }, settings: { logLevel: 'info', removalGrace: '10m' } });
try {
  await rig.start();
  for (const [key, value] of [['nf_conntrack_acct', '1'], ['nf_conntrack_timestamp', '1'], ['nf_conntrack_tcp_timeout_time_wait', values['time-wait']!]] as const) {
    await rig.lab.exec(rig.lab.ns.nat, 'sysctl', ['-qw', `net.netfilter.${key}=${value}`]);
  }
  const results: Record<string, unknown> = {};
  if (values.part === 'delivery' || values.part === 'all') results.delivery = await delivery(rig);
  process.stdout.write(`${JSON.stringify(results)}\n`);
} finally {
  await rig.down();
}
