// What metrics add to a daemon pass at fleet scale, on the real kernel of a
// throwaway namespace. "before" is a pass as it was without metrics: a plain
// `iptables-save` and nothing after the pass. "after" is the pass as the
// daemon runs it now: `iptables-save -c` (the same single read, with counters),
// then the metrics step (one `conntrack -L` of cachenat's flows, the
// exposition text, the atomic textfile write). Passes alternate so drift in
// the machine's load hits both alike. Prints one JSON line:
//
//   node dist/bench/metrics-cost.js [--nodes 1000] [--runs 15] [--flows 1000]
//
// --flows: connections held open through the forwards for the second measurement.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Topology } from '../src/core/model.js';
import type { Netfilter } from '../src/core/netfilter/types.js';
import { Reconciler } from '../src/daemon/reconciler.js';
import { SystemResolver } from '../src/discovery/resolver.js';
import { ConntrackConnectionReader } from '../src/metrics/conntrack-reader.js';
import { MetricsRecorder, hostMetricsEdges } from '../src/metrics/recorder.js';
import { ConntrackTool } from '../src/netfilter/conntrack.js';
import { IptablesNetfilter, inNamespace } from '../src/netfilter/iptables.js';
import { StateStore } from '../src/ports/state-store.js';
import { syntheticNodes, targetsOf } from './topology.js';
import { benchConfig, dropNamespace, makeNamespace, median, must, round, say, sleep, timed } from './util.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '1000' }, runs: { type: 'string', default: '15' }, flows: { type: 'string', default: '1000' } } });
const nodeCount = Number(values.nodes);
const runs = Number(values.runs);
const flowCount = Number(values.flows);

const loadAtStart = loadavg()[0]!;
const ns = await makeNamespace();
const stateDir = mkdtempSync(join(tmpdir(), 'cachenat-bench-metrics-'));
let flows: ChildProcess | undefined;
try {
  const run = inNamespace(ns);
  const kernel = new IptablesNetfilter(run);
  let counters = true;
  // Without metrics the pass read the kernel without -c: the "before" passes drop the option.
  const netfilter: Netfilter = { save: (t) => kernel.save(t), saveAll: (o) => kernel.saveAll(counters ? o : {}), restore: (text) => kernel.restore(text) };
  const targets = targetsOf(syntheticNodes(nodeCount), 'ip');
  const config = benchConfig({ persist: { rulesFile: 'none' }, state: { dir: join(stateDir, 'state') }, metrics: { textfile: join(stateDir, 'cachenat.prom') } });
  const reconciler = new Reconciler(config, {
    netfilter,
    conntrack: new ConntrackTool(run),
    source: { describe: async (): Promise<Topology> => ({ targets, skipped: [] }) },
    resolver: new SystemResolver({ timeoutMs: 1000 }),
    store: new StateStore(config.state.dir),
    clock: { now: () => Date.now() },
    logger: pino({ level: 'silent' }),
  });
  const reader = new ConntrackConnectionReader(run);
  const recorder = new MetricsRecorder({ ...hostMetricsEdges(pino({ level: 'silent' })), activeByDestination: (mark) => reader.activeByDestination(mark) });

  say(`metrics cost: applying ${nodeCount} forwards in ${ns}`);
  const first = await reconciler.pass({ discover: true, write: true });
  if (!first.applied) throw new Error(`the first pass did not write: ${first.kernelError?.message}`);

  const measure = async (label: string) => {
    const before: number[] = [];
    const after: number[] = [];
    const withCounters: number[] = [];
    const metricsStep: number[] = [];
    const conntrackRead: number[] = [];
    for (let r = 0; r < runs; r++) {
      counters = false;
      before.push((await timed(() => reconciler.pass({ discover: true, write: true }))).ms);
      counters = true;
      const { ms, value: report } = await timed(() => reconciler.pass({ discover: true, write: true }));
      if (report.plan.changes.restore !== null) throw new Error('a pass with counters wanted to write: the diff must ignore them');
      const step = await timed(() => recorder.afterPass({ config, report, lastSyncAt: Date.now() }));
      withCounters.push(ms);
      after.push(ms + step.ms);
      metricsStep.push(step.ms);
      conntrackRead.push((await timed(() => reader.activeByDestination(config.forward.connmark))).ms);
    }
    say(`${label}: before ${round(median(before))} ms, after ${round(median(after))} ms`);
    return { passBeforeMs: round(median(before)), passWithCountersMs: round(median(withCounters)), passAfterMs: round(median(after)), metricsStepMs: round(median(metricsStep)), conntrackReadMs: round(median(conntrackRead)) };
  };

  const idle = await measure('no open flows');
  // Real flows through the DNAT rules, as the kernel marks them: local
  // connections to each listen port (the OUTPUT path), DNATed towards
  // addresses behind a veth pair that never answers, so they stay in SYN_SENT (open).
  say(`opening ${flowCount} connections through the forwards (one per forward)`);
  for (const args of [
    ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'],
    ['addr', 'add', '198.18.0.1/16', 'dev', 'd0'],
    ['link', 'set', 'd0', 'up'],
    ['link', 'set', 'd1', 'up'],
    ['route', 'add', '198.19.0.0/16', 'dev', 'd0'],
  ]) {
    await must('ip', ['-n', ns, ...args]);
  }
  const ports = first.plan.forwards.map((f) => f.listenPort).slice(0, flowCount);
  const opener = 'const net=require("node:net");for(const p of process.argv.slice(1))net.connect(Number(p),"198.18.0.1").on("error",()=>{});setInterval(()=>{},1<<30)';
  flows = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', opener, ...ports.map(String)], { stdio: 'ignore' });
  let seen = 0;
  for (let tries = 0; tries < 100 && seen < ports.length; tries++) {
    await sleep(100);
    seen = [...(await reader.activeByDestination(config.forward.connmark)).values()].reduce((a, b) => a + b, 0);
  }
  if (seen !== ports.length) throw new Error(`expected ${ports.length} open flows, conntrack listed ${seen}`);
  const busy = await measure(`${ports.length} open flows`);
  process.stdout.write(`${JSON.stringify({ nodes: nodeCount, runs, flows: ports.length, idle, busy, textfileBytes: statSync(config.metrics.textfile).size, loadAverage: { start: round(loadAtStart), end: round(loadavg()[0]!) } })}\n`);
} finally {
  flows?.kill('SIGKILL');
  await dropNamespace(ns);
  rmSync(stateDir, { recursive: true, force: true });
}
