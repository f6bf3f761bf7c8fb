// The audit in the daemon's loop (runDaemon, simulated clock and kernel): it
// hears of every pass's forwards, publishes its status and metrics, is told
// of each flow flush with its reason, reopens its file on every SIGHUP (even
// when the new config is refused), starts and stops with the section, and
// stops with the daemon.

import t from 'tap';
import { validateConfig, ConfigError, type LoadedConfig } from '../../src/config/load.js';
import type { AuditControl } from '../../src/audit/audit-control.js';
import type { Topology } from '../../src/core/model.js';
import type { Conntrack } from '../../src/core/netfilter/types.js';
import { runDaemon, type DaemonDeps } from '../../src/daemon/run-daemon.js';
import type { StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';
import { emptyPortState } from '../../src/core/ports/port-state.js';
import type { StateStore } from '../../src/ports/state-store.js';
import { createLogger } from '../../src/log/logger.js';
import { applyRestore, emptyKernel } from '../support/kernel-sim.js';
import type { MetricsRecorder } from '../../src/metrics/recorder.js';

const configWith = (audit: Record<string, unknown> | undefined): LoadedConfig =>
  validateConfig({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.27/32'] }, dns: { interval: '5s' }, ...(audit ? { audit } : {}) }, 'audit loop test');
const TOPOLOGY: Topology = {
  targets: [{ key: 'node/c1/0001', kind: 'node', engine: 'redis', cacheClusterId: 'c1', cacheNodeId: '0001', address: 'n1.cache.example', targetPort: 6379 }],
  skipped: [],
};

class FakeAudit implements AuditControl {
  calls: string[] = [];
  forwardsSeen: number[] = [];
  constructor(readonly name: string) {}
  start() {
    this.calls.push('start');
  }
  async afterPass(forwards: readonly unknown[]) {
    this.forwardsSeen.push(forwards.length);
  }
  async reconfigure() {
    this.calls.push('reconfigure');
  }
  async reopen() {
    this.calls.push('reopen');
  }
  flushStarting() {
    this.calls.push('flushStarting');
  }
  flushed(reason: string, listing: string) {
    this.calls.push(`flushed ${reason} ${listing}`);
  }
  status() {
    return { sink: this.name, listening: true, flowsLogged: 0, eventsLost: 0, readerRestarts: 0 };
  }
  families() {
    return [{ name: 'cachenat_audit_reader_up', help: 'x', type: 'gauge' as const, samples: [{ value: 1 }] }];
  }
  async stop() {
    this.calls.push('stop');
  }
}

t.test('the loop and the audit', async (t) => {
  let now = 1_700_000_000_000;
  let kernel = emptyKernel();
  const handlers = new Map<string, () => void>();
  const snapshots: StatusSnapshot[] = [];
  const metricsAudit: unknown[] = [];
  const audits: FakeAudit[] = [];
  // The node moves between two addresses at each lookup of its name (every discovery.interval): moves, and flushes.
  let lookups = 0;
  const conntrack: Conntrack = {
    available: true,
    forgetFlows: async (_filter, deleted) => {
      deleted?.('tcp 6 431999 ESTABLISHED src=198.51.100.27 dst=10.0.0.5 sport=40000 dport=6379 src=10.0.0.1 dst=10.0.0.5 sport=6379 dport=40000 [ASSURED] mark=16777216 use=1\n');
      return 1;
    },
  };
  // Reloads in turn: the same section, a refused config, the section removed, then back.
  const reloads: (LoadedConfig | Error)[] = [configWith({ enabled: true, file: '/var/log/a.jsonl' }), new ConfigError('x.yaml', [{ path: 'aws.region', message: 'bad' }]), configWith(undefined), configWith({ enabled: true })];
  const hupAt = new Set([3, 6, 9, 12]);
  let sleeps = 0;
  const deps: DaemonDeps = {
    loaded: configWith({ enabled: true, file: '/var/log/a.jsonl' }),
    reloadConfig: async () => {
      const next = reloads.shift()!;
      if (next instanceof Error) throw next;
      return next;
    },
    buildEdges: () => ({
      netfilter: {
        save: async () => '',
        saveAll: async () => '',
        restore: async (text) => void (kernel = applyRestore(kernel, text)),
      },
      conntrack,
      source: { describe: async () => TOPOLOGY },
      resolver: { resolve: async () => ({ ok: true, ip: `10.0.1.${1 + (lookups++ % 2)}` }) },
      store: { path: '/nonexistent', load: async () => ({ status: 'missing', state: emptyPortState() }), save: async () => true } as unknown as StateStore,
      logger: createLogger({ level: 'fatal', destination: { write: () => {} } }),
      clock: { now: () => now },
    }),
    notifier: { ready: () => {}, status: () => {}, watchdog: () => {}, stopping: () => {}, watchdogIntervalMs: undefined },
    logger: createLogger({ level: 'fatal', destination: { write: () => {} } }),
    ipForward: { ensure: async () => 1 },
    writeSnapshot: async (s) => void snapshots.push(s),
    sleep: async (ms) => {
      now += Math.max(ms, 1);
      sleeps++;
      if (hupAt.has(sleeps)) handlers.get('SIGHUP')?.();
      if (sleeps >= 16) handlers.get('SIGTERM')?.();
    },
    random: () => 0.5,
    signals: { on: (s: string, f: () => void) => handlers.set(s, f), off: (s: string) => handlers.delete(s) } as unknown as DaemonDeps['signals'],
    metrics: { afterPass: async (input: { audit?: unknown }) => (metricsAudit.push(input.audit), []) } as unknown as MetricsRecorder,
    audit: (config) => {
      const audit = new FakeAudit(config.audit?.file ?? 'journal');
      audits.push(audit);
      return audit;
    },
  };
  t.equal(await runDaemon(deps), 0);
  t.equal(audits.length, 2, 'built at start, and again when the section came back');
  const [first, second] = audits as [FakeAudit, FakeAudit];
  t.same(first.calls.filter((c) => !c.startsWith('flush')), ['start', 'reconfigure', 'reopen', 'stop'], 'a reload reconfigures, a refused one reopens, the section removed stops it');
  t.same(second.calls.filter((c) => !c.startsWith('flush')), ['start', 'stop'], 'back on: started, and stopped with the daemon');
  const flushes = [...first.calls, ...second.calls].filter((c) => c.startsWith('flush'));
  t.ok(flushes.length >= 2, `flushes reported: ${flushes.length / 2}`);
  t.same(flushes.slice(0, 2), ['flushStarting', 'flushed target-moved tcp 6 431999 ESTABLISHED src=198.51.100.27 dst=10.0.0.5 sport=40000 dport=6379 src=10.0.0.1 dst=10.0.0.5 sport=6379 dport=40000 [ASSURED] mark=16777216 use=1\n'], 'each flush, with what it deleted and why');
  t.ok(first.forwardsSeen.length >= 3 && first.forwardsSeen.every((n) => n === 1), 'every pass hands over the forwards');
  t.same(snapshots.map((s) => s.audit?.sink ?? '-').filter((s, i, a) => a[i - 1] !== s), ['/var/log/a.jsonl', '-', 'journal'], 'the snapshot carries the audit while it is on');
  t.ok(metricsAudit.some((a) => Array.isArray(a)) && metricsAudit.some((a) => a === undefined), 'its metric families go to the metrics file while it is on');
});
