// The alert rules in docs/ are valid Prometheus rules (promtool check rules),
// behave as their unit tests say (promtool test rules), every alert has a case
// where it fires and one where it does not, and the "never synced" case feeds
// the rules what the daemon really writes before its first sync.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { renderExposition } from '../../src/core/metrics/exposition.js';
import { initialMetrics, metricFamilies } from '../../src/core/metrics/daemon-metrics.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const RULES = 'docs/prometheus-alerts.yml';
const TESTS = 'docs/prometheus-alerts.test.yml';

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}
interface TestFile {
  rule_files: string[];
  tests: {
    input_series: { series: string; values: string }[];
    alert_rule_test: { eval_time: string; alertname: string; exp_alerts: unknown[] }[];
  }[];
}

const rules = parse(readFileSync(repo + RULES, 'utf8')) as RuleFile;
const tests = parse(readFileSync(repo + TESTS, 'utf8')) as TestFile;
const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));

const promtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
const needsPromtool = promtool ? false : 'promtool is not installed (apt-get install prometheus; scripts/ensure-system.sh --for-tests does)';
const run = (...args: string[]) => spawnSync('promtool', args, { cwd: repo, encoding: 'utf8', timeout: 120_000 });

t.test('promtool check rules', { skip: needsPromtool }, async (t) => {
  const r = run('check', 'rules', RULES);
  t.equal(r.status, 0, `promtool check rules ${RULES}`, { output: r.stdout + r.stderr });
  t.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`), `all ${alerts.length} alerts read`);
});

t.test('promtool test rules', { skip: needsPromtool }, async (t) => {
  const r = run('test', 'rules', TESTS);
  t.equal(r.status, 0, `promtool test rules ${TESTS}`, { output: r.stdout + r.stderr });
  t.match(r.stdout, /SUCCESS/);
});

t.test('every alert is tested firing and not firing', async (t) => {
  t.same(tests.rule_files, ['prometheus-alerts.yml'], 'the tests load the rules file next to them');
  t.ok(alerts.length >= 8, `${alerts.length} alerts`);
  const cases = tests.tests.flatMap((group) => group.alert_rule_test);
  for (const alert of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    t.ok(mine.some((c) => c.exp_alerts.length > 0), `${alert}: a case where it fires`);
    t.ok(mine.some((c) => c.exp_alerts.length === 0), `${alert}: a case where it does not (yet)`);
  }
  const unknown = cases.filter((c) => !alerts.includes(c.alertname)).map((c) => c.alertname);
  t.same(unknown, [], 'no case names an alert the rules do not have');
});

t.test('the never-synced case is what a daemon writes before its first sync', async (t) => {
  const view = { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: 1_700_000_060_000, build: { version: '0.0.0', node: 'v22.12.0' } };
  const text = renderExposition(metricFamilies(initialMetrics(1_700_000_000_000), view));
  const written = /^cachenat_last_api_sync_time_seconds (\S+)$/m.exec(text)?.[1];
  t.equal(written, '0', 'the daemon writes 0 before its first sync');
  const series = tests.tests.flatMap((g) => g.input_series).find((s) => s.series === 'cachenat_last_api_sync_time_seconds{instance="never-synced",job="cachenat"}');
  t.equal(series?.values, `${written}+0x20`, 'the test feeds the rules that value throughout');
});
