import t from 'tap';
import { planForwards, type ForwardPolicy } from '../../../src/core/planner/plan-forwards.js';
import { plaintextExposures, publicSources } from '../../../src/core/planner/plaintext-guard.js';
import { planPass } from '../../../src/core/planner/plan.js';
import { configSchema } from '../../../src/core/config/schema.js';
import type { DiscoveredTarget, Resolution, Topology } from '../../../src/core/model.js';
import { emptyPortState } from '../../../src/core/ports/port-state.js';

const MIN = 60_000;
const policy: ForwardPolicy = { ranges: { redis: 6379, memcached: 11211 }, removalGraceMs: 10 * MIN, reuseAfterMs: 24 * 60 * MIN, staleAddressMs: 10 * MIN };
const serverless = (name: string, kind: 'serverless' | 'serverless-reader'): DiscoveredTarget => ({
  key: `${kind}/${name}`, kind, engine: 'valkey', serverlessCacheName: name, tls: true, address: `${name}.serverless.example`, targetPort: kind === 'serverless' ? 6379 : 6380,
});
const node = (cluster: string, tls?: boolean): DiscoveredTarget => ({
  key: `node/${cluster}/0001`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: '0001', ...(tls === undefined ? {} : { tls }), address: `${cluster}.cache.example`, targetPort: 6379,
});
const ok = (ip: string): Resolution => ({ ok: true, ip });
const dnsFor = (targets: DiscoveredTarget[], ip = '10.0.1.1') => new Map(targets.map((x) => [x.address, ok(ip)]));

t.test('Serverless targets get sticky ports from the engine range, primary before reader', async (t) => {
  const targets = [serverless('s1', 'serverless-reader'), serverless('s1', 'serverless'), node('c1')];
  const r = planForwards(emptyPortState(), { topology: { targets, skipped: [] }, resolutions: dnsFor(targets) }, policy, 0);
  t.same(r.forwards.map((f) => [f.key, f.listenPort, f.tls]), [
    ['node/c1/0001', 6379, undefined],
    ['serverless/s1', 6380, true],
    ['serverless-reader/s1', 6381, true],
  ]);
});

t.test('a held source keeps its targets exactly as they were while the other source changes', async (t) => {
  const s = [serverless('s1', 'serverless'), serverless('s1', 'serverless-reader')];
  const c1 = node('c1'), c2 = node('c2');
  const first = planForwards(emptyPortState(), { topology: { targets: [...s, c1], skipped: [] }, resolutions: dnsFor([...s, c1]) }, policy, 0);
  // DescribeServerlessCaches fails: its targets are absent from the answer but held; c1 left, c2 arrived.
  const held: Topology = { targets: [c2], skipped: [], held: ['serverless'] };
  const second = planForwards(first.state, { topology: held, resolutions: dnsFor([...s, c2]) }, policy, MIN);
  t.same(second.forwards.map((f) => [f.key, f.state]), [
    ['node/c1/0001', 'draining'],
    ['serverless/s1', 'active'],
    ['serverless-reader/s1', 'active'],
    ['node/c2/0001', 'active'],
  ]);
  t.same(second.state.entries.filter((e) => e.serverlessCacheName), first.state.entries.filter((e) => e.serverlessCacheName), 'held entries unchanged');
  t.notOk(second.events.some((e) => e.key.startsWith('serverless')), 'no event for a held target');
  // Without the hold the same answer starts their removal grace.
  const unheld = planForwards(first.state, { topology: { targets: [c2], skipped: [] }, resolutions: dnsFor([...s, c2]) }, policy, MIN);
  t.equal(unheld.forwards.find((f) => f.key === 'serverless/s1')?.state, 'draining');
});

t.test('public sources: anything not wholly inside RFC 1918 or 100.64/10', async (t) => {
  t.same(publicSources(['10.1.0.0/16', '172.16.0.0/12', '192.168.5.5/32', '100.64.0.0/10']), []);
  t.same(publicSources(['0.0.0.0/0', '198.51.100.27/32', '172.0.0.0/8', '10.0.0.0/7', '100.128.0.0/16']), ['0.0.0.0/0', '198.51.100.27/32', '172.0.0.0/8', '10.0.0.0/7', '100.128.0.0/16']);
});

t.test('the plaintext guard judges only caches known to be plaintext, and only with a public source', async (t) => {
  const targets = [node('plain', false), node('secure', true), node('unknown')];
  const { forwards } = planForwards(emptyPortState(), { topology: { targets, skipped: [] }, resolutions: dnsFor(targets) }, policy, 0);
  t.same(plaintextExposures(forwards, ['10.0.0.0/8'], 'warn'), [], 'private sources only: nothing to say');
  t.same(plaintextExposures(forwards, ['0.0.0.0/0'], 'allow'), [], 'allow says nothing');
  t.same(plaintextExposures(forwards, ['10.0.0.0/8', '198.51.100.27/32'], 'warn'), [
    { key: 'node/plain/0001', cache: 'plain', listenPort: 6379, action: 'warn', sources: ['198.51.100.27/32'] },
  ]);
});

const configWith = (plaintext: string) =>
  configSchema.parse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['0.0.0.0/0'], plaintext } });

t.test('forward.plaintext: warn forwards and reports; refuse keeps the port but installs no rule', async (t) => {
  const targets = [node('plain', false), node('secure', true)];
  const empty = { chains: new Map() };
  const input = { state: emptyPortState(), topology: { targets, skipped: [] }, resolutions: dnsFor(targets), installed: { nat: empty, filter: empty }, now: 0 };
  const warn = planPass({ ...input, config: configWith('warn') });
  t.same(warn.plaintext.map((e) => `${e.key} ${e.action}`), ['node/plain/0001 warn']);
  t.same(warn.forwards.map((f) => f.state), ['active', 'active']);
  t.match(warn.changes.restore, /node\/plain\/0001/);

  const refuse = planPass({ ...input, config: configWith('refuse') });
  t.same(refuse.forwards.map((f) => [f.key, f.listenPort, f.state]), [['node/plain/0001', 6379, 'refused'], ['node/secure/0001', 6380, 'active']]);
  t.notMatch(refuse.changes.restore, /-A CACHENAT-DNAT .*node\/plain\/0001/, 'no DNAT rule for the refused cache');
  t.match(refuse.changes.restore, /-A CACHENAT-MAP -m comment --comment "cachenat entry node\/plain\/0001 redis :6379 6379 plain /, "the kernel's copy of the map keeps its port");
  t.match(refuse.changes.restore, /node\/secure\/0001/);
  t.same(refuse.state.entries.map((e) => e.listenPort), [6379, 6380], 'its port stays reserved');

  const allow = planPass({ ...input, config: configWith('allow') });
  t.same(allow.plaintext, []);
  t.equal(configSchema.parse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['0.0.0.0/0'] } }).forward.plaintext, 'warn', 'default is warn');
  t.notOk(configSchema.safeParse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['0.0.0.0/0'], plaintext: 'maybe' } }).success);
});
