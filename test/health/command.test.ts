import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';
import { runHealth, tcpProbe, type HealthDeps } from '../../src/health/command.js';

const NOW = Date.parse('2025-01-01T12:00:00Z');

const snapshot = (statusExtra: Partial<StatusSnapshot> = {}): StatusSnapshot => ({
  version: 1,
  pid: 4242,
  startedAt: new Date(NOW - 600_000).toISOString(),
  lastPassAt: new Date(NOW - 1_000).toISOString(),
  passes: 10,
  lastPassOk: true,
  lastSyncAt: new Date(NOW - 5_000).toISOString(),
  discoveryIntervalMs: 30_000,
  dnsIntervalMs: 5_000,
  syncWarnIntervals: 3,
  syncCriticalIntervals: 10,
  degraded: false,
  forwards: [
    { key: 'node/c1/0001', kind: 'node', engine: 'redis', cacheClusterId: 'c1', cacheNodeId: '0001', address: 'a', targetIp: '10.0.0.1', targetPort: 6379, listenPort: 6379, state: 'active' },
  ],
  ...statusExtra,
});

async function setup(t: Test, status: StatusSnapshot | string | undefined) {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const statusFile = join(dir, 'status.json');
  const configPath = join(dir, 'config.yaml');
  await writeFile(configPath, `aws: { region: us-east-1 }\nforward: { allowedSources: [198.51.100.0/24] }\nstate: { statusFile: ${statusFile} }\n`);
  if (status !== undefined) await writeFile(statusFile, typeof status === 'string' ? status : JSON.stringify(status));
  let out = '';
  const files: Record<string, string> = { '/proc/sys/net/ipv4/ip_forward': '1\n' };
  const deps: Partial<HealthDeps> = {
    now: () => NOW,
    env: {},
    stdout: { write: (s) => void (out += s) },
    readText: async (path) => files[path] ?? (await import('node:fs/promises')).readFile(path, 'utf8'),
    isAlive: (pid) => pid === 4242,
    privileged: () => false,
    probe: async (ip) => (ip === '10.0.0.1' ? { ok: true, ms: 1 } : { ok: false, error: 'ECONNREFUSED' }),
  };
  return { configPath, deps, files, output: () => out };
}

t.test('unprivileged, daemon healthy: exit 0 and an OK line', async (t) => {
  const { configPath, deps, output } = await setup(t, snapshot());
  t.equal(await runHealth({ configPath }, deps), 0);
  t.match(output(), /^OK - 1 forward, last sync 5s ago/);
  t.match(output(), /note: kernel rules not read \(not root\)/);
});

t.test('--json and --probe', async (t) => {
  const { configPath, deps, output } = await setup(t, snapshot());
  t.equal(await runHealth({ configPath, json: true, probe: true }, deps), 0);
  const report = JSON.parse(output()) as { state: string; checks: { name: string; state: string; message: string }[] };
  t.equal(report.state, 'OK');
  t.match(report.checks.find((c) => c.name === 'probe'), { state: 'OK', message: 'TCP connect to all 1 targets succeeded' });
});

t.test('root: the kernel is read and compared with the snapshot digest', async (t) => {
  const { configPath, deps, output } = await setup(t, snapshot({ rulesDigest: 'stale' }));
  const nat = '*nat\n:PREROUTING ACCEPT [0:0]\n:CACHENAT-PREROUTING - [0:0]\n-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING\nCOMMIT\n';
  const filter = '*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n';
  const code = await runHealth({ configPath }, { ...deps, privileged: () => true, netfilter: { saveAll: async () => filter + nat } });
  t.equal(code, 2);
  t.match(output(), /^CRITICAL - jumps into cachenat's chains missing: OUTPUT -> CACHENAT-OUTPUT, POSTROUTING -> CACHENAT-POSTROUTING, FORWARD -> CACHENAT-FORWARD/);
  t.notMatch(output(), /kernel rules not read/);
});

t.test('root but iptables-save fails: noted, verdict from the snapshot', async (t) => {
  const { configPath, deps, output } = await setup(t, snapshot());
  const code = await runHealth({ configPath }, { ...deps, privileged: () => true, netfilter: { saveAll: async () => Promise.reject(new Error('iptables-save: command not found')) } });
  t.equal(code, 0);
  t.match(output(), /note: kernel rules not read \(iptables-save failed: iptables-save: command not found\)/);
});

t.test('snapshot missing, broken, or from a dead daemon: CRITICAL', async (t) => {
  const missing = await setup(t, undefined);
  t.equal(await runHealth({ configPath: missing.configPath }, missing.deps), 2);
  t.match(missing.output(), /^CRITICAL - cachenat is not running .*no status file at/);

  const broken = await setup(t, '{"version":1');
  t.equal(await runHealth({ configPath: broken.configPath }, broken.deps), 2);
  t.match(broken.output(), /is not valid JSON/);

  const alien = await setup(t, '{"version":2}');
  t.equal(await runHealth({ configPath: alien.configPath }, alien.deps), 2);
  t.match(alien.output(), /is not a cachenat status snapshot/);

  const dead = await setup(t, snapshot({ pid: 1 }));
  t.equal(await runHealth({ configPath: dead.configPath }, { ...dead.deps, isAlive: () => false }), 2);
  t.match(dead.output(), /pid 1 from .* is gone/);
});

t.test('ip_forward 0 is CRITICAL', async (t) => {
  const { configPath, deps, files, output } = await setup(t, snapshot());
  files['/proc/sys/net/ipv4/ip_forward'] = '0\n';
  t.equal(await runHealth({ configPath }, deps), 2);
  t.match(output(), /ip_forward is 0/);
});

t.test('an unreadable config falls back to the default status file', async (t) => {
  const { deps, output } = await setup(t, snapshot());
  const code = await runHealth({ configPath: '/nonexistent/config.yaml' }, { ...deps, readText: async (p) => Promise.reject(Object.assign(new Error(p), { code: 'ENOENT' })) });
  t.equal(code, 2);
  t.match(output(), /no status file at \/run\/cachenat\/status\.json/);
  t.match(output(), /note: config \/nonexistent\/config\.yaml not usable/);
});

t.test('anything unexpected is UNKNOWN, never OK', async (t) => {
  const { configPath, deps, output } = await setup(t, snapshot());
  t.equal(await runHealth({ configPath }, { ...deps, now: () => { throw new Error('clock broke'); } }), 3);
  t.equal(output(), 'UNKNOWN - clock broke\n');
});

t.test('tcpProbe on loopback', async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  t.match(await tcpProbe('127.0.0.1', port, 1000), { ok: true });
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  t.match(await tcpProbe('127.0.0.1', closedPort, 1000), { ok: false, error: 'ECONNREFUSED' });
});
