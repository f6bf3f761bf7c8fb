// The daemon loop itself (runDaemon) on a simulated clock, with every edge
// able to fail: a pass that throws must never crash the daemon, never spin,
// never ask the API more than once per interval (or its backoff), and must show why in the
// status snapshot. Thousands of randomly failing passes, no kernel needed.

import t from 'tap';
import { validateConfig } from '../../src/config/load.js';
import { DiscoveryError, type CacheSource, type Resolver } from '../../src/core/discovery/types.js';
import { createLogger } from '../../src/log/logger.js';
import type { Topology } from '../../src/core/model.js';
import type { Netfilter, Conntrack } from '../../src/core/netfilter/types.js';
import type { ReconcilerEdges } from '../../src/daemon/reconciler.js';
import { runDaemon, type DaemonDeps } from '../../src/daemon/run-daemon.js';
import { TIMER_SLACK_MS } from '../../src/core/daemon/schedule.js';
import type { Notifier } from '../../src/daemon/notify.js';
import type { StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';
import { emptyPortState } from '../../src/core/ports/port-state.js';
import type { StateStore } from '../../src/ports/state-store.js';
import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import { applyRestore, emptyKernel } from '../support/kernel-sim.js';
import { MetricsRecorder } from '../../src/metrics/recorder.js';

const loaded = validateConfig(
  { aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.27/32'] }, discovery: { interval: '30s' }, dns: { interval: '5s' } },
  'loop test',
);
const TOPOLOGY: Topology = {
  targets: [{ key: 'node/c1/0001', kind: 'node', engine: 'redis', cacheClusterId: 'c1', cacheNodeId: '0001', address: 'n1.cache.example', targetPort: 6379 }],
  skipped: [],
};

function saveText(kernel: InstalledRules, table: 'nat' | 'filter'): string {
  const lines = [`*${table}`];
  for (const [chain, { policy }] of kernel[table].chains) lines.push(`:${chain} ${policy} [0:0]`);
  for (const { rules } of kernel[table].chains.values()) lines.push(...rules);
  return `${lines.join('\n')}\nCOMMIT\n`;
}

interface Harness {
  deps: DaemonDeps;
  waits: number[];
  snapshots: StatusSnapshot[];
  describeAt: number[];
  readyCalls: number;
  /** Set to make an edge fail: return an Error to throw, or undefined. */
  fault: (edge: string) => Error | undefined;
  now(): number;
}

const apiGaps = (h: Harness): number[] => h.describeAt.slice(1).map((at, i) => at - h.describeAt[i]!);

function harness(stopAfterSleeps: number): Harness {
  let now = 1_700_000_000_000;
  let kernel = emptyKernel();
  const handlers = new Map<string, () => void>();
  const h: Harness = {
    waits: [],
    snapshots: [],
    describeAt: [],
    readyCalls: 0,
    fault: () => undefined,
    now: () => now,
    deps: undefined as unknown as DaemonDeps,
  };
  const maybeFail = (edge: string) => {
    const err = h.fault(edge);
    if (err) throw err;
  };
  const netfilter: Netfilter = {
    save: async (table) => (maybeFail('iptables-save'), saveText(kernel, table)),
    saveAll: async () => (maybeFail('iptables-save-all'), saveText(kernel, 'nat') + saveText(kernel, 'filter')),
    restore: async (text) => {
      maybeFail('iptables-restore');
      kernel = applyRestore(kernel, text);
    },
  };
  const conntrack: Conntrack = { available: true, forgetFlows: async () => (maybeFail('conntrack'), 0) };
  const source: CacheSource = {
    describe: async () => {
      h.describeAt.push(now);
      maybeFail('api');
      return TOPOLOGY;
    },
  };
  // The node moves between two addresses now and then, so passes also restore rules and forget flows.
  let lookups = 0;
  const resolver: Resolver = { resolve: async () => (maybeFail('dns'), { ok: true, ip: `10.0.0.${1 + (Math.floor(lookups++ / 3) % 2)}` }) };
  const store = {
    path: '/nonexistent/ports.json',
    load: async () => (maybeFail('state-load'), { status: 'missing' as const, state: emptyPortState() }),
    save: async () => (maybeFail('state-save'), true),
  } as unknown as StateStore;
  const logger = createLogger({ level: 'fatal', destination: { write: () => {} } });
  const edges: ReconcilerEdges = {
    netfilter, conntrack, source, resolver, store, logger, clock: { now: () => now },
    persistRules: async () => maybeFail('persist'),
  };
  // The real notifier swallows delivery errors (see notify.ts), so this one does not fail.
  const notifier: Notifier = {
    ready: () => {
      h.readyCalls++;
    },
    status: () => {},
    watchdog: () => {},
    stopping: () => {},
    watchdogIntervalMs: undefined,
  };
  h.deps = {
    loaded,
    reloadConfig: async () => loaded,
    buildEdges: () => edges,
    notifier,
    logger,
    ipForward: { ensure: async () => (maybeFail('ip_forward'), 1 as const) },
    writeSnapshot: async (s) => {
      h.snapshots.push(s);
      maybeFail('snapshot');
    },
    sleep: async (ms) => {
      h.waits.push(ms);
      now += Math.max(ms, 1); // even a zero wait takes a little time
      if (h.waits.length >= stopAfterSleeps) handlers.get('SIGTERM')?.();
    },
    random: Math.random,
    signals: { on: (s: string, f: () => void) => handlers.set(s, f), off: (s: string) => handlers.delete(s) } as unknown as DaemonDeps['signals'],
  };
  return h;
}

t.test('iptables-save missing: no spin, the API asked at most once per interval, the reason in the snapshot', async (t) => {
  const h = harness(40);
  let broken = true;
  h.fault = (edge) => (broken && edge.startsWith('iptables-save') ? new Error('iptables-save -t nat failed with exit code 127: iptables-save: command not found') : undefined);
  const stop = h.deps.sleep;
  h.deps.sleep = async (ms, signal) => {
    if (h.waits.length === 20) broken = false; // the operator installs iptables
    return stop(ms, signal);
  };
  t.equal(await runDaemon(h.deps), 0, 'runs until SIGTERM, then exits 0');
  const failing = h.waits.slice(0, 20);
  t.ok(failing.every((w) => w >= 4000), `no tight loop: waits ${failing.slice(0, 8).map((w) => Math.round(w / 1000)).join(', ')}… s`);
  t.ok(failing[7]! > failing[0]! * 8, 'the wait grows after each failure');
  t.ok(Math.max(...failing) <= 5 * 60_000 * 1.2, `capped: longest ${Math.round(Math.max(...failing) / 1000)} s`);
  const gaps = apiGaps(h);
  t.ok(gaps.length >= 3, `the API was asked ${h.describeAt.length} times`);
  // A pass that threw after asking the API still waits a whole interval before asking again (a timer may fire 50 ms early).
  t.ok(gaps.every((g) => g >= 30_000 - TIMER_SLACK_MS), `at most once per 30 s: smallest gap ${Math.min(...gaps)} ms`);
  const degraded = h.snapshots[5]!;
  t.equal(degraded.degraded, true);
  t.match(degraded.degradedReason, /kernel: iptables-save .*command not found/, `snapshot says: ${degraded.degradedReason}`);
  t.equal(degraded.lastPassOk, false);
  const last = h.snapshots.at(-1)!;
  t.equal(last.degraded, false, 'recovers once iptables is there');
  t.equal(last.forwards.length, 1);
  t.equal(h.readyCalls, 1, 'ready only once a pass really completed');
  t.ok(h.waits.slice(25).every((w) => w <= 5000), 'back to the normal tick after recovery');
});

t.test('every edge failing at random: the loop never dies and never spins', async (t) => {
  const ITERATIONS = 5000;
  const h = harness(ITERATIONS);
  const counts: Record<string, number> = {};
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const kinds = [
    () => new Error('plain failure'),
    () => new DiscoveryError('Throttling: Rate exceeded', 'Throttling', true),
    () => Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }),
    () => new TypeError('cannot read properties of undefined'),
  ];
  h.fault = (edge) => {
    if (rand() > 0.15) return undefined;
    counts[edge] = (counts[edge] ?? 0) + 1;
    return kinds[Math.floor(rand() * kinds.length)]!();
  };
  t.equal(await runDaemon(h.deps), 0, `${ITERATIONS} passes, then SIGTERM: exit 0`);
  const injected = Object.values(counts).reduce((a, b) => a + b, 0);
  t.ok(injected > ITERATIONS / 2, `${injected} faults injected: ${JSON.stringify(counts)}`);
  t.ok(h.waits.every((w) => w > 0), 'no zero-length wait: never a tight loop');
  const elapsed = h.now() - 1_700_000_000_000;
  const gaps = apiGaps(h);
  // Never sooner than the interval, or its first backoff step (0.8 × interval with jitter) after a failed call.
  t.ok(gaps.every((g) => g >= 30_000 * 0.8 - TIMER_SLACK_MS), `${h.describeAt.length} API calls over ${Math.round(elapsed / 60_000)} simulated minutes, smallest gap ${Math.min(...gaps)} ms`);
  t.ok(h.describeAt.length >= elapsed / (5 * 60_000 * 1.2), 'the API is still asked at least once per backoff cap');
  t.ok(h.snapshots.some((s) => s.degraded) && h.snapshots.some((s) => !s.degraded), 'the snapshot follows: degraded while failing, clear when not');
});

t.test('a daemon that never reaches the API writes a sync time of 0 from its first pass, and a growing age', async (t) => {
  const h = harness(12);
  h.fault = (edge) => (edge === 'api' ? new DiscoveryError('User is not authorized to perform: elasticache:DescribeCacheClusters', 'AccessDenied', false) : undefined);
  const written: string[] = [];
  const withTextfile = validateConfig(
    { aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.27/32'] }, metrics: { textfile: '/nonexistent/cachenat.prom' } },
    'loop test',
  );
  h.deps.loaded = withTextfile;
  h.deps.reloadConfig = async () => withTextfile;
  h.deps.metrics = new MetricsRecorder({
    activeByDestination: async () => new Map(),
    writeTextfile: async (_path, text) => void written.push(text),
    now: h.now,
    logger: createLogger({ level: 'fatal', destination: { write: () => {} } }),
  });
  t.equal(await runDaemon(h.deps), 0);
  t.ok(h.describeAt.length >= 2, `the API was asked ${h.describeAt.length} times and always refused`);
  t.ok(written.length >= 2, `${written.length} textfile writes`);
  const sample = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  t.ok(written.every((text) => sample(text, 'cachenat_last_api_sync_time_seconds') === 0), 'every write, the first included, has cachenat_last_api_sync_time_seconds 0');
  const ages = written.map((text) => sample(text, 'cachenat_api_sync_age_seconds'));
  t.ok(ages.every((age, i) => Number.isFinite(age) && (i === 0 || age > ages[i - 1]!)), `the age grows from the start: ${ages.join(', ')} s`);
});
