import t, { type Test } from 'tap';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/core/config/duration.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

const minimal = 'aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\n';

t.test('defaults fill every optional key', async (t) => {
  const { config, warnings } = parseConfig(minimal, 'x');
  t.same(warnings, []);
  t.equal(config.discovery.interval, 30_000);
  t.equal(config.discovery.removalGrace, 600_000);
  t.equal(config.dns.interval, 5000);
  t.equal(config.ports.reuseAfter, 86_400_000);
  t.equal(config.forward.snat, 'masquerade');
  t.equal(config.persist.rulesFile, 'auto');
});

t.test('config.example.yaml is valid, writes out every section and key, and means what it says', async (t) => {
  const text = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');
  const { config, warnings } = parseConfig(text, 'example');
  t.same(warnings, [], 'no warnings');
  // Every key the loaded config has is written in the example (none left to a
  // default the reader cannot see); optional keys without a default are absent
  // from both.
  const written = parseYaml(text) as Record<string, unknown>;
  for (const [section, value] of Object.entries(config)) {
    t.ok(section in written, `the example has a ${section} section`);
    if (typeof value !== 'object' || Array.isArray(value)) continue;
    const keys = Object.keys((written[section] ?? {}) as object).sort();
    t.same(keys, Object.keys(value).sort(), `${section}: every key is written out`);
  }
  t.same(
    config,
    {
      aws: { region: 'auto' },
      discovery: { interval: 30_000, include: ['*'], exclude: [], removalGrace: 600_000, apiTimeout: 10_000 },
      dns: { interval: 5000 },
      forward: { inboundInterface: 'auto', allowedSources: ['198.51.100.27/32'], snat: 'masquerade', connmark: 0x1000000, plaintext: 'warn' },
      ports: { redis: 6379, memcached: 11211, reuseAfter: 86_400_000 },
      ipForward: 'enable',
      state: { dir: '/var/lib/cachenat', statusFile: '/run/cachenat/status.json' },
      persist: { rulesFile: 'auto' },
      health: { syncWarnIntervals: 3, syncCriticalIntervals: 10 },
      metrics: { textfile: 'none' },
      log: { level: 'info' },
    },
    'each value read as written (durations in ms, the connmark as a number)',
  );
});

t.test('durations', async (t) => {
  t.same(['500ms', '30s', '5m', '24h', 7, '7', '1.5s', 'x', '5d', -1, null].map(parseDuration), [500, 30_000, 300_000, 86_400_000, 7000, 7000, 1500, undefined, undefined, undefined, undefined]);
});

t.test('every problem is reported at once, with its key path', async (t) => {
  const err = t.throws(() => parseConfig('aws: {region: 5}\nfoo: 1\ndiscovery: {interval: 3x}\nforward: {allowedSources: [10.0.0.1/24]}\nports: {redis: 70000}\n', 'c.yaml')) as unknown as ConfigError;
  t.type(err, ConfigError);
  t.same(err.issues.map((i) => i.path).sort(), ['aws.region', 'discovery.interval', 'foo', 'forward.allowedSources[0]', 'ports.redis']);
  t.match(err.message, /did you mean 10\.0\.0\.0\/24/);
});

t.test('0.0.0.0/0 works only when written out, with a warning; an empty list refuses', async (t) => {
  t.match(parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [0.0.0.0/0]}\n', 'x').warnings[0], /every address on the internet/);
  t.throws(() => parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: []}\n', 'x'), ConfigError);
  t.throws(() => parseConfig('aws: {region: us-east-1}\nforward: {}\n', 'x'), ConfigError);
});

t.test('YAML syntax errors and duplicate keys are config errors', async (t) => {
  t.throws(() => parseConfig('aws: [', 'x'), ConfigError);
  t.throws(() => parseConfig(`${minimal}aws: {region: us-west-2}\n`, 'x'), ConfigError);
});

t.test('state paths under kernel pseudo-filesystems are refused', async (t) => {
  const err = t.throws(() => parseConfig(`${minimal}state: {dir: /proc/cachenat}\n`, 'x')) as unknown as ConfigError;
  t.match(err.message, /state\.dir: must not be under \/proc, \/sys or \/dev/);
});

t.test('forward.listenAddresses: address mode when present; unicast IPv4s, each listed once', async (t) => {
  const withList = (list: string) => `aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32], listenAddresses: ${list}}\n`;
  const { config } = parseConfig(withList('[{address: 10.0.1.21, public: 203.0.113.21}, {address: 10.0.1.22, public: 203.0.113.22}]'), 'x');
  t.same(config.forward.listenAddresses, [{ address: '10.0.1.21', public: '203.0.113.21' }, { address: '10.0.1.22', public: '203.0.113.22' }]);
  t.equal(parseConfig(minimal, 'x').config.forward.listenAddresses, undefined, 'absent: port mode');
  const problems = (list: string) => (t.throws(() => parseConfig(withList(list), 'c.yaml')) as unknown as ConfigError).issues;
  t.match(problems('[]'), [{ path: 'forward.listenAddresses', message: /at least one address, or leave listenAddresses out/ }]);
  t.match(problems('[{address: 10.0.1.21, public: 203.0.113.21}, {address: 10.0.1.21, public: 203.0.113.22}]'), [
    { path: 'forward.listenAddresses[1].address', message: /10\.0\.1\.21 is listed twice \(entries 0 and 1\)/ },
  ]);
  t.match(problems('[{address: 10.0.1.21, public: 203.0.113.21}, {address: 10.0.1.22, public: 203.0.113.21}]'), [{ path: 'forward.listenAddresses[1].public' }]);
  t.match(problems('[{address: 127.0.0.2, public: 203.0.113.21}]'), [{ path: 'forward.listenAddresses[0].address', message: /not a unicast IPv4 address/ }]);
  t.match(problems('[{address: 10.0.1.021, public: cache.example}]'), [{ path: 'forward.listenAddresses[0].address' }, { path: 'forward.listenAddresses[0].public' }]);
  t.match(problems('[{address: 10.0.1.21}]'), [{ path: 'forward.listenAddresses[0].public', message: /required/ }]);
});

// ── ha (issue #12) ─────────────────────────────────────────────────────────

const haConfig = (ha: string, forward = '') => `aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]${forward}}\nha: ${ha}\n`;
const haProblems = (t: Test, text: string) => (t.throws(() => parseConfig(text, 'c.yaml')) as unknown as ConfigError).issues;

t.test('ha: absent by default; every key read as the issue writes it', async (t) => {
  t.equal(parseConfig(minimal, 'x').config.ha, undefined, 'without ha nothing changes');
  const { config, warnings } = parseConfig(haConfig('{table: cachenat, group: prod-nat, lease: 10s, elasticIp: eipalloc-0123abcd, endpoint: "http://127.0.0.1:8000", ec2Endpoint: "http://127.0.0.1:8001/", imdsEndpoint: "http://127.0.0.1:1338"}'), 'x');
  t.same(warnings, [], 'acted on: no warning');
  t.same(config.ha, { table: 'cachenat', group: 'prod-nat', lease: 10_000, elasticIp: 'eipalloc-0123abcd', endpoint: 'http://127.0.0.1:8000', ec2Endpoint: 'http://127.0.0.1:8001/', imdsEndpoint: 'http://127.0.0.1:1338' });
  t.equal(parseConfig(haConfig('{table: cachenat, group: prod-nat, elasticIp: eipalloc-0123456789abcdef0}'), 'x').config.ha?.lease, 10_000, 'lease defaults to 10s');
});

t.test('ha: each key checked by the grammar, with its path', async (t) => {
  const eip = 'elasticIp: eipalloc-0123abcd';
  t.match(haProblems(t, haConfig(`{group: prod-nat, ${eip}}`)), [{ path: 'ha.table', message: /required/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, ${eip}}`)), [{ path: 'ha.group', message: /required/ }]);
  t.match(haProblems(t, haConfig(`{table: ab, group: prod-nat, ${eip}}`)), [{ path: 'ha.table', message: /DynamoDB table name/ }]);
  t.match(haProblems(t, haConfig(`{table: "cache nat", group: prod-nat, ${eip}}`)), [{ path: 'ha.table' }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: "prod#nat", ${eip}}`)), [{ path: 'ha.group', message: /group name/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, lease: 2s, ${eip}}`)), [{ path: 'ha.lease', message: /from 3s to 1h/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, lease: 2h, ${eip}}`)), [{ path: 'ha.lease', message: /from 3s to 1h/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, lease: soon, ${eip}}`)), [{ path: 'ha.lease', message: /expected a duration/ }]);
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat, elasticIp: 203.0.113.7}')), [{ path: 'ha.elasticIp', message: /allocation id such as eipalloc-0123abcd/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, ${eip}, endpoint: "ftp://x"}`)), [{ path: 'ha.endpoint', message: /http or https/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, ${eip}, ec2Endpoint: "http://user:pw@ec2.example"}`)), [{ path: 'ha.ec2Endpoint', message: /credentials/ }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, ${eip}, endpoint: "not a url"}`)), [{ path: 'ha.endpoint' }]);
  t.match(haProblems(t, haConfig(`{table: cachenat, group: prod-nat, ${eip}, peers: 2}`)), [{ path: 'ha.peers', message: /^unknown key; expected one of table, group, lease/ }]);
});

t.test('ha against the mode: port mode needs ha.elasticIp; address mode one allocationId per listen address', async (t) => {
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat}')), [{ path: 'ha.elasticIp', message: /required in port mode/ }]);
  const list = (entries: string) => `, listenAddresses: ${entries}`;
  const two = '[{address: 10.0.1.21, public: 203.0.113.21, allocationId: eipalloc-0000aaaa}, {address: 10.0.1.22, public: 203.0.113.22, allocationId: eipalloc-0000bbbb}]';
  const { config } = parseConfig(haConfig('{table: cachenat, group: prod-nat}', list(two)), 'x');
  t.same(config.forward.listenAddresses?.map((e) => e.allocationId), ['eipalloc-0000aaaa', 'eipalloc-0000bbbb']);
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat, elasticIp: eipalloc-0123abcd}', list(two))), [{ path: 'ha.elasticIp', message: /for port mode/ }]);
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat}', list('[{address: 10.0.1.21, public: 203.0.113.21, allocationId: eipalloc-0000aaaa}, {address: 10.0.1.22, public: 203.0.113.22}]'))), [
    { path: 'forward.listenAddresses[1].allocationId', message: /required with ha: the allocation id of 203\.0\.113\.22/ },
  ]);
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat}', list('[{address: 10.0.1.21, public: 203.0.113.21, allocationId: eipalloc-0000aaaa}, {address: 10.0.1.22, public: 203.0.113.22, allocationId: eipalloc-0000aaaa}]'))), [
    { path: 'forward.listenAddresses[1].allocationId', message: /listed twice/ },
  ]);
  t.match(haProblems(t, haConfig('{table: cachenat, group: prod-nat}', list('[{address: 10.0.1.21, public: 203.0.113.21, allocationId: 0000aaaa}]'))), [
    { path: 'forward.listenAddresses[0].allocationId', message: /allocation id/ },
  ]);
  const withoutHa = `aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]${list('[{address: 10.0.1.21, public: 203.0.113.21, allocationId: eipalloc-0000aaaa}]')}}\n`;
  t.match(haProblems(t, withoutHa), [{ path: 'forward.listenAddresses[0].allocationId', message: /only with an ha section/ }]);
});
