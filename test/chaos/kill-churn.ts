// The chaos run: the real daemon in the namespace lab, the fake API's topology
// changing all the time, and `kill -9` at random moments (during start-up, the
// first pass, or any later pass). After every restart it checks, against the
// kernel itself:
//   - no duplicate rules: no line twice, one DNAT rule per target and per port, one jump per built-in chain;
//   - no target's port ever changed, and no port ever went to two targets (reuseAfter is 1h);
//   - convergence: the kernel matches what the API serves within one discovery interval of `ready`
//     (or of the last change, when the churn made one after ready);
//   - the state file on disk always parses;
//   - a client still reaches the stable primary through its port.
// Used by kill-churn.test.ts (short, in every `npm test`) and `npm run test:chaos` (long).

import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startRig, type LabRig } from '../../lab/rig.js';
import type { FakeCluster, FakeTopology } from '../../lab/fake-elasticache-model.js';
import type { LabProcess } from '../../lab/process.js';
import { parseState } from '../../src/ports/state-store.js';

/** discovery.interval in the lab config (lab/rig.ts). */
export const DISCOVERY_INTERVAL_MS = 1000;
// Polling the kernel adds one poll and one iptables-save to what is measured.
const CONVERGE_SLACK_MS = 400;

/** Run times (ms) of the passes that changed something, from the daemon's own log since `from`. */
function passDurations(proc: LabProcess, from: number): number[] {
  return proc.output.slice(from).flatMap((line) => {
    const m = /"msg":"(?:rules|state) updated"/.test(line) ? /"ms":([\d.]+)/.exec(line) : null;
    return m ? [Number(m[1])] : [];
  });
}

export interface ChaosOptions {
  kills: number;
  seed: number;
  /** Progress lines (one per kill). */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  kills: number;
  /** Of those, kills that landed before the daemon said ready (start-up, first pass). */
  killsBeforeReady: number;
  topologyChanges: number;
  kernelChecks: number;
  restartMs: number[];
  convergeMs: number[];
  /** The slowest logged pass of each convergence window. */
  passMs: number[];
  /** Load average per core at each check (1 when idle or less). */
  loadFactors: number[];
  keysSeen: number;
  violations: string[];
  elapsedMs: number;
}

/** A small seeded generator (mulberry32), so a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const REDIS_IPS = ['198.19.0.11', '198.19.0.12', '198.19.0.13', '198.19.0.14'];
const MEMCACHED_IPS = ['198.19.0.21', '198.19.0.22', '198.19.0.23'];
const CHURN_CLUSTERS = ['alpha', 'bravo', 'carol', 'delta', 'echo', 'fox', 'golf', 'hotel'];
const isMemcached = (cluster: string) => cluster === 'delta' || cluster === 'golf';
/** The survivor: never removed, its port checked by a real client after every restart. */
const STABLE = { key: 'primary/orders', ip: '198.19.0.11', whoami: 'redis-11' };

/** A random topology: the stable group always, a random subset of the churn clusters, nodes and addresses. */
function randomTopology(rand: () => number): FakeTopology {
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)] as T;
  const clusters: FakeCluster[] = [];
  for (const id of CHURN_CLUSTERS) {
    if (rand() < 0.4) continue;
    const memcached = isMemcached(id);
    const count = 1 + Math.floor(rand() * 3);
    clusters.push({
      id,
      engine: memcached ? 'memcached' : 'redis',
      nodes: Array.from({ length: count }, (_, i) => ({ id: `000${i + 1}`, address: pick(memcached ? MEMCACHED_IPS : REDIS_IPS), port: memcached ? 11211 : 6379 })),
    });
  }
  return {
    clusters,
    replicationGroups: [{ id: 'orders', engine: 'redis', primary: { address: STABLE.ip, port: 6379 }, reader: { address: '198.19.0.12', port: 6379 } }],
  };
}

/** key → target ip:port that the kernel must hold for this topology. */
function expectedOf(topology: FakeTopology): Map<string, string> {
  const expected = new Map<string, string>();
  for (const c of topology.clusters ?? []) for (const n of c.nodes ?? []) expected.set(`node/${c.id}/${n.id}`, `${n.address}:${n.port}`);
  for (const g of topology.replicationGroups ?? []) {
    if (g.primary) expected.set(`primary/${g.id}`, `${g.primary.address}:${g.primary.port}`);
    if (g.reader) expected.set(`reader/${g.id}`, `${g.reader.address}:${g.reader.port}`);
  }
  return expected;
}

const DNAT = /^-A CACHENAT-DNAT -p tcp -m tcp --dport (\d+) -m comment --comment "cachenat \S+ (\S+)" -j DNAT --to-destination (\S+)$/;
const JUMPS = [
  '-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING',
  '-A OUTPUT -m comment --comment cachenat -j CACHENAT-OUTPUT',
  '-A POSTROUTING -m comment --comment cachenat -j CACHENAT-POSTROUTING',
  '-A FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD',
];

interface KernelView {
  /** key → { port, target } */
  forwards: Map<string, { port: number; target: string }>;
  problems: string[];
}

/** Reads iptables-save and lists every structural problem: duplicates, missing or doubled jumps. */
function readKernel(save: string): KernelView {
  const lines = save.split('\n').filter((l) => l.startsWith('-A '));
  const problems: string[] = [];
  const forwards = new Map<string, { port: number; target: string }>();
  const ports = new Set<number>();
  for (const line of lines) {
    const m = DNAT.exec(line);
    if (!m) continue;
    const [, port, key, target] = m as unknown as [string, string, string, string];
    if (forwards.has(key)) problems.push(`two DNAT rules for ${key}`);
    if (ports.has(Number(port))) problems.push(`two DNAT rules on port ${port}`);
    forwards.set(key, { port: Number(port), target });
    ports.add(Number(port));
  }
  if (new Set(lines).size !== lines.length) problems.push(`duplicate rule lines: ${lines.filter((l, i) => lines.indexOf(l) !== i).slice(0, 3).join(' | ')}`);
  for (const jump of JUMPS) {
    const n = lines.filter((l) => l === jump).length;
    if (n !== 1) problems.push(`${n} copies of "${jump}"`);
  }
  return { forwards, problems };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

/**
 * How overloaded the machine is now (1 = not at all). Every wall-clock bound
 * is stretched by it: on a shared 2-core box a load of 20 delays each timer and
 * process start tenfold, and that says nothing about the daemon's scheduling.
 */
const loadFactor = (): number => Math.max(1, loadavg()[0]! / cpus().length);

export function summarize(values: number[]): string {
  if (values.length === 0) return 'n/a';
  return `min ${Math.round(Math.min(...values))}, median ${Math.round(percentile(values, 50))}, p95 ${Math.round(percentile(values, 95))}, max ${Math.round(Math.max(...values))} ms`;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  // Two streams, so the kill timing does not depend on how many topology changes raced ahead of it.
  const rand = random(options.seed);
  const churnRand = random(options.seed ^ 0x5bd1e995);
  const log = options.log ?? (() => {});
  const report: ChaosReport = {
    seed: options.seed, kills: 0, killsBeforeReady: 0, topologyChanges: 0, kernelChecks: 0, restartMs: [], convergeMs: [], passMs: [], loadFactors: [], keysSeen: 0, violations: [], elapsedMs: 0,
  };
  // The test runner's loaders in NODE_OPTIONS would slow every daemon start and control call.
  process.env.NODE_OPTIONS = '';
  const rig: LabRig = await startRig();
  const portOf = new Map<string, number>();
  const keyOf = new Map<number, string>();
  const violate = (what: string) => {
    report.violations.push(`kill ${report.kills}: ${what}`);
    log(`VIOLATION ${what}`);
  };
  /** Records every key → port the kernel shows; any change is a violation. */
  const observe = (view: KernelView) => {
    report.kernelChecks++;
    for (const problem of view.problems) violate(problem);
    for (const [key, { port }] of view.forwards) {
      const had = portOf.get(key);
      if (had !== undefined && had !== port) violate(`${key} moved from port ${had} to ${port}`);
      const owner = keyOf.get(port);
      if (owner !== undefined && owner !== key) violate(`port ${port} went from ${owner} to ${key}`);
      portOf.set(key, had ?? port);
      keyOf.set(port, owner ?? key);
    }
  };

  let served: FakeTopology = {};
  let servedAt = 0;
  const serve = async (topology: FakeTopology) => {
    await rig.setTopology(topology);
    served = topology;
    servedAt = Date.now();
    report.topologyChanges++;
  };
  let churning = false;
  let churnDone: Promise<void> = Promise.resolve();
  const startChurn = () => {
    churning = true;
    churnDone = (async () => {
      while (churning) {
        await serve(randomTopology(churnRand));
        await sleep(150 + churnRand() * 1000);
      }
    })();
  };
  const stopChurn = async () => {
    churning = false;
    await churnDone;
  };

  const spawn = async (): Promise<LabProcess> => (await rig.start({ waitReady: false, env: { NODE_OPTIONS: '' } })).process;

  let daemon: LabProcess | undefined;
  try {
    await serve(randomTopology(churnRand));
    startChurn();
    while (report.kills < options.kills) {
      const spawnedAt = Date.now();
      daemon = await spawn();
      // One kill in five lands before ready: during start-up, state load or the first pass.
      if (rand() < 0.2) {
        await sleep(rand() * 1200);
        if (daemon.running) {
          const sawReady = daemon.output.some((l) => l.includes('"msg":"ready'));
          daemon.kill('SIGKILL');
          await daemon.exited;
          report.kills++;
          if (!sawReady) report.killsBeforeReady++;
          continue;
        }
      }
      await daemon.waitForLine(/"msg":"ready/, 20_000 * loadFactor());
      const readyAt = Date.now();
      const load = loadFactor();
      report.loadFactors.push(load);
      const readyMark = daemon.mark();
      report.restartMs.push(readyAt - spawnedAt);

      // Convergence: stop changing the topology and time how long the kernel takes to match it,
      // from ready or from the last change, whichever came later (the churn may still finish one).
      await stopChurn();
      const expected = expectedOf(served);
      const since = Math.max(readyAt, servedAt);
      let converged: number | undefined;
      let view: KernelView | undefined;
      while (Date.now() - since < 4 * DISCOVERY_INTERVAL_MS * load) {
        view = readKernel(await rig.save());
        const missing = [...expected].filter(([key, target]) => view!.forwards.get(key)?.target !== target);
        if (missing.length === 0) {
          converged = Math.max(0, Date.now() - since);
          break;
        }
        await sleep(50);
      }
      if (view) observe(view);
      if (converged === undefined) violate(`not converged within ${Math.round(4 * DISCOVERY_INTERVAL_MS * load)} ms (load factor ${load.toFixed(1)})`);
      else {
        report.convergeMs.push(converged);
        // The bound is one interval plus the run time of the pass that converged, as the daemon itself
        // logged it: on a loaded machine a pass takes longer, but it must still start on time.
        if (converged > DISCOVERY_INTERVAL_MS + CONVERGE_SLACK_MS) await sleep(500); // its log line comes after the persisted copy
        const passMs = Math.max(0, ...passDurations(daemon, readyMark));
        report.passMs.push(passMs);
        if (converged > (DISCOVERY_INTERVAL_MS + CONVERGE_SLACK_MS) * load + passMs) {
          violate(`converged only ${converged} ms after ready or the last change (interval ${DISCOVERY_INTERVAL_MS} ms, slowest pass ${passMs} ms, load factor ${load.toFixed(1)})`);
        }
      }
      const state = parseState(await readFile(join(rig.dir, 'state', 'ports.json'), 'utf8').catch((e: Error) => e.message));
      if (state.status !== 'ok') violate(`state file unreadable: ${'problem' in state ? state.problem : state.status}`);
      const stablePort = portOf.get(STABLE.key);
      const reached = stablePort === undefined ? undefined : await rig.probe('client', stablePort, 'redis', 1500 * load);
      if (reached !== STABLE.whoami) violate(`the client reached ${reached ?? 'nothing'} on ${STABLE.key}'s port ${stablePort}`);
      startChurn();

      // Then let it run a random while (0–2.5 s: any phase of any pass) and kill it.
      const until = Date.now() + rand() * 2500;
      while (Date.now() < until) {
        await sleep(Math.min(400, Math.max(0, until - Date.now())));
        observe(readKernel(await rig.save()));
      }
      if (!daemon.running) violate(`the daemon exited on its own: ${daemon.output.slice(-3).join(' | ')}`);
      daemon.kill('SIGKILL');
      await daemon.exited;
      report.kills++;
      log(`kill ${report.kills}/${options.kills}: ready after ${report.restartMs.at(-1)} ms, converged ${converged ?? '-'} ms after ready or the last change, ${portOf.size} keys tracked`);
    }
    await stopChurn();
    // A last start: it must come up clean after the final kill.
    daemon = await spawn();
    await daemon.waitForLine(/"msg":"ready/, 20_000 * loadFactor());
    observe(readKernel(await rig.save()));
    const stopped = await daemon.stop(5000);
    if (stopped.exitCode !== 0) violate(`SIGTERM at the end gave exit ${stopped.exitCode ?? stopped.signal}`);
  } finally {
    churning = false;
    await churnDone.catch(() => {});
    daemon?.kill('SIGKILL');
    await rig.down();
  }
  report.keysSeen = portOf.size;
  report.elapsedMs = Date.now() - started;
  return report;
}
