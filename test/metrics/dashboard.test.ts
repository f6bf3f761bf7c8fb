// docs/grafana-cachenat.json loads both by import and from a provisioning
// file: its data source is a dashboard variable (provisioning does not fill
// in an import's __inputs), every panel uses it, ids are unique, panels fit
// the 24-column grid without overlapping, and docs/grafana-provisioning.yml
// is a file provider pointing where docs/monitoring.md says to copy the JSON.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const raw = read('docs/grafana-cachenat.json');

interface Datasource {
  type: string;
  uid: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: Datasource;
  targets?: { refId: string; expr: string; datasource?: Datasource }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query: unknown; datasource?: Datasource }[] };
  panels: Panel[];
}
const dashboard = JSON.parse(raw) as Dashboard & Record<string, unknown>;
const SOURCE: Datasource = { type: 'prometheus', uid: '${datasource}' };

t.test('the data source is a variable, never an import-only input', async (t) => {
  t.notOk('__inputs' in dashboard, 'no __inputs (provisioning would leave ${DS_…} unresolved)');
  t.notMatch(raw, /\$\{DS_/, 'no ${DS_…} placeholder anywhere');
  const [first, ...rest] = dashboard.templating.list;
  t.match(first, { name: 'datasource', type: 'datasource', query: 'prometheus' }, 'the first variable picks a Prometheus data source');
  for (const variable of rest.filter((v) => v.type === 'query')) t.same(variable.datasource, SOURCE, `variable ${variable.name} queries through it`);
  t.match(dashboard.uid, /^[a-z0-9-]{1,40}$/, 'a fixed uid, so provisioning updates the same dashboard');
});

t.test('panels: the variable as data source, unique ids, on the grid without overlap', async (t) => {
  const panels = dashboard.panels;
  t.ok(panels.length >= 16, `${panels.length} panels`);
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'ids are unique');
  for (const p of panels.filter((p) => p.type !== 'row')) {
    t.same(p.datasource, SOURCE, `${p.title}: data source`);
    t.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const target of p.targets ?? []) t.same(target.datasource, SOURCE, `${p.title} ${target.refId}: data source`);
    t.equal(new Set((p.targets ?? []).map((q) => q.refId)).size, (p.targets ?? []).length, `${p.title}: refIds unique`);
  }
  const cells = new Map<string, string>();
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos;
    t.ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `${p.title}: inside the 24-column grid`);
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const taken = cells.get(`${col},${row}`);
        if (taken) t.fail(`${p.title} overlaps ${taken} at column ${col}, row ${row}`);
        cells.set(`${col},${row}`, p.title);
      }
    }
  }
  t.ok(panels.some((p) => p.type === 'row' && /HA/.test(p.title)), 'an HA row');
});

t.test('the provisioning file is a file provider for the directory the docs name', async (t) => {
  const provisioning = parse(read('docs/grafana-provisioning.yml')) as { apiVersion: number; providers: { name: string; type: string; options: { path: string } }[] };
  t.equal(provisioning.apiVersion, 1);
  t.equal(provisioning.providers.length, 1);
  const [provider] = provisioning.providers;
  t.equal(provider!.type, 'file');
  t.match(provider!.options.path, /^\/[^\s]+$/, 'an absolute directory');
  const page = read('docs/monitoring.md');
  t.ok(page.includes(`${provider!.options.path}/grafana-cachenat.json`), `docs/monitoring.md copies the dashboard into ${provider!.options.path}`);
  t.ok(page.includes('/etc/grafana/provisioning/dashboards/cachenat.yml'), 'and the provider file where Grafana reads it');
});
