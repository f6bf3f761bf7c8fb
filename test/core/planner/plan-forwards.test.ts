import t from 'tap';
import { planForwards, type ForwardPolicy } from '../../../src/core/planner/plan-forwards.js';
import type { DiscoveredTarget, Resolution } from '../../../src/core/model.js';
import { emptyPortState, type PortState } from '../../../src/core/ports/port-state.js';
import { describeEvent } from '../../../src/core/daemon/events.js';

const MIN = 60_000;
const policy: ForwardPolicy = { ranges: { redis: 6379, memcached: 11211 }, removalGraceMs: 10 * MIN, reuseAfterMs: 24 * 60 * MIN, staleAddressMs: 10 * MIN };
const node = (cluster: string, nodeId: string, address = `${cluster}-${nodeId}.cache.example`): DiscoveredTarget => ({
  key: `node/${cluster}/${nodeId}`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: nodeId, address, targetPort: 6379,
});
const ok = (ip: string): Resolution => ({ ok: true, ip });
const topo = (...targets: DiscoveredTarget[]) => ({ targets, skipped: [] });
const dns = (entries: Record<string, Resolution>) => new Map(Object.entries(entries));

function pass(state: PortState, targets: DiscoveredTarget[] | undefined, resolutions: Record<string, Resolution>, now: number) {
  return planForwards(state, { ...(targets ? { topology: topo(...targets) } : {}), resolutions: dns(resolutions) }, policy, now);
}

t.test('first sync: ports assigned, resolved forwards active', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002');
  const r = pass(emptyPortState(), [a, b], { [a.address]: ok('10.0.1.1'), [b.address]: ok('10.0.1.2') }, 0);
  t.same(r.forwards.map((f) => [f.key, f.listenPort, f.targetIp, f.state]), [
    ['node/c1/0001', 6379, '10.0.1.1', 'active'],
    ['node/c1/0002', 6380, '10.0.1.2', 'active'],
  ]);
  t.same(r.events.map((e) => e.type), ['added', 'added']);
});

t.test('a target with no DNS answer yet has a port but no rule', async (t) => {
  const a = node('c1', '0001');
  const r = pass(emptyPortState(), [a], {}, 0);
  t.equal(r.forwards[0]?.state, 'unresolved');
  t.equal(r.forwards[0]?.listenPort, 6379);
});

t.test('sticky: an IP change keeps the port and reports the move', async (t) => {
  const a = node('c1', '0001');
  const first = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0);
  const second = pass(first.state, [a], { [a.address]: ok('10.0.1.9') }, 1000);
  t.equal(second.forwards[0]?.listenPort, 6379);
  t.equal(second.forwards[0]?.targetIp, '10.0.1.9');
  t.same(second.events, [{ type: 'ip-changed', key: 'node/c1/0001', listenPort: 6379, from: '10.0.1.1', to: '10.0.1.9' }]);
});

t.test('removal: draining through the grace period, then removed and quarantined', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002');
  const s0 = pass(emptyPortState(), [a, b], { [a.address]: ok('10.0.1.1'), [b.address]: ok('10.0.1.2') }, 0).state;
  const s1 = pass(s0, [a], {}, MIN);
  t.equal(s1.forwards.find((f) => f.key === b.key)?.state, 'draining');
  t.equal(s1.forwards.find((f) => f.key === b.key)?.targetIp, '10.0.1.2', 'a draining forward keeps its rule');
  const s2 = pass(s1.state, [a], {}, MIN + 10 * MIN - 1);
  t.equal(s2.forwards.length, 2, 'still there just before grace ends');
  const s3 = pass(s2.state, [a], {}, MIN + 10 * MIN);
  t.same(s3.forwards.map((f) => f.key), ['node/c1/0001']);
  t.same(s3.state.released, [{ port: 6380, key: 'node/c1/0002', releasedAt: 11 * MIN }]);
  const c = node('c2', '0001');
  const s4 = pass(s3.state, [a, c], { [c.address]: ok('10.0.2.1') }, 12 * MIN);
  t.equal(s4.forwards.find((f) => f.key === c.key)?.listenPort, 6381, 'a freed port is not handed to another target');
});

t.test('a target back within grace keeps its port and leaves draining', async (t) => {
  const a = node('c1', '0001');
  const s0 = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0).state;
  const s1 = pass(s0, [], {}, MIN);
  const s2 = pass(s1.state, [a], {}, 2 * MIN);
  t.equal(s2.forwards[0]?.state, 'active');
  t.equal(s2.forwards[0]?.listenPort, 6379);
  t.same(s2.events.map((e) => e.type), ['returned']);
});

t.test('fail-static: no topology this pass removes nothing and adds nothing', async (t) => {
  const a = node('c1', '0001');
  const s0 = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0).state;
  const r = pass(s0, undefined, {}, 100 * MIN);
  t.same(r.forwards.map((f) => [f.key, f.state]), [['node/c1/0001', 'active']]);
  t.same(r.events, []);
});

t.test('an empty but valid answer only starts the grace period', async (t) => {
  const a = node('c1', '0001');
  const s0 = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0).state;
  const r = pass(s0, [], {}, MIN);
  t.equal(r.forwards[0]?.state, 'draining');
});

t.test('DNS failure keeps the last address for the stale bound, then unresolved', async (t) => {
  const a = node('c1', '0001');
  const fail: Resolution = { ok: false, error: 'ENOTFOUND' };
  const s0 = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0).state;
  const s1 = pass(s0, [a], { [a.address]: fail }, MIN);
  t.equal(s1.forwards[0]?.state, 'active');
  t.equal(s1.events[0]?.type, 'resolve-failed');
  const s2 = pass(s1.state, [a], { [a.address]: fail }, 2 * MIN);
  t.same(s2.events, [], 'the failure is reported once, not every pass');
  const s3 = pass(s2.state, [a], { [a.address]: fail }, 11 * MIN);
  t.equal(s3.forwards[0]?.state, 'unresolved');
  t.equal(s3.forwards[0]?.listenPort, 6379, 'the port is kept');
  const s4 = pass(s3.state, [a], { [a.address]: ok('10.0.1.1') }, 12 * MIN);
  t.equal(s4.forwards[0]?.state, 'active');
});

t.test('an endpoint renamed by the API keeps forwarding to the old IP until the new name resolves', async (t) => {
  const a = node('c1', '0001', 'old.example');
  const s0 = pass(emptyPortState(), [a], { 'old.example': ok('10.0.1.1') }, 0).state;
  const renamed = node('c1', '0001', 'new.example');
  const s1 = pass(s0, [renamed], {}, MIN);
  t.equal(s1.forwards[0]?.targetIp, '10.0.1.1');
  t.equal(s1.forwards[0]?.address, 'new.example');
});

t.test('the same inputs twice change nothing the second time', async (t) => {
  const a = node('c1', '0001'), b = node('c2', '0001');
  const res = { [a.address]: ok('10.0.1.1'), [b.address]: ok('10.0.1.2') };
  const s0 = pass(emptyPortState(), [a, b], res, 0);
  const s1 = pass(s0.state, [a, b], res, 0);
  t.same(s1.state, s0.state);
  t.same(s1.events, []);
});

t.test('an IPv6-only name: said so (not "check the VPC resolver"), not served, its port kept', async (t) => {
  const a = node('v6', '0001');
  const sixOnly: Resolution = { ok: false, error: `${a.address} has only IPv6 addresses (2600:1f18::5); cachenat forwards IPv4 only`, ipv6Only: true };
  const r = pass(emptyPortState(), [a], { [a.address]: sixOnly }, 0);
  t.match(r.forwards, [{ key: a.key, listenPort: 6379, state: 'unresolved', ipv6Only: true }]);
  const failed = r.events.find((e) => e.type === 'resolve-failed');
  t.match(failed, { ipv6Only: true });
  const { message } = describeEvent(failed!);
  t.match(message, /has only IPv6 addresses \(AAAA, no A record\): cachenat forwards IPv4 only, so this cache is not served/);
  t.notMatch(message, /VPC resolver/);
  const back = pass(r.state, [a], { [a.address]: ok('10.0.1.1') }, 1000);
  t.match(back.forwards, [{ listenPort: 6379, state: 'active' }]);
  t.equal(back.forwards[0]?.ipv6Only, undefined, 'an IPv4 address again: served');
});

t.test('unresolved keeps the addresses its open flows go to; back on another address it is a move', async (t) => {
  const a = node('c1', '0001');
  const first = pass(emptyPortState(), [a], { [a.address]: ok('10.0.1.1') }, 0);
  const failing = pass(first.state, [a], { [a.address]: { ok: false, error: 'ENOTFOUND' } }, 1000);
  const gone = pass(failing.state, [a], { [a.address]: { ok: false, error: 'ENOTFOUND' } }, 1000 + 10 * MIN);
  t.match(gone.forwards, [{ state: 'unresolved', lastIps: ['10.0.1.1'] }]);
  t.equal(gone.state.entries[0]?.ip, undefined);
  const sameAgain = pass(gone.state, [a], { [a.address]: ok('10.0.1.1') }, 2000 + 10 * MIN);
  t.same(sameAgain.events.filter((e) => e.type === 'ip-changed'), [], 'back on the same address: nothing moved');
  const elsewhere = pass(gone.state, [a], { [a.address]: ok('10.0.1.2') }, 2000 + 10 * MIN);
  t.match(elsewhere.events.filter((e) => e.type === 'ip-changed'), [{ from: '10.0.1.1', to: '10.0.1.2' }], 'back elsewhere: the old flows must go');
  t.equal(elsewhere.state.entries[0]?.lastIps, undefined);
});

t.test('a name with more than 64 addresses keeps the lowest 64', async (t) => {
  const a = node('c1', '0001');
  const ips = Array.from({ length: 70 }, (_, i) => `10.0.${i >> 6}.${(i % 64) + 1}`);
  const r = pass(emptyPortState(), [a], { [a.address]: { ok: true, ip: ips[0]!, ips } }, 0);
  t.same(r.state.entries[0]?.ips, ips.slice(0, 64));
});
