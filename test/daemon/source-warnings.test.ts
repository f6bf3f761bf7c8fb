// Per-source failures and standing warnings through one real reconcile pass.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { Reconciler, type ReconcilerEdges } from '../../src/daemon/reconciler.js';
import { DiscoveryError, type Discovery } from '../../src/core/discovery/types.js';
import { createLogger } from '../../src/log/logger.js';
import type { DiscoveredTarget } from '../../src/core/model.js';
import { StateStore } from '../../src/ports/state-store.js';
import { SimulatedNetfilter } from '../support/kernel-sim.js';
import { evaluateHealth, WARNING } from '../../src/core/health/evaluate.js';
import { scratchDir } from '../support/scratch.js';

const configFor = (sources: string, plaintext = 'warn') =>
  parseConfig(`aws: {region: us-east-1}\nforward: {allowedSources: [${sources}], plaintext: ${plaintext}}\n`, 'test').config;

const node = (cluster: string, ip: string, tls?: boolean): DiscoveredTarget => ({
  key: `node/${cluster}/0001`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: '0001', ...(tls === undefined ? {} : { tls }), address: ip, targetPort: 6379,
});
const denied = new DiscoveryError('DescribeServerlessCaches (page 1) failed: AccessDenied: no', 'AccessDenied', false);
const broken = new DiscoveryError('DescribeServerlessCaches (page 2) failed: InternalFailure: x', 'InternalFailure', true);

function rig(answers: Discovery[]) {
  const logs: { level: number; msg: string }[] = [];
  const edges: ReconcilerEdges = {
    netfilter: new SimulatedNetfilter(),
    conntrack: { available: true, forgetFlows: async () => 0 },
    source: { describe: async () => (answers.length > 1 ? answers.shift()! : answers[0]!) },
    resolver: { resolve: async (name) => ({ ok: true, ip: name }) },
    store: new StateStore(scratchDir(t, 'warnings')),
    clock: { now: () => 1_000_000 },
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } }),
  };
  return { edges, logs, warnLogs: () => logs.filter((l) => l.level === 40).map((l) => l.msg) };
}

t.test('AccessDenied on DescribeServerlessCaches alone: a standing warning logged once, not a failed sync', async (t) => {
  const answer: Discovery = { targets: [node('a', '10.0.1.1')], skipped: [], held: ['serverless'], failures: [{ source: 'serverless', error: denied }] };
  const r = rig([answer]);
  const reconciler = new Reconciler(configFor('198.51.100.27/32'), r.edges);
  const first = await reconciler.pass({ discover: true, write: true });
  await reconciler.pass({ discover: true, write: true });
  t.equal(first.discovery.status, 'ok');
  t.equal(reconciler.lastSyncError, undefined);
  t.same([...reconciler.warnings.values()].length, 1);
  t.match([...reconciler.warnings.values()][0], /elasticache:DescribeServerlessCaches/);
  t.equal(r.warnLogs().filter((m) => /DescribeServerlessCaches/.test(m)).length, 1, 'logged once over two passes');
  t.same(first.plan.forwards.map((f) => f.state), ['active'], 'the classic source proceeds');
});

t.test('any other failure of one source is a failed sync, yet the other source still changes', async (t) => {
  const r = rig([
    { targets: [node('a', '10.0.1.1')], skipped: [] },
    { targets: [node('b', '10.0.1.2')], skipped: [], held: ['serverless'], failures: [{ source: 'serverless', error: broken }] },
  ]);
  const reconciler = new Reconciler(configFor('198.51.100.27/32'), r.edges);
  await reconciler.pass({ discover: true, write: true });
  const second = await reconciler.pass({ discover: true, write: true });
  t.equal(second.discovery.status, 'failed');
  t.equal(reconciler.lastSyncError?.code, 'InternalFailure');
  t.same(second.plan.forwards.map((f) => [f.key, f.state]), [['node/a/0001', 'draining'], ['node/b/0001', 'active']]);
  t.same([...reconciler.warnings.keys()], []);
});

t.test('plaintext exposure: one warning per cache, cleared when it is encrypted; health says WARNING and names the cache', async (t) => {
  const r = rig([
    { targets: [node('orders', '10.0.1.1', false), node('secure', '10.0.1.2', true)], skipped: [] },
    { targets: [node('orders', '10.0.1.1', true), node('secure', '10.0.1.2', true)], skipped: [] },
  ]);
  const reconciler = new Reconciler(configFor('0.0.0.0/0'), r.edges);
  await reconciler.pass({ discover: true, write: true });
  await reconciler.pass({ discover: false, write: true });
  const warnings = [...reconciler.warnings.values()];
  t.equal(warnings.length, 1);
  t.match(warnings[0], /cache orders \(node\/orders\/0001, port 6379\) has no in-transit encryption and 0\.0\.0\.0\/0 may reach it/);
  t.equal(r.warnLogs().filter((m) => /in-transit/.test(m)).length, 1, 'logged once');
  const now = Date.parse('2026-01-01T00:00:10Z');
  const health = evaluateHealth({
    now,
    snapshotPath: '/run/x',
    daemonAlive: true,
    ipForward: 1,
    kernel: { readable: false, reason: 'test' },
    snapshot: {
      version: 1, pid: 1, startedAt: '2026-01-01T00:00:00Z', lastPassAt: '2026-01-01T00:00:09Z', lastSyncAt: '2026-01-01T00:00:09Z', passes: 2, lastPassOk: true,
      discoveryIntervalMs: 30_000, dnsIntervalMs: 5000, syncWarnIntervals: 3, syncCriticalIntervals: 10, degraded: false, forwards: [], warnings,
    },
  });
  t.equal(health.state, WARNING);
  t.match(health.summary, /^WARNING - cache orders/);
  await reconciler.pass({ discover: true, write: true });
  t.same([...reconciler.warnings.keys()], [], 'gone once the cache speaks TLS');
});
