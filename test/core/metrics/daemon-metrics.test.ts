// Folding passes into the daemon's counters.

import t from 'tap';
import { forwardConnections, initialMetrics, metricFamilies, observePass, type PassObservation } from '../../../src/core/metrics/daemon-metrics.js';
import type { Forward } from '../../../src/core/model.js';

const pass = (o: Partial<PassObservation> = {}): PassObservation => ({ outcome: 'ok', durationSeconds: 0.01, dnatChainRewritten: false, events: [], ...o });

t.test('outcomes, kernel writes, moves and DNS failures are counted', async (t) => {
  let m = initialMetrics(0);
  m = observePass(m, pass({ kernelWrite: 'ok', events: [{ type: 'ip-changed', key: 'primary/g', listenPort: 6379, from: '10.0.0.1', to: '10.0.0.2' }] }));
  m = observePass(m, pass({ outcome: 'kernel_error', kernelWrite: 'error' }));
  m = observePass(m, pass({ outcome: 'failed', durationSeconds: undefined }));
  m = observePass(m, pass({ outcome: 'api_error', apiErrorCode: 'Throttling', events: [{ type: 'resolve-failed', key: 'node/a/1', address: 'a', error: 'ENOTFOUND' }] }));
  t.same(m.passes, { ok: 1, api_error: 1, kernel_error: 1, failed: 1 });
  t.same(m.kernelWrites, { ok: 1, error: 1 });
  t.equal(m.targetMoves, 1);
  t.equal(m.dnsFailures, 1);
  t.equal(m.durationCount, 3, 'a pass that threw has no duration to observe');
  t.same([...m.apiErrors], [['Throttling', 1]]);
});

t.test('API error codes from the network cannot blow up the label set', async (t) => {
  let m = initialMetrics(0);
  for (let i = 0; i < 30; i++) m = observePass(m, pass({ outcome: 'api_error', apiErrorCode: `Code${i}` }));
  m = observePass(m, pass({ outcome: 'api_error', apiErrorCode: 'bad code with spaces"' }));
  t.equal(m.apiErrors.size, 21, '20 codes plus "other"');
  t.equal(m.apiErrors.get('other'), 11, '10 overflowing codes and the unprintable one');
});

t.test('a rewrite of the DNAT chain in a pass resets the counters the next pass reads', async (t) => {
  const id = '6379 primary/g';
  let m = initialMetrics(0);
  m = observePass(m, pass({ dnatPackets: new Map([[id, 10]]), dnatChainRewritten: true }));
  t.equal(m.newConnections.totals.get(id), 0, 'baseline');
  m = observePass(m, pass({ dnatPackets: new Map([[id, 12]]) }));
  t.equal(m.newConnections.totals.get(id), 12, 'the chain was rewritten after the previous read: all 12 are new');
  m = observePass(m, pass({ outcome: 'failed', durationSeconds: undefined, dnatChainRewritten: true }));
  m = observePass(m, pass({ dnatPackets: new Map([[id, 13]]) }));
  t.equal(m.newConnections.totals.get(id), 25, 'a rewrite in a pass without a read is remembered');
});

t.test('connections per forward: unknown without conntrack, zero for a forward without a rule', async (t) => {
  const f = (listenPort: number, key: string, targetIp?: string): Forward => ({ key, kind: 'node', engine: 'redis', address: 'x', targetPort: 6379, listenPort, state: targetIp ? 'active' : 'unresolved', ...(targetIp ? { targetIp } : {}) });
  let m = initialMetrics(0);
  m = observePass(m, pass({ dnatPackets: new Map([['6379 node/a/1', 3]]) }));
  const forwards = [f(6379, 'node/a/1', '10.0.0.1'), f(6380, 'node/b/1')];
  t.same(forwardConnections(forwards, m, new Map([['10.0.0.5:6379', 1], ['10.0.0.6:6379', 1], ['10.0.0.5:6380', 5]])), [
    { listenPort: 6379, key: 'node/a/1', active: 2, new: 0 },
    { listenPort: 6380, key: 'node/b/1', active: 0 },
  ]);
  t.same(forwardConnections(forwards, m, undefined), [{ listenPort: 6379, key: 'node/a/1', new: 0 }, { listenPort: 6380, key: 'node/b/1' }]);
});

t.test('address mode: forwards on one port but their own addresses count their own connections and carry listen_address', async (t) => {
  const f = (listenAddress: string, key: string): Forward => ({ key, kind: 'node', engine: 'redis', address: 'x', targetPort: 6379, listenPort: 6379, listenAddress, state: 'active', targetIp: '10.1.0.1' });
  const forwards = [f('10.0.9.21', 'node/a/1'), f('10.0.9.22', 'node/b/1')];
  const m = initialMetrics(0);
  const connections = forwardConnections(forwards, m, new Map([['10.0.9.21:6379', 3], ['10.0.9.22:6379', 4], ['10.0.0.5:6379', 9]]));
  t.same(connections.map((c) => [c.key, c.active]), [['node/a/1', 3], ['node/b/1', 4]], 'traffic to other addresses on 6379 is not theirs');
  const active = metricFamilies(m, { forwards, connections, quarantinedPorts: 0, withoutPort: 0, now: 0, build: { version: '0.0.0', node: 'v22.12.0' } }).find((fam) => fam.name === 'cachenat_forward_active_connections');
  t.same(active?.samples.map((s) => [s.labels, 'value' in s ? s.value : undefined]), [
    [{ listen_address: '10.0.9.21', listen_port: '6379', target: 'node/a/1', engine: 'redis', kind: 'node' }, 3],
    [{ listen_address: '10.0.9.22', listen_port: '6379', target: 'node/b/1', engine: 'redis', kind: 'node' }, 4],
  ]);
});

t.test('cachenat_forwards counts every kind and state; quarantined listeners, portless and IPv6-only targets and forgotten flows are written', async (t) => {
  const f = (key: string, kind: Forward['kind'], state: Forward['state'], extra: Partial<Forward> = {}): Forward => ({ key, kind, engine: 'valkey', address: 'x', targetPort: 6379, listenPort: 6379, state, ...extra });
  const forwards = [
    f('node/a/1', 'node', 'active'),
    f('primary/g', 'primary', 'draining'),
    f('reader/g', 'reader', 'refused'),
    f('configuration/g', 'configuration', 'active'),
    f('serverless/s', 'serverless', 'unresolved', { ipv6Only: true }),
    f('serverless-reader/s', 'serverless-reader', 'active'),
    f('serverless/t', 'serverless', 'refused'),
  ];
  let m = initialMetrics(0);
  m = observePass(m, pass({ flowsForgotten: { moved: 2, revoked: 5 } }));
  m = observePass(m, pass({ flowsForgotten: { moved: 1, revoked: 0 } }));
  const families = metricFamilies(m, { forwards, connections: [], quarantinedPorts: 3, withoutPort: 2, now: 0 });
  const family = (name: string) => families.find((fam) => fam.name === name)!;
  const values = (name: string) => family(name).samples.map((s) => [s.labels ?? {}, 'value' in s ? s.value : undefined] as const);
  const forwardsSamples = values('cachenat_forwards');
  t.equal(forwardsSamples.reduce((n, [, v]) => n + (v ?? 0), 0), forwards.length, 'the samples sum to the forwards status lists');
  t.same(forwardsSamples.find(([l]) => l.kind === 'serverless' && l.state === 'refused' && l.engine === 'valkey')?.[1], 1);
  t.same(forwardsSamples.find(([l]) => l.kind === 'configuration' && l.state === 'active' && l.engine === 'valkey')?.[1], 1);
  t.equal(forwardsSamples.length, 6 * 3 * 4, 'six kinds, three engines, four states, zeros included');
  t.same(values('cachenat_ports_quarantined'), [[{}, 3]]);
  t.same(values('cachenat_targets_without_port'), [[{}, 2]]);
  t.same(values('cachenat_targets_aaaa_only'), [[{}, 1]]);
  t.same(values('cachenat_flows_forgotten_total'), [[{ reason: 'moved' }, 3], [{ reason: 'revoked' }, 5]]);
});
