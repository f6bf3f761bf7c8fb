// Two real HA nodes (src/ha/) in the simulated world (test/ha/sim/): one
// virtual clock, a DynamoDB model with its condition semantics and a
// truthful EC2 model that records every association and where each address
// is. Each case scripts one situation and checks exactly what happened; the
// world's invariants (test/ha/simulation.test.ts) are checked after every
// event of every case as well.

import t from 'tap';
import { haCheck } from '../../src/core/health/evaluate.js';
import { STATE_NAMES } from '../../src/core/health/evaluate.js';
import { retryDelay } from '../../src/core/daemon/backoff.js';
import { initialMetrics, metricFamilies } from '../../src/core/metrics/daemon-metrics.js';
import { ASSOCIATE_RETRY, firstVerifyMs, watchEveryMs } from '../../src/core/ha/timing.js';
import type { CallFaults, Scenario } from './sim/scenario.js';
import { ALLOCATION_ID, World, type Host } from './sim/world.js';

const LEASE = 4000;
const quiet = (): Record<'dynamodb' | 'ec2', CallFaults> => ({ dynamodb: { slow: 0, appliedLost: 0, lost: 0 }, ec2: { slow: 0, appliedLost: 0, lost: 0 } });
type HostSettings = Scenario['hosts'][number];
const host = (over: Partial<HostSettings> = {}): HostSettings => ({ rate: 1, wallSkew: 0, startAt: 0, calls: quiet(), ...over });

/** A pair: host 0 starts first (it leads), host 1 half a second later. No churn, no random faults. */
function pair(over: Partial<Scenario> = {}): World {
  const world = new World({ seed: 7, leaseMs: LEASE, healAt: Number.MAX_SAFE_INTEGER, durationMs: Number.MAX_SAFE_INTEGER, hosts: [host(), host({ startAt: 500 })], partitions: [], freezes: [], handovers: [], targets: 3, ...over });
  world.start({ churn: false });
  return world;
}

/** Every association the EC2 model applied, and every move (a change of place). */
function watchEc2(world: World): { to: string; moved: boolean; at: number }[] {
  const seen: { to: string; moved: boolean; at: number }[] = [];
  const before = world.ec2.onAssociate;
  world.ec2.onAssociate = (a) => {
    seen.push({ to: a.to.instanceId, moved: a.moved, at: world.sched.now });
    before(a);
  };
  return seen;
}

const health = (h: Host) => haCheck(h.wall(), h.node!.status());
const [A, B] = ['i-01111111111111111', 'i-02222222222222222'];

t.test('one leader; the Elastic IP associated once, on it; the standby installs the map as the leader wrote it', async (t) => {
  const world = pair();
  const moves = watchEc2(world);
  await world.runUntil(6000);
  const [a, b] = world.hosts as [Host, Host];
  t.same([a.node!.role(), b.node!.role()], ['leader', 'standby']);
  t.same(moves, [{ to: A, moved: true, at: moves[0]?.at }], 'exactly one association, to the leader');
  t.equal(world.ec2.locations.get(ALLOCATION_ID)?.instanceId, A);
  t.equal(world.lease()?.holder, A);
  t.equal(world.map?.term, 1, 'the map written in term 1');
  t.equal(world.map?.state.entries.length, 3);
  t.same(a.node!.status().elasticIps.map((e) => e.state), ['held']);
  t.same(b.node!.status().elasticIps, [], 'the standby keeps no Elastic IP');
  t.same(b.node!.status().map?.entries, 3, 'the standby read the whole map');
  t.equal(STATE_NAMES[health(a).state], 'OK', health(a).message);
  t.equal(STATE_NAMES[health(b).state], 'OK', health(b).message);
  await world.runUntil(60_000);
  t.equal(moves.length, 1, 'a minute later: still one association (the checks found it in place)');
  t.ok(world.ec2.describes >= 2, `the leader checked where it points (${world.ec2.describes} DescribeAddresses)`);
});

t.test('the leader loses DynamoDB while EC2 answers: the address moves exactly once; the cut-off one asserts nothing and says so; healed, it rejoins as standby and the address stays', async (t) => {
  const world = pair({ partitions: [{ host: 0, service: 'dynamodb', direction: 'both', from: 5000, to: 45_000 }] });
  const moves = watchEc2(world);
  await world.runUntil(5000);
  const [a, b] = world.hosts as [Host, Host];
  t.equal(a.node!.role(), 'leader');
  // Its last accepted renewal, in virtual time.
  const confirmed = Date.parse(a.node!.status().hold!.confirmedAt) - (a.wall() - world.sched.now);
  await world.runUntil(confirmed + LEASE * 0.9 - 10);
  t.equal(a.node!.role(), 'leader', 'confirmed for 90% of a lease from its last renewal');
  await world.runUntil(confirmed + LEASE * 0.9 + 10);
  t.equal(a.node!.role(), 'leader-unconfirmed', 'then it no longer calls itself leader');
  t.equal(STATE_NAMES[health(a).state], 'WARNING', health(a).message);
  await world.runUntil(confirmed + LEASE + 10);
  t.equal(STATE_NAMES[health(a).state], 'CRITICAL', 'CRITICAL after a whole lease without confirmation');
  await world.runUntil(5000 + 2 * LEASE);
  t.equal(b.node!.role(), 'leader', 'the standby took over');
  t.same(moves.filter((m) => m.moved).map((m) => m.to), [A, B], 'the address moved once more: to the new leader');
  const cutOff = health(a);
  t.equal(STATE_NAMES[cutOff.state], 'CRITICAL');
  t.match(cutOff.message, /cannot reach DynamoDB .*the standby may have taken over/);
  t.notMatch(cutOff.message, /start cachenat on the second instance/, 'no advice to start what already leads');
  t.match(a.node!.status(), { role: 'leader-unconfirmed', mayAllocate: false });
  await world.runUntil(44_000);
  t.same(moves.filter((m) => m.moved).map((m) => m.to), [A, B], '40 s into the partition: still one move since it began');
  t.equal(moves.filter((m) => m.to === A).length, 1, 'the cut-off one never sent another AssociateAddress');
  await world.runUntil(60_000);
  t.equal(a.node!.role(), 'standby', 'healed: it rejoins as standby (its renewal is refused)');
  t.equal(b.node!.role(), 'leader');
  t.same(moves.filter((m) => m.moved).map((m) => m.to), [A, B], 'and the address did not move');
  t.equal(STATE_NAMES[health(a).state], 'OK', health(a).message);
});

t.test('the cut-off leader does not report the Elastic IP held once the standby took it (status, cachenat_ha_elastic_ip_held)', async (t) => {
  const world = pair({ partitions: [{ host: 0, service: 'dynamodb', direction: 'both', from: 5000, to: 45_000 }] });
  // This case checks what each one says itself (the world checks the same after every event).
  world.ignored.add('an Elastic IP reported held points at its reporter');
  const held = (h: Host): string[] => h.node!.status().elasticIps.filter((e) => e.state === 'held').map((e) => e.allocationId);
  const metric = (h: Host): number[] =>
    metricFamilies(initialMetrics(0), { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: h.wall(), ha: h.node!.status() })
      .find((f) => f.name === 'cachenat_ha_elastic_ip_held')!
      .samples.map((s) => ('value' in s ? s.value : Number.NaN));
  await world.runUntil(5000);
  const [a, b] = world.hosts as [Host, Host];
  t.same(held(a), [ALLOCATION_ID], 'before the cut: the leader holds it');
  await world.runUntil(5000 + 3 * LEASE);
  t.equal(world.ec2.locations.get(ALLOCATION_ID)?.instanceId, B, 'the standby took the address');
  t.equal(a.node!.role(), 'leader-unconfirmed');
  t.same(held(b), [ALLOCATION_ID], 'the new leader says it holds it');
  t.same(held(a), [], 'the cut-off one does not say it holds it too');
  t.notOk(metric(a).includes(1), `cachenat_ha_elastic_ip_held is not 1 on the cut-off one (${JSON.stringify(metric(a))})`);
  t.same(metric(b), [1]);
});

t.test('a leader paused past its lease: the standby takes over; woken, the old one neither associates nor writes the map', async (t) => {
  const world = pair({ freezes: [{ host: 0, from: 5000, ms: 3 * LEASE, suspend: false }] });
  const moves = watchEc2(world);
  await world.runUntil(5000 + 3 * LEASE - 1);
  const [a, b] = world.hosts as [Host, Host];
  t.equal(b.node!.role(), 'leader');
  t.equal(a.node!.role(), 'leader-unconfirmed', 'its own clock ran on: the paused one knows its hold lapsed the moment it wakes');
  const termBefore = world.map?.term;
  world.addTargets(1);
  await world.runUntil(5000 + 5 * LEASE);
  t.equal(a.node!.role(), 'standby');
  t.same(moves.map((m) => m.to), [A, B], 'one association each, none by the woken one');
  t.equal(world.map?.term, 2, `the map is the new leader's (was term ${termBefore})`);
  t.equal(world.map?.state.entries.length, 4, 'and the new target is in it');
});

t.test('a leader suspended past its lease (its monotonic clock stood still): its hold is not confirmed the moment it wakes', async (t) => {
  const world = pair({ freezes: [{ host: 0, from: 5000, ms: 3 * LEASE, suspend: true }] });
  const moves = watchEc2(world);
  await world.runUntil(5000 + 3 * LEASE + 1);
  const [a, b] = world.hosts as [Host, Host];
  t.equal(b.node!.role(), 'leader');
  t.equal(a.node!.role(), 'leader-unconfirmed', 'the wall clock ran 12 s further than the monotonic one: a suspend, not a confirmed hold');
  await world.runUntil(5000 + 5 * LEASE);
  t.equal(a.node!.role(), 'standby');
  t.same(moves.map((m) => m.to), [A, B]);
});

t.test('planned handover: the peer leads within a look; one move; the releaser stands by; a second release has nothing to give', async (t) => {
  const world = pair();
  const moves = watchEc2(world);
  await world.runUntil(6000);
  const [a, b] = world.hosts as [Host, Host];
  const released = a.node!.release('test');
  t.equal(a.node!.role(), 'leader', 'the release is a step of the lease loop, not a race with a renewal');
  await world.runUntil(6000 + watchEveryMs(LEASE) + 100);
  t.equal(await released, true);
  t.same([a.node!.role(), b.node!.role()], ['standby', 'leader']);
  t.equal(world.lease()?.holder, B);
  t.same(moves.map((m) => m.to), [A, B]);
  t.equal(await a.node!.release('again'), false, 'nothing left to release');
  await world.runUntil(6000 + 3 * LEASE);
  t.equal(a.node!.role(), 'standby', 'the releaser does not take it back while the peer holds it');
});

t.test('a handover whose release lands but whose answer is lost: the releaser asserts nothing and still leaves the lease to its peer', async (t) => {
  const world = pair({ partitions: [{ host: 0, service: 'dynamodb', direction: 'answers', from: 6000, to: 8000 }] });
  await world.runUntil(6000);
  const [a, b] = world.hosts as [Host, Host];
  const released = a.node!.release('test');
  await world.runUntil(9000);
  t.equal(await released, true);
  t.same([a.node!.role(), b.node!.role()], ['standby', 'leader']);
  t.ok(world.story.some((l) => l.host === 0 && /release of the lease \(test\) got no answer/.test(l.msg)), 'it says the outcome is unknown');
});

t.test('Elastic IP errors: retried with the daemon\'s backoff until the association holds; health CRITICAL meanwhile', async (t) => {
  const world = pair({ hosts: [host()], targets: 0 });
  world.ec2.failAssociations = 3;
  const sent: number[] = [];
  const associate = world.ec2.associate.bind(world.ec2);
  world.ec2.associate = (input) => {
    sent.push(world.sched.now);
    return associate(input);
  };
  await world.runUntil(300);
  const [a] = world.hosts as [Host];
  t.match(a.node!.status().elasticIps, [{ state: 'failed', error: /RequestLimitExceeded/ }]);
  t.equal(STATE_NAMES[health(a).state], 'CRITICAL');
  await world.runUntil(10_000);
  t.match(a.node!.status().elasticIps, [{ state: 'held' }]);
  t.equal(sent.length, 4);
  const gaps = sent.slice(1).map((at, i) => at - sent[i]!);
  gaps.forEach((gap, i) => {
    const base = retryDelay(i + 1, ASSOCIATE_RETRY.firstMs, ASSOCIATE_RETRY.capMs, 0.5);
    t.ok(gap >= base * 0.8 - 50 && gap <= base * 1.2 + 600, `retry ${i + 1} after ${Math.round(gap)} ms (backoff ${base} ms ±20%)`);
  });
  t.equal(world.story.filter((l) => l.msg.startsWith('ha: cannot move Elastic IP')).length, 3, 'each failure logged');
});

t.test('DynamoDB out for both: the leader stops asserting (unconfirmed), nobody takes over, the address stays; back: the same leader, confirmed again', async (t) => {
  const world = pair({
    partitions: [
      { host: 0, service: 'dynamodb', direction: 'both', from: 6000, to: 6000 + 3 * LEASE },
      { host: 1, service: 'dynamodb', direction: 'both', from: 6000, to: 6000 + 3 * LEASE },
    ],
  });
  const moves = watchEc2(world);
  await world.runUntil(6000 + 3 * LEASE - 10);
  const [a, b] = world.hosts as [Host, Host];
  t.same([a.node!.role(), b.node!.role()], ['leader-unconfirmed', 'standby']);
  t.match(b.node!.status().storeError, { error: /Request aborted/ });
  t.equal(STATE_NAMES[health(a).state], 'CRITICAL', 'the leader cannot know the standby did not take over');
  t.equal(STATE_NAMES[health(b).state], 'WARNING');
  t.equal(moves.length, 1, 'the address stayed where it was');
  world.addTargets(1);
  await world.runUntil(6000 + 5 * LEASE);
  t.same([a.node!.role(), b.node!.role()], ['leader', 'standby'], 'back: the same leader, its renewal accepted');
  t.equal(world.lease()?.term, 1, 'in the same term');
  t.equal(world.map?.state.entries.length, 4, 'and it allocates again');
  t.equal(moves.length, 1);
});

t.test('address mode: each Elastic IP to this instance\'s own private address; one it does not have is named', async (t) => {
  const pairs = (n: number) => [
    { address: `10.0.${n}.21`, public: '203.0.113.21', allocationId: 'eipalloc-0000000000000aa21' },
    { address: `10.0.${n}.22`, public: '203.0.113.22', allocationId: 'eipalloc-0000000000000aa22' },
    { address: `10.0.${n}.99`, public: '203.0.113.99', allocationId: 'eipalloc-0000000000000aa99' },
  ];
  const world = pair({ hosts: [host({ node: { listenAddresses: pairs(1), privateIps: ['10.0.1.21', '10.0.1.22'] } }), host({ startAt: 500, node: { listenAddresses: pairs(2), privateIps: ['10.0.2.21', '10.0.2.22'] } })], targets: 0 });
  await world.runUntil(3000);
  t.same(['eipalloc-0000000000000aa21', 'eipalloc-0000000000000aa22'].map((id) => world.ec2.locations.get(id)?.privateIp), ['10.0.1.21', '10.0.1.22']);
  const missing = world.hosts[0]!.node!.status().elasticIps.find((e) => e.allocationId === 'eipalloc-0000000000000aa99');
  t.equal(missing?.state, 'failed');
  t.match(missing?.error, /10\.0\.1\.99 is not a private address of this instance's interface eni-01111111111111111/);
});

t.test('configs that differ: only the instance the map was written under takes a free lease; both say which keys; a failing peer is still replaced', async (t) => {
  const world = pair({
    hosts: [host({ node: { fingerprint: { 'ports.reuseAfter': '0000000000000001', 'discovery.removalGrace': '0000000000000002' } } }), host({ startAt: 500, node: { fingerprint: { 'ports.reuseAfter': '0000000000000009', 'discovery.removalGrace': '0000000000000002' } } })],
    handovers: [8000],
    freezes: [{ host: 0, from: 20_000, ms: 3 * LEASE, suspend: false }],
  });
  await world.runUntil(7900);
  const [a, b] = world.hosts as [Host, Host];
  t.same([a.node!.role(), b.node!.role()], ['leader', 'standby']);
  t.match(b.node!.status().configDiffers, { peer: A, keys: ['ports.reuseAfter'] });
  t.match(health(b).message, /config differs from its running peer i-0111+'s in ports\.reuseAfter: until they agree a free lease goes only to the instance the shared map was written under/);
  t.equal(STATE_NAMES[health(a).state], 'WARNING', 'the leader says so too');
  await world.runUntil(8000 + LEASE / 2);
  t.equal(b.node!.role(), 'standby', 'a handed-over (free) lease is not taken by the instance whose config differs');
  await world.runUntil(8000 + 2 * LEASE);
  t.equal(a.node!.role(), 'leader', 'nobody took it: the releaser, whose config the map was written under, takes it back after its courtesy wait');
  await world.runUntil(20_000 + 2 * LEASE);
  t.equal(b.node!.role(), 'leader', 'a leader that stops renewing (paused) is replaced whatever its config');
});

t.test('configs that differ and a map written by neither (a handover before the first map write): one of them still leads', async (t) => {
  const world = pair({
    hosts: [host({ node: { fingerprint: { 'ports.reuseAfter': '0000000000000001' } } }), host({ startAt: 500, node: { fingerprint: { 'ports.reuseAfter': '0000000000000009' } } })],
    // Before the leader's second pass (its first ran before it held the lease): no map is written yet.
    handovers: [3000],
  });
  await world.runUntil(2900);
  const [a, b] = world.hosts as [Host, Host];
  t.same([a.node!.role(), b.node!.role()], ['leader', 'standby']);
  t.equal(world.map, undefined, 'no map written yet');
  t.match(b.node!.status().configDiffers, { peer: A }, 'each knows the other\'s config differs');
  await world.runUntil(3000 + 3 * LEASE);
  const leaders = world.hosts.filter((h) => h.node!.role() === 'leader').map((h) => h.identity.instanceId);
  t.equal(leaders.length, 1, `one leader three leases after the handover (${leaders.join(', ') || 'none'}; lease ${JSON.stringify(world.lease())})`);
  t.equal(world.map?.state.entries.length, 3, 'and it mapped the targets');
});

t.test('a new leader checks where its Elastic IP points about one lease after taking over', async (t) => {
  const world = pair({ freezes: [{ host: 0, from: 5000, ms: 4 * LEASE, suspend: false }] });
  const describes: number[] = [];
  const describe = world.ec2.describe.bind(world.ec2);
  world.ec2.describe = (input) => {
    describes.push(world.sched.now);
    return describe(input);
  };
  await world.runUntil(5000 + 3 * LEASE);
  const tookOver = world.story.find((l) => l.host === 1 && l.msg.startsWith('ha: became leader'))?.at;
  if (tookOver === undefined) return t.fail('no takeover');
  const first = describes.find((at) => at > tookOver);
  t.ok(first !== undefined && first - tookOver <= firstVerifyMs(LEASE) + 500, `the new leader (the old one is paused) checked ${first === undefined ? 'never' : `${Math.round(first - tookOver)} ms`} after taking over (within a lease and a look)`);
});
