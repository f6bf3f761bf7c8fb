// A standby installs exactly the leader's map: planFollower never allocates.

import t from 'tap';
import { planFollower, planForwards, type ForwardPolicy } from '../../../src/core/planner/plan-forwards.js';
import type { PortState } from '../../../src/core/ports/port-state.js';

const policy: ForwardPolicy = { ranges: { redis: 6379, memcached: 11211 }, removalGraceMs: 60_000, reuseAfterMs: 86_400_000, staleAddressMs: 60_000 };
const node = (cluster: string, listenPort: number, extra: object = {}) => ({
  key: `node/${cluster}/0001`, kind: 'node' as const, engine: 'redis' as const, cacheClusterId: cluster, cacheNodeId: '0001', address: `${cluster}.cache.example`, targetPort: 6379, listenPort, ...extra,
});
const leaderMap: PortState = {
  version: 1,
  entries: [node('alpha', 6379, { ip: '10.0.1.5', resolvedAt: 1 }), node('bravo', 6381, { ip: '10.0.1.6', resolvedAt: 1, goneSince: 5 })],
  released: [{ port: 6380, key: 'node/carol/0001', releasedAt: 2 }],
};

t.test("the leader's listeners, exactly; this host's DNS applied", async (t) => {
  const plan = planFollower(leaderMap, new Map([['alpha.cache.example', { ok: true as const, ip: '10.0.1.9' }]]), policy, 1000);
  t.same(plan.forwards.map((f) => [f.key, f.listenPort, f.targetIp, f.state]), [
    ['node/alpha/0001', 6379, '10.0.1.9', 'active'],
    ['node/bravo/0001', 6381, '10.0.1.6', 'draining'],
  ]);
  t.match(plan.events, [{ type: 'ip-changed', key: 'node/alpha/0001', from: '10.0.1.5', to: '10.0.1.9' }]);
  t.same(plan.misfits, []);
  t.same(plan.state.released, leaderMap.released, 'the quarantine is kept as the leader wrote it');
  t.same(leaderMap.entries[0]!.ip, '10.0.1.5', "the leader's map is not modified");
});

t.test('a map that does not fit this instance: installed as it is, the misfits named; the planner would have moved them', async (t) => {
  const addressPolicy = { ...policy, listenAddresses: ['10.0.9.21', '10.0.9.22'] };
  const plan = planFollower(leaderMap, new Map(), addressPolicy, 1000);
  t.same(plan.forwards.map((f) => [f.key, f.listenAddress, f.listenPort]), [['node/alpha/0001', undefined, 6379], ['node/bravo/0001', undefined, 6381]]);
  t.same(plan.misfits, ['node/alpha/0001', 'node/bravo/0001']);
  const planner = planForwards(leaderMap, { resolutions: new Map() }, addressPolicy, 1000);
  t.ok(planner.events.some((e) => e.type === 'relocated'), 'planForwards, by contrast, relocates (an allocation)');
});

t.test('address mode: a fallback entry waits for the leader to upgrade it', async (t) => {
  const addressPolicy = { ...policy, listenAddresses: ['10.0.9.21', '10.0.9.22'] };
  const map: PortState = { version: 1, entries: [node('alpha', 6379, { listenAddress: '10.0.9.21' }), node('bravo', 6379, { listenAddress: '10.0.9.21', fallback: true, listenPort: 6380 })], released: [] };
  const plan = planFollower(map, new Map(), addressPolicy, 1000);
  t.same(plan.forwards.map((f) => [f.key, f.listenAddress, f.listenPort, f.fallback]), [['node/alpha/0001', '10.0.9.21', 6379, undefined], ['node/bravo/0001', '10.0.9.21', 6380, true]]);
  t.same(plan.misfits, []);
  const planner = planForwards(map, { resolutions: new Map() }, addressPolicy, 1000);
  t.ok(planner.state.entries.some((e) => e.listenAddress === '10.0.9.22'), 'the planner would take the free address');
});

t.test('planPass follow: the same rules the leader would install, no allocation for a new target, which waits and is named', async (t) => {
  const { planPass } = await import('../../../src/core/planner/plan.js');
  const { configSchema } = await import('../../../src/core/config/schema.js');
  const config = configSchema.parse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.27/32'] } });
  const empty = { chains: new Map() };
  const targets = [node('alpha', 0), node('delta', 0)].map(({ listenPort: _p, ...target }) => target);
  const input = { config, state: leaderMap, topology: { targets, skipped: [] }, resolutions: new Map(), installed: { nat: empty, filter: empty }, now: 1000 };
  const follower = planPass({ ...input, follow: true });
  t.same(follower.forwards.map((f) => [f.key, f.listenPort]), [['node/alpha/0001', 6379], ['node/bravo/0001', 6381]], 'only the map\'s listeners');
  t.same(follower.waiting, ['node/delta/0001'], 'the new target waits for the leader');
  t.same(follower.misfits, []);
  const leader = planPass(input);
  t.equal(leader.waiting, undefined, 'the leader has nothing waiting');
  t.ok(leader.forwards.some((f) => f.key === 'node/delta/0001'), 'the leader allocates it');
  const sameMap = planPass({ ...input, state: leader.state, follow: true });
  t.equal(sameMap.rulesDigest, leader.rulesDigest, 'following the leader\'s new map installs exactly the leader\'s rules');
});
