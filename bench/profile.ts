// `npm run bench:profile -- [--nodes 1000] [--window 60] [--keep DIR] [--allocations]`:
// where a steady daemon's memory and CPU go. Runs `cachenat run` in the lab
// at N nodes with the default intervals (as the footprint section does), with
// `--cpu-prof` on, takes a heap snapshot at the end of the window, and prints
// the heap by kind and package, the objects of cachenat's own classes with
// what they retain, and the main thread's time by package, function and part
// of the pass. Needs root. The profiler costs CPU itself: take CPU figures
// from the footprint section, and the split from here.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { analyseCpuProfile, type CpuBreakdown, type CpuProfile } from './cpu-profile.js';
import { analyseHeapSnapshot, type HeapBreakdown } from './heap-snapshot.js';
import { SETTLE_MS, settledFile, startFootprintLab, type Names } from './footprint.js';
import { benchFile } from './lab-daemon.js';
import { round, say, sleep } from './util.js';

const HEAP_SIGNAL = 'SIGTTIN';

export interface ProfileResult {
  nodes: number;
  windowS: number;
  heap: HeapBreakdown;
  cpu: CpuBreakdown;
}

export async function profileDaemon(options: { nodes: number; windowS: number; names: Names; keep?: string }): Promise<ProfileResult> {
  const dir = options.keep ?? mkdtempSync(join(tmpdir(), 'cachenat-profile-'));
  mkdirSync(dir, { recursive: true });
  const rig = await startFootprintLab(options.nodes, options.names);
  try {
    say(`profile: cachenat run at ${options.nodes} nodes with --cpu-prof, ${options.windowS} s, then a heap snapshot`);
    const daemon = await rig.startDaemon(180_000, `--cpu-prof --cpu-prof-dir=${dir} --heapsnapshot-signal=${HEAP_SIGNAL} --diagnostic-dir=${dir}`);
    await sleep(SETTLE_MS); // as the footprint section does
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    await sleep(options.windowS * 1000);
    const toUs = Number(process.hrtime.bigint() / 1000n);
    daemon.process.kill(HEAP_SIGNAL);
    const snapshotFile = await settledFile(dir, '.heapsnapshot', 120_000);
    await daemon.process.stop(30_000);
    const profileFile = await settledFile(dir, '.cpuprofile', 30_000);
    say('profile: analysing the heap snapshot and the CPU profile');
    const heap = analyseHeapSnapshot(JSON.parse(readFileSync(snapshotFile, 'utf8')));
    const cpu = analyseCpuProfile(JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile, { fromUs, toUs });
    return { nodes: options.nodes, windowS: options.windowS, heap, cpu };
  } finally {
    await rig.down();
    if (options.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MB`;

export function profileText(p: ProfileResult): string {
  const h = p.heap;
  const lines = [
    `Heap at ${p.nodes} nodes: ${mb(h.totalBytes)} in live objects`,
    ...Object.entries(h.byKind).map(([k, v]) => `  ${k.padEnd(12)} ${mb(v)}`),
    'Code and source text by package:',
    ...h.codeByPackage.map((x) => `  ${x.pkg.padEnd(40)} ${mb(x.bytes).padStart(9)}  (${x.scripts} scripts)`),
    "cachenat's objects and what they retain:",
    ...h.retainedBy.map((x) => `  ${x.name.padEnd(40)} ${mb(x.retainedBytes).padStart(9)}  (${x.count})`),
    'Data by constructor (own size):',
    ...h.topConstructors.map((x) => `  ${x.name.slice(0, 40).padEnd(40)} ${mb(x.bytes).padStart(9)}  (${x.count})`),
    '',
    `Main thread over ${round(p.cpu.wallMs / 1000, 0)} s: busy ${round(p.cpu.busyMs, 0)} ms (${round((p.cpu.busyMs / p.cpu.wallMs) * 100, 2)}%)`,
    'By package (self time):',
    ...p.cpu.byPackage.slice(0, 12).map((x) => `  ${x.pkg.padEnd(40)} ${round(x.ms, 0).toString().padStart(7)} ms`),
    'By part of the pass (inclusive):',
    ...p.cpu.spans.map((x) => `  ${x.name.padEnd(40)} ${round(x.ms, 0).toString().padStart(7)} ms`),
    'Top functions (self time):',
    ...p.cpu.topFunctions.map((x) => `  ${`${x.fn} ${x.where}`.slice(0, 60).padEnd(60)} ${round(x.ms, 0).toString().padStart(7)} ms`),
  ];
  return lines.join('\n');
}

/** Re-analyses the files a `--keep DIR` run left (no lab needed). */
export function analyseKept(dir: string, nodes: number): ProfileResult {
  const file = (suffix: string) => join(dir, readdirSync(dir).find((f) => f.endsWith(suffix)) ?? '');
  return { nodes, windowS: NaN, heap: analyseHeapSnapshot(JSON.parse(readFileSync(file('.heapsnapshot'), 'utf8'))), cpu: analyseCpuProfile(JSON.parse(readFileSync(file('.cpuprofile'), 'utf8')) as CpuProfile) };
}

/** Where six passes (one asking the API) allocate, with the daemon's wiring (bench/daemon-pass.ts --allocations). */
export async function passAllocations(nodes: number): Promise<string> {
  const rig = await startFootprintLab(nodes);
  try {
    const r = await rig.lab.exec(rig.lab.ns.nat, process.execPath, [benchFile('daemon-pass.js'), '--api', rig.apiUrl, '--runs', '3', '--state', join(rig.dir, 'pass-state'), '--allocations'], { env: rig.env, timeoutMs: 300_000 });
    return r.stderr;
  } finally {
    await rig.down();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '1000' }, window: { type: 'string', default: '60' }, keep: { type: 'string' }, names: { type: 'string', default: 'dns' }, json: { type: 'boolean', default: false }, allocations: { type: 'boolean', default: false } } });
  if (values.allocations) {
    process.stdout.write(`${await passAllocations(Number(values.nodes))}\n`);
    process.exit(0);
  }
  const result = await profileDaemon({ nodes: Number(values.nodes), windowS: Number(values.window), names: values.names === 'hosts-file' ? 'hosts-file' : 'dns', ...(values.keep ? { keep: values.keep } : {}) });
  process.stdout.write(`${values.json ? JSON.stringify(result, null, 2) : profileText(result)}\n`);
  process.exit(0);
}
