// The dashboard, the alert rules and docs/monitoring.md use only metrics the
// daemon writes, and the page documents every one of them (the HA pair's too).

import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { renderExposition } from '../../../src/core/metrics/exposition.js';
import { initialMetrics, metricFamilies } from '../../../src/core/metrics/daemon-metrics.js';
import type { HaStatus } from '../../../src/core/ha/ha-status.js';

const ha: HaStatus = {
  role: 'leader',
  roleSince: '2024-01-01T00:00:00.000Z',
  group: 'prod-nat',
  leaseMs: 10_000,
  mayAllocate: true,
  peers: [{ instanceId: 'i-0ccc3333dddd44445', role: 'standby', lastSeenAt: '2024-01-01T00:00:00.000Z' }],
  elasticIps: [{ allocationId: 'eipalloc-0123abcd', privateIp: '10.0.1.10', state: 'held' }],
  waiting: 0,
  misfits: [],
};
const view = { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: 0, ha, build: { version: '0.0.0', node: 'v22.12.0' } };
const text = renderExposition(metricFamilies({ ...initialMetrics(0), lastSyncAt: 0 }, view));
const families = text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ') as [string, string, string, string]);
const written = new Set(families.flatMap(([, , name, type]) => (type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name])));

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
const namesIn = (text: string): string[] => [...new Set(text.match(/\bcachenat_[a-z_]+/g) ?? [])].filter((n) => !n.endsWith('_')); // "cachenat_" the prefix

interface Panel {
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

t.test('every metric the Grafana dashboard queries exists', async (t) => {
  const dashboard = JSON.parse(read('docs/grafana-cachenat.json')) as { panels: Panel[] };
  const all = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...all(p.panels ?? [])]);
  const exprs = all(dashboard.panels).flatMap((p) => (p.targets ?? []).map((target) => target.expr)).join('\n');
  const names = namesIn(exprs);
  t.ok(names.length >= 14, `the dashboard queries ${names.length} metrics`);
  for (const name of names) t.ok(written.has(name), `${name} is written`);
  for (const name of [...written].filter((n) => n.startsWith('cachenat_ha_'))) t.ok(names.includes(name), `the HA panels show ${name}`);
});

t.test('every metric the alert rules use exists', async (t) => {
  const rules = parse(read('docs/prometheus-alerts.yml')) as { groups: { rules: { expr: string }[] }[] };
  const names = namesIn(rules.groups.flatMap((g) => g.rules.map((r) => r.expr)).join('\n'));
  t.ok(names.length >= 9, `the rules use ${names.length} metrics`);
  for (const name of names) t.ok(written.has(name), `${name} is written`);
});

t.test('docs/monitoring.md names only metrics that exist, and has a row for every one', async (t) => {
  const page = read('docs/monitoring.md');
  const names = namesIn(page);
  t.ok(names.length >= 20, `the page names ${names.length} metrics`);
  for (const name of names) t.ok(written.has(name), `${name} is written`);
  const rows = new Set([...page.matchAll(/^\| `(cachenat_[a-z_]+)` \| (\w+) \|/gm)].map((m) => `${m[1]} ${m[2]}`));
  t.ok(families.length >= 20, `${families.length} metric families written`);
  for (const [, , name, type] of families) t.ok(rows.has(`${name} ${type}`), `a table row documents ${name} (${type})`);
});
