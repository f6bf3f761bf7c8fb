// Reconcile cost against fleet size, on the real kernel of a throwaway
// namespace: the daemon's own Reconciler with the real IptablesNetfilter
// (iptables-save reads, planner, render, diff, one iptables-restore
// --noflush), against the per-rule method of AWS's NAT-instance guide
// scripted as one `iptables` call per rule.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { CacheSource } from '../src/core/discovery/types.js';
import { SystemResolver } from '../src/discovery/resolver.js';
import type { DiscoveredTarget, Topology } from '../src/core/model.js';
import { Reconciler, type PassReport } from '../src/daemon/reconciler.js';
import { ConntrackTool } from '../src/netfilter/conntrack.js';
import type { FlowFilter } from '../src/core/model.js';
import { IptablesNetfilter, inNamespace } from '../src/netfilter/iptables.js';
import { flushOwnedRules } from '../src/netfilter/owned-rules.js';
import { JUMPS, type Netfilter, type Table } from '../src/core/netfilter/types.js';
import { StateStore } from '../src/ports/state-store.js';
import type { PortState } from '../src/core/ports/port-state.js';
import { syntheticIp, syntheticNodes, targetsOf, type SyntheticNode } from './topology.js';
import { benchConfig, dropNamespace, makeNamespace, median, must, round, say, timed } from './util.js';

export interface ReconcileRow {
  nodes: number;
  rules: number;
  fullApplyMs: number;
  noopPassMs: number;
  oneChangeMs: number;
  perRuleBaselineMs: number;
  /** Kernel writes seen across all the no-op passes: must be 0. */
  noopRestores: number;
  /** How the per-rule baseline was obtained. */
  baseline: { method: 'measured' | 'extrapolated'; calls: number; sampledNodes?: number; runs: number };
  /** The floors, timed alone in the same namespace (medians): one `iptables-save -c`, and one restore of the input a change wrote. */
  floors?: { readMs: number; restoreMs: number; cutMs?: number; saveMs?: number };
  /**
   * no-op pass ÷ the bare read; one change ÷ (bare read + bare restore); one
   * change ÷ every step a move takes alone (read, port map save, restore,
   * conntrack cut).
   */
  ratios?: { noop: number; oneChange: number; oneChangeEveryStep?: number };
  /** Where a full apply spends its time (medians); the read includes the one that looks for ports to recover. */
  fullApplySpans: { kernelReadMs: number; restoreMs: number; restMs: number };
  /** Where a no-op pass spends its time (medians). */
  noopSpans: { kernelReadMs: number; restMs: number };
  /** Where a one-change pass spends its time (medians). */
  oneChangeSpans: { kernelReadMs: number; restoreMs: number; conntrackMs: number; restMs: number };
  speedup: number;
  runs: number;
}

export interface ReconcileOptions {
  sizes: number[];
  /** Repetitions of each cachenat measurement. */
  runs: number;
  /** Fleets from this size up get a sampled, extrapolated baseline. */
  sampleBaselineFrom: number;
  /** Full baseline repetitions below that size. */
  baselineRuns: number;
  /** Nodes timed at each fill level of a sampled baseline, as a fraction of the fleet (at least 20). */
  sampleFraction: number;
}

// What a NAT instance has before cachenat arrives: a masquerade for its own
// subnet and a default-deny FORWARD policy. cachenat must leave both alone.
const FOREIGN_RULES = `*nat
-A POSTROUTING -s 10.0.0.0/16 -o ext0 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
`;

/** Times and counts every kernel call the Reconciler makes. */
class MeteredNetfilter implements Netfilter {
  restores = 0;
  readMs = 0;
  restoreMs = 0;
  /** The input of the last restore. */
  lastRestore = '';
  constructor(readonly inner: Netfilter) {}

  save(table: Table): Promise<string> {
    return this.read(() => this.inner.save(table));
  }

  /** The Reconciler reads both tables with this one `iptables-save`. */
  saveAll(options?: { counters?: boolean }): Promise<string> {
    return this.read(() => this.inner.saveAll(options));
  }

  private async read(work: () => Promise<string>): Promise<string> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.readMs += performance.now() - started;
    }
  }

  async restore(text: string): Promise<void> {
    this.restores++;
    this.lastRestore = text;
    const started = performance.now();
    try {
      await this.inner.restore(text);
    } finally {
      this.restoreMs += performance.now() - started;
    }
  }

  resetSpans(): void {
    this.readMs = 0;
    this.restoreMs = 0;
  }
}

class MeteredConntrack extends ConntrackTool {
  ms = 0;
  /** The filter of the last cut, to time the same cut alone. */
  lastFilter: FlowFilter | undefined;
  override async forgetFlows(filter: FlowFilter): Promise<number> {
    this.lastFilter = filter;
    const started = performance.now();
    try {
      return await super.forgetFlows(filter);
    } finally {
      this.ms += performance.now() - started;
    }
  }
}

/** An API that answers from memory at once: this section measures everything after discovery. */
class MemorySource implements CacheSource {
  constructor(public targets: DiscoveredTarget[]) {}
  async describe(): Promise<Topology> {
    return { targets: this.targets, skipped: [] };
  }
}

interface Harness {
  reconciler: Reconciler;
  netfilter: MeteredNetfilter;
  conntrack: MeteredConntrack;
  source: MemorySource;
  stateDir: string;
}

function harness(ns: string, nodes: SyntheticNode[]): Harness {
  const run = inNamespace(ns);
  const netfilter = new MeteredNetfilter(new IptablesNetfilter(run));
  const conntrack = new MeteredConntrack(run);
  const source = new MemorySource(targetsOf(nodes, 'ip'));
  const stateDir = mkdtempSync(join(tmpdir(), 'cachenat-bench-state-'));
  const config = benchConfig({ persist: { rulesFile: 'none' }, state: { dir: stateDir } });
  const reconciler = new Reconciler(config, {
    netfilter,
    conntrack,
    source,
    resolver: new SystemResolver({ timeoutMs: 1000 }),
    store: new StateStore(stateDir),
    clock: { now: () => Date.now() },
    logger: pino({ level: 'silent' }),
  });
  return { reconciler, netfilter, conntrack, source, stateDir };
}

async function flushCachenat(ns: string): Promise<void> {
  await flushOwnedRules(new IptablesNetfilter(inNamespace(ns)));
}

const ruleCount = (report: PassReport): number =>
  Object.values(report.plan.rules.nat).flat().length + Object.values(report.plan.rules.filter).flat().length + JUMPS.length;

async function measureCachenat(ns: string, nodes: SyntheticNode[], runs: number) {
  const full: number[] = [];
  const fullSpans = { read: [] as number[], restore: [] as number[] };
  let rules = 0;
  let h: Harness | undefined;
  for (let r = 0; r < runs; r++) {
    await flushCachenat(ns);
    if (h) rmSync(h.stateDir, { recursive: true, force: true });
    h = harness(ns, nodes);
    const { ms, value } = await timed(() => h!.reconciler.pass({ discover: true, write: true }));
    if (!value.applied || h.netfilter.restores !== 1) throw new Error(`full apply of ${nodes.length} nodes did not write exactly once (${value.kernelError?.message ?? 'no error'})`);
    full.push(ms);
    fullSpans.read.push(h.netfilter.readMs);
    fullSpans.restore.push(h.netfilter.restoreMs);
    rules = ruleCount(value);
  }
  const live = h as Harness;

  const noop: number[] = [];
  const noopReads: number[] = [];
  const writesBefore = live.netfilter.restores;
  for (let r = 0; r < runs; r++) {
    live.netfilter.resetSpans();
    const { ms, value } = await timed(() => live.reconciler.pass({ discover: true, write: true }));
    if (value.plan.changes.restore !== null) throw new Error(`a pass with nothing to change at ${nodes.length} nodes wanted to write:\n${value.plan.changes.restore.slice(0, 500)}`);
    noop.push(ms);
    noopReads.push(live.netfilter.readMs);
  }
  const noopRestores = live.netfilter.restores - writesBefore;

  const change: number[] = [];
  const changedStates: PortState[] = [];
  const spans = { read: [] as number[], restore: [] as number[], conntrack: [] as number[] };
  for (let r = 0; r < runs; r++) {
    // Node 0 is replaced: same key and port, a new address (the failover case).
    const moved = { ...(live.source.targets[0] as DiscoveredTarget), address: syntheticIp(0, (r % 2) + 1) };
    live.source.targets = [moved, ...live.source.targets.slice(1)];
    live.netfilter.resetSpans();
    live.conntrack.ms = 0;
    const before = live.netfilter.restores;
    const { ms, value } = await timed(() => live.reconciler.pass({ discover: true, write: true }));
    if (!value.applied || live.netfilter.restores !== before + 1) throw new Error(`one change at ${nodes.length} nodes did not write exactly once`);
    change.push(ms);
    changedStates.push(value.plan.state);
    spans.read.push(live.netfilter.readMs);
    spans.restore.push(live.netfilter.restoreMs);
    spans.conntrack.push(live.conntrack.ms);
  }
  // The floors: the bare kernel read a pass must do (the same `iptables-save -c`),
  // and the bare restore of the input the last change wrote (applying it again
  // rewrites the same chain), each timed alone in the same namespace.
  const bareRead: number[] = [];
  const bareRestore: number[] = [];
  for (let r = 0; r < runs; r++) {
    bareRead.push((await timed(() => live.netfilter.inner.saveAll({ counters: true }))).ms);
    bareRestore.push((await timed(() => live.netfilter.inner.restore(live.netfilter.lastRestore))).ms);
  }
  // A move must also do two steps these floors leave out: save the port map
  // (durably, before the kernel write) and cut the moved target's flows
  // (conntrack -D, after it). Each timed alone: the last cut's filter again,
  // and the port map saved as the changes left it, alternately.
  const bareCut: number[] = [];
  const bareSave: number[] = [];
  const saveDir = mkdtempSync(join(tmpdir(), 'cachenat-bench-save-'));
  const saver = new StateStore(saveDir);
  const cutter = new ConntrackTool(inNamespace(ns));
  for (let r = 0; r < runs; r++) {
    if (live.conntrack.lastFilter) bareCut.push((await timed(() => cutter.forgetFlows(live.conntrack.lastFilter!))).ms);
    bareSave.push((await timed(() => saver.save(changedStates[r % changedStates.length]!))).ms);
  }
  rmSync(saveDir, { recursive: true, force: true });
  rmSync(live.stateDir, { recursive: true, force: true });
  await flushCachenat(ns);

  return {
    rules,
    fullApplyMs: median(full),
    noopPassMs: median(noop),
    oneChangeMs: median(change),
    noopRestores,
    bareReadMs: median(bareRead),
    bareRestoreMs: median(bareRestore),
    bareCutMs: median(bareCut),
    bareSaveMs: median(bareSave),
    fullApplySpans: {
      kernelReadMs: median(fullSpans.read),
      restoreMs: median(fullSpans.restore),
      restMs: median(full) - median(fullSpans.read) - median(fullSpans.restore),
    },
    noopSpans: { kernelReadMs: median(noopReads), restMs: median(noop) - median(noopReads) },
    oneChangeSpans: {
      kernelReadMs: median(spans.read),
      restoreMs: median(spans.restore),
      conntrackMs: median(spans.conntrack),
      restMs: median(change) - median(spans.read) - median(spans.restore) - median(spans.conntrack),
    },
  };
}

/**
 * The documented way: one `iptables` command per rule, a DNAT in PREROUTING,
 * a MASQUERADE in POSTROUTING and an ACCEPT in FORWARD for each node, run
 * from a shell script on the NAT instance.
 */
function perRuleScript(nodes: readonly SyntheticNode[], firstIndex: number): string {
  const lines = ['#!/bin/bash', 'set -e'];
  nodes.forEach((n, i) => {
    const listen = 20000 + firstIndex + i;
    lines.push(
      `iptables -t nat -A PREROUTING -i ext0 -p tcp --dport ${listen} -j DNAT --to-destination ${n.ip}:${n.port}`,
      `iptables -t nat -A POSTROUTING -o int0 -p tcp -d ${n.ip} --dport ${n.port} -j MASQUERADE`,
      `iptables -A FORWARD -p tcp -d ${n.ip} --dport ${n.port} -j ACCEPT`,
    );
  });
  return `${lines.join('\n')}\n`;
}

/** The same rules as one restore, to fill a table quickly before timing a sample on top of it. */
function perRuleRestore(nodes: readonly SyntheticNode[]): string {
  const nat: string[] = [];
  const filter: string[] = [];
  nodes.forEach((n, i) => {
    nat.push(`-A PREROUTING -i ext0 -p tcp --dport ${20000 + i} -j DNAT --to-destination ${n.ip}:${n.port}`);
    nat.push(`-A POSTROUTING -o int0 -p tcp -d ${n.ip} --dport ${n.port} -j MASQUERADE`);
    filter.push(`-A FORWARD -p tcp -d ${n.ip} --dport ${n.port} -j ACCEPT`);
  });
  return `*nat\n${nat.join('\n')}\nCOMMIT\n*filter\n${filter.join('\n')}\nCOMMIT\n`;
}

async function freshForeignNamespace(): Promise<string> {
  const ns = await makeNamespace();
  await must('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], { input: FOREIGN_RULES });
  return ns;
}

/** Wall time of the per-rule script for `nodes`, on top of `preloaded` nodes' rules already installed. */
async function timePerRule(all: readonly SyntheticNode[], preloaded: number, count: number, dir: string): Promise<number> {
  const ns = await freshForeignNamespace();
  try {
    if (preloaded > 0) await must('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], { input: perRuleRestore(all.slice(0, preloaded)), timeoutMs: 120_000 });
    const script = join(dir, `per-rule-${preloaded}-${count}.sh`);
    writeFileSync(script, perRuleScript(all.slice(preloaded, preloaded + count), preloaded));
    // The baseline is a shell script by nature: that is how the per-rule method is run.
    const { ms } = await timed(() => must('ip', ['netns', 'exec', ns, 'bash', script], { timeoutMs: 600_000 }));
    return ms;
  } finally {
    await dropNamespace(ns);
  }
}

/**
 * Per-rule cost grows with the size of the table each call reads back, so a
 * large fleet is sampled at five fill levels and the cost per node is
 * integrated over the fill (trapezoid rule) instead of run in full.
 */
async function perRuleBaseline(nodes: SyntheticNode[], options: ReconcileOptions, dir: string): Promise<{ ms: number; baseline: ReconcileRow['baseline'] }> {
  const calls = nodes.length * 3;
  if (nodes.length < options.sampleBaselineFrom) {
    const runs: number[] = [];
    for (let r = 0; r < options.baselineRuns; r++) runs.push(await timePerRule(nodes, 0, nodes.length, dir));
    return { ms: median(runs), baseline: { method: 'measured', calls, runs: runs.length } };
  }
  const sample = Math.max(20, Math.round(nodes.length * options.sampleFraction));
  const levels = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.min(nodes.length - sample, Math.round(f * nodes.length)));
  const perNode: number[] = [];
  for (const level of levels) perNode.push((await timePerRule(nodes, level, sample, dir)) / sample);
  let total = 0;
  for (let i = 1; i < levels.length; i++) total += (((perNode[i - 1] as number) + (perNode[i] as number)) / 2) * ((levels[i] as number) - (levels[i - 1] as number));
  total += (perNode[perNode.length - 1] as number) * (nodes.length - (levels[levels.length - 1] as number));
  return { ms: total, baseline: { method: 'extrapolated', calls, sampledNodes: sample * levels.length, runs: 1 } };
}

export async function benchReconcile(options: ReconcileOptions): Promise<ReconcileRow[]> {
  const rows: ReconcileRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cachenat-bench-'));
  try {
    for (const size of options.sizes) {
      const nodes = syntheticNodes(size);
      const ns = await freshForeignNamespace();
      let ours: Awaited<ReturnType<typeof measureCachenat>>;
      try {
        say(`reconcile: ${size} nodes, cachenat (${options.runs} runs each)`);
        ours = await measureCachenat(ns, nodes, options.runs);
      } finally {
        await dropNamespace(ns);
      }
      say(`reconcile: ${size} nodes, per-rule baseline (${size < options.sampleBaselineFrom ? 'measured' : 'sampled'})`);
      const base = await perRuleBaseline(nodes, options, dir);
      rows.push({
        nodes: size,
        rules: ours.rules,
        fullApplyMs: round(ours.fullApplyMs),
        noopPassMs: round(ours.noopPassMs),
        oneChangeMs: round(ours.oneChangeMs),
        perRuleBaselineMs: round(base.ms, 0),
        noopRestores: ours.noopRestores,
        floors: { readMs: round(ours.bareReadMs), restoreMs: round(ours.bareRestoreMs), cutMs: round(ours.bareCutMs), saveMs: round(ours.bareSaveMs) },
        ratios: {
          noop: round(ours.noopPassMs / ours.bareReadMs),
          oneChange: round(ours.oneChangeMs / (ours.bareReadMs + ours.bareRestoreMs)),
          oneChangeEveryStep: round(ours.oneChangeMs / (ours.bareReadMs + ours.bareSaveMs + ours.bareRestoreMs + ours.bareCutMs)),
        },
        baseline: base.baseline,
        fullApplySpans: { kernelReadMs: round(ours.fullApplySpans.kernelReadMs), restoreMs: round(ours.fullApplySpans.restoreMs), restMs: round(ours.fullApplySpans.restMs) },
        noopSpans: { kernelReadMs: round(ours.noopSpans.kernelReadMs), restMs: round(ours.noopSpans.restMs) },
        oneChangeSpans: {
          kernelReadMs: round(ours.oneChangeSpans.kernelReadMs),
          restoreMs: round(ours.oneChangeSpans.restoreMs),
          conntrackMs: round(ours.oneChangeSpans.conntrackMs),
          restMs: round(ours.oneChangeSpans.restMs),
        },
        speedup: round(base.ms / ours.fullApplyMs, 1),
        runs: options.runs,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
