// The dashboard and the alerts in docs/ use only metrics the daemon writes.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { renderExposition } from '../../../src/core/metrics/exposition.js';
import { initialMetrics, metricFamilies } from '../../../src/core/metrics/daemon-metrics.js';

const written = new Set(
  renderExposition(metricFamilies({ ...initialMetrics(0), lastSyncAt: 0 }, { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: 0, build: { version: '0.0.0', node: 'v22.12.0' } }))
    .split('\n')
    .filter((line) => line.startsWith('# TYPE '))
    .flatMap((line) => {
      const [, , name, type] = line.split(' ');
      return type === 'histogram' ? [name!, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!];
    }),
);

const namesIn = (text: string): string[] => [...new Set(text.match(/\bcachenat_[a-z_]+/g) ?? [])];

t.test('every metric the Grafana dashboard queries exists', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('../../../docs/grafana-cachenat.json', import.meta.url), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((target) => target.expr)).join('\n');
  const names = namesIn(exprs);
  t.ok(names.length >= 8, `the dashboard queries ${names.length} metrics`);
  for (const name of names) t.ok(written.has(name), `${name} is written`);
});

t.test('every metric docs/monitoring.md names exists', async (t) => {
  const names = namesIn(readFileSync(new URL('../../../docs/monitoring.md', import.meta.url), 'utf8')).filter((n) => !n.endsWith('_')); // "cachenat_" the prefix
  t.ok(names.length >= 15, `the page names ${names.length} metrics`);
  for (const name of names) t.ok(written.has(name), `${name} is written`);
});
