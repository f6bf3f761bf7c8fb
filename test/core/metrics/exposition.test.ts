// The exposition text, parsed back by an independent parser of the Prometheus
// text format (parse-prometheus-text-format, a port of the Python client's).

import t from 'tap';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { renderExposition, type MetricFamily } from '../../../src/core/metrics/exposition.js';
import { initialMetrics, metricFamilies, observePass } from '../../../src/core/metrics/daemon-metrics.js';
import type { Forward } from '../../../src/core/model.js';

interface Parsed {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}
const parse = (text: string): Parsed[] => parsePrometheusTextFormat(text) as Parsed[];

t.test('gauges, counters and a histogram read back with their help, type, labels and values', async (t) => {
  const families: MetricFamily[] = [
    { name: 'x_up', help: 'Up.', type: 'gauge', samples: [{ value: 1 }] },
    { name: 'x_requests_total', help: 'Requests.', type: 'counter', samples: [{ labels: { code: 'Throttling' }, value: 3 }, { labels: { code: 'AccessDenied' }, value: 1 }] },
    { name: 'x_seconds', help: 'Durations.', type: 'histogram', samples: [{ bounds: [0.1, 1], cumulative: [2, 3], count: 4, sum: 2.5 }] },
  ];
  const parsed = parse(renderExposition(families));
  t.same(parsed.map((p) => [p.name, p.type, p.help]), [
    ['x_up', 'GAUGE', 'Up.'],
    ['x_requests_total', 'COUNTER', 'Requests.'],
    ['x_seconds', 'HISTOGRAM', 'Durations.'],
  ]);
  t.same(parsed[1]!.metrics, [{ value: '3', labels: { code: 'Throttling' } }, { value: '1', labels: { code: 'AccessDenied' } }]);
  t.same(parsed[2]!.metrics[0], { buckets: { '0.1': '2', '1': '3', '+Inf': '4' }, count: '4', sum: '2.5' });
});

t.test('label values with quotes, backslashes and newlines survive the round trip', async (t) => {
  const nasty = 'a"b\\c\nd';
  const parsed = parse(renderExposition([{ name: 'x_info', help: 'Help with a \\ and\na newline.', type: 'gauge', samples: [{ labels: { v: nasty }, value: 1 }] }]));
  t.equal(parsed[0]!.metrics[0]!.labels!.v, nasty);
  t.equal(parsed[0]!.help, 'Help with a \\ and\na newline.');
});

t.test('names that break the format are refused, not written', async (t) => {
  t.throws(() => renderExposition([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }]), /invalid metric name/);
  t.throws(() => renderExposition([{ name: 'x_count', help: '', type: 'counter', samples: [] }]), /must end in _total/);
  t.throws(() => renderExposition([{ name: 'x', help: '', type: 'gauge', samples: [{ labels: { 'a-b': '1' }, value: 1 }] }]), /invalid label name/);
  t.throws(() => renderExposition([{ name: 'x', help: '', type: 'histogram', samples: [{ bounds: [1], cumulative: [], count: 0, sum: 0 }] }]), /1 bounds but 0/);
  t.equal(renderExposition([]), '');
});

const forward = (listenPort: number, key: string, state: Forward['state'] = 'active'): Forward => ({
  key, kind: 'node', engine: 'redis', address: `${key}.example`, targetPort: 6379, listenPort, state,
  ...(state === 'unresolved' ? {} : { targetIp: '10.0.1.1' }),
});

t.test("the daemon's families: every name follows the naming rules and the parser reads every sample", async (t) => {
  let m = initialMetrics(1_700_000_000_000);
  m = observePass(m, { outcome: 'ok', durationSeconds: 0.003, dnatChainRewritten: true, events: [], lastSyncAt: 1_700_000_001_000, dnatPackets: new Map([['6379 node/a/0001', 5]]) });
  m = observePass(m, { outcome: 'api_error', durationSeconds: 0.02, dnatChainRewritten: false, apiErrorCode: 'Throttling', events: [], dnatPackets: new Map([['6379 node/a/0001', 7]]) });
  const forwards = [forward(6379, 'node/a/0001'), forward(6380, 'node/b/0001', 'unresolved')];
  const text = renderExposition(metricFamilies(m, { forwards, connections: [{ listenPort: 6379, key: 'node/a/0001', active: 2, new: 7 }, { listenPort: 6380, key: 'node/b/0001', active: 0 }], quarantinedPorts: 1, withoutPort: 0, now: 1_700_000_002_000, build: { version: '1.2.3', node: 'v22.12.0' } }));
  const parsed = parse(text);
  const byName = new Map(parsed.map((p) => [p.name, p]));
  for (const p of parsed) {
    t.match(p.name, /^cachenat_[a-z_]+$/, `${p.name}: prefix and snake case`);
    if (p.type === 'COUNTER') t.match(p.name, /_total$/, `${p.name}: counters end in _total`);
    t.ok(p.help.length > 10, `${p.name}: has help`);
  }
  t.same(byName.get('cachenat_passes_total')!.metrics.map((s) => [s.labels!.outcome, s.value]), [['ok', '1'], ['api_error', '1'], ['kernel_error', '0'], ['failed', '0']]);
  t.same(byName.get('cachenat_api_errors_total')!.metrics, [{ value: '1', labels: { code: 'Throttling' } }]);
  t.same(byName.get('cachenat_forward_active_connections')!.metrics, [
    { value: '2', labels: { listen_port: '6379', target: 'node/a/0001', engine: 'redis', kind: 'node' } },
    { value: '0', labels: { listen_port: '6380', target: 'node/b/0001', engine: 'redis', kind: 'node' } },
  ]);
  t.same(byName.get('cachenat_forward_new_connections_total')!.metrics, [{ value: '7', labels: { listen_port: '6379', target: 'node/a/0001', engine: 'redis', kind: 'node' } }]);
  t.same(byName.get('cachenat_build_info')!.metrics, [{ value: '1', labels: { version: '1.2.3', node: 'v22.12.0' } }]);
  t.equal(byName.get('cachenat_targets_unresolved')!.metrics[0]!.value, '1');
  t.equal(byName.get('cachenat_ports_quarantined')!.metrics[0]!.value, '1');
  t.equal(byName.get('cachenat_last_api_sync_time_seconds')!.metrics[0]!.value, '1700000001');
  t.equal(byName.get('cachenat_api_sync_age_seconds')!.metrics[0]!.value, '1', 'written 1 s after the sync');

  // Before the first complete answer both are there: 0, and the age since the start.
  const never = observePass(initialMetrics(1_700_000_000_000), { outcome: 'api_error', durationSeconds: 0.02, dnatChainRewritten: false, apiErrorCode: 'AccessDenied', events: [], dnatPackets: new Map() });
  // (`build`, in a variable so the view type may or may not have it yet.)
  const neverView = { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: 1_700_000_300_000, build: { version: '0.0.0', node: 'v22.12.0' } };
  const neverByName = new Map(parse(renderExposition(metricFamilies(never, neverView))).map((p) => [p.name, p]));
  t.same(neverByName.get('cachenat_last_api_sync_time_seconds')!.metrics, [{ value: '0' }], 'never synced: the sync time is 0, not absent');
  t.same(neverByName.get('cachenat_api_sync_age_seconds')!.metrics, [{ value: '300' }], 'never synced: the age counts from the start, 300 s ago');
  t.same(byName.get('cachenat_pass_duration_seconds')!.metrics[0]!.count, '2');
  t.equal(byName.get('cachenat_pass_duration_seconds')!.metrics[0]!.buckets!['0.004'], '1', 'the 3 ms pass is in the 4 ms bucket, the 20 ms one is not');
  const active = byName.get('cachenat_forwards')!.metrics.find((s) => s.labels!.kind === 'node' && s.labels!.engine === 'redis' && s.labels!.state === 'active');
  t.equal(active!.value, '1');
  t.equal(byName.get('cachenat_forwards')!.metrics.length, 6 * 3 * 4, 'every kind × engine × state, zeros included, so alerts see a series');
});
