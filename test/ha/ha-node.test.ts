// Two HA nodes sharing one dynalite table (the real SDK), each with its own
// hand-driven monotonic clock: who leads, who follows the map, how a dead
// leader is replaced, how a paused one is fenced off, a planned handover, the
// Elastic IP moves and their retries, and a DynamoDB outage.

import t from 'tap';
import { randomUUID } from 'node:crypto';
import { beatEveryMs, HaNode, type AddressMover, type HaStore, type Identity } from '../../src/ha/ha-node.js';
import { DynamoHaStore } from '../../src/ha/dynamo-store.js';
import { createLogger } from '../../src/log/logger.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { startDynalite } from '../support/dynalite.js';

const LEASE = 6000;
const EIP = 'eipalloc-0123456789abcdef0';
const dynamo = await startDynalite(t);
await new DynamoHaStore({ region: 'us-east-1', table: 'cachenat', group: 'g', timeoutMs: 2000, client: dynamo.client() }).ensureTable();

const portState = (...ports: number[]): PortState => ({
  version: 1,
  entries: ports.map((port, i) => ({ key: `node/c${i}/0001`, kind: 'node', engine: 'redis', cacheClusterId: `c${i}`, cacheNodeId: '0001', address: `c${i}.cache.example`, targetPort: 6379, listenPort: port })),
  released: [],
});

interface Rig {
  node: HaNode;
  clock: { now: number };
  logs: { msg: string; [k: string]: unknown }[];
  associations: { allocationId: string; networkInterfaceId: string; privateIp: string }[];
  /** Makes the next n associate calls fail. */
  failAssociations: { count: number };
  /** While true, every store call fails as if DynamoDB did not answer. */
  outage: { on: boolean };
}

type Settings = ConstructorParameters<typeof HaNode>[0];

function instance(group: string, n: number, moved: Rig['associations'][], settings: Partial<Settings> = { elasticIp: EIP }): Rig {
  const identity: Identity = { instanceId: `i-0${String(n).repeat(16)}`, networkInterfaceId: `eni-0${String(n).repeat(16)}`, privateIp: `10.0.${n}.10`, privateIps: [`10.0.${n}.10`, `10.0.${n}.21`, `10.0.${n}.22`] };
  const clock = { now: 1_000_000 * n };
  const logs: Rig['logs'] = [];
  const associations: Rig['associations'] = [];
  moved.push(associations);
  const failAssociations = { count: 0 };
  const outage = { on: false };
  const real = new DynamoHaStore({ region: 'us-east-1', table: 'cachenat', group, timeoutMs: 2000, client: dynamo.client() });
  // The outage switch sits in front of the real store: every call answers "unavailable" while it is on.
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'close') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => (outage.on ? Promise.resolve({ kind: 'unavailable', error: 'connect ETIMEDOUT' }) : (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  }) as unknown as HaStore;
  const addresses: AddressMover = {
    async associate(request) {
      if (failAssociations.count > 0) {
        failAssociations.count--;
        throw new Error(`AssociateAddress ${request.allocationId}: RequestLimitExceeded`);
      }
      for (const list of moved) for (let i = list.length - 1; i >= 0; i--) if (list[i]!.allocationId === request.allocationId) list.splice(i, 1);
      associations.push(request);
    },
    async describe() {
      return [];
    },
    close() {},
  };
  const node = new HaNode(
    { group, leaseMs: LEASE, ...settings },
    {
      store,
      addresses,
      identity: async () => identity,
      monotonic: () => clock.now,
      wallClock: () => Date.parse('2026-11-30T00:00:00Z') + clock.now,
      token: () => randomUUID(),
      logger: createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } }),
    },
  );
  return { node, clock, logs, associations, failAssociations, outage };
}

/** Lets the background association finish. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

async function advance(rigs: Rig[], ms: number, alive = rigs): Promise<void> {
  const step = beatEveryMs(LEASE);
  for (let done = 0; done < ms; done += step) {
    for (const r of rigs) r.clock.now += step;
    for (const r of alive) await r.node.beat();
  }
  await settle();
}

t.test('one leader on an empty table; it holds the Elastic IP, writes the map; the standby follows the map as written', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('first', 1, moved);
  const b = instance('first', 2, moved);
  await a.node.beat();
  await b.node.beat();
  await settle();
  t.equal(a.node.role, 'leader');
  t.equal(b.node.role, 'standby');
  t.same(a.associations, [{ allocationId: EIP, networkInterfaceId: 'eni-01111111111111111', privateIp: '10.0.1.10' }], 'the leader moved the Elastic IP to its primary private IP');
  t.same(b.associations, []);

  const lead = await a.node.mapForPass(portState(6379));
  t.equal(lead.mode, 'lead', 'the leader plans as the writer');
  t.equal(lead.mode === 'lead' ? lead.base : 'x', null, 'no map yet: it starts from its own');
  t.equal(await a.node.commit(null, portState(6379, 6380)), 'written');
  const follow = await b.node.mapForPass(portState());
  t.same(follow, { mode: 'follow', state: portState(6379, 6380) }, 'the standby installs the leader\'s map');
  const again = await a.node.mapForPass(portState());
  t.equal(again.mode === 'lead' && (await a.node.commit(again.base, again.state)), 'unchanged', 'an unchanged map is not written again');

  await advance([a, b], LEASE);
  t.equal(a.node.status().peers[0]?.instanceId, b.node.instanceId, 'the leader sees the standby\'s heartbeat');
  t.equal(b.node.status().lease?.holder, a.node.instanceId);
  t.equal(a.node.status().elasticIps[0]?.state, 'held');
});

t.test('a leader that stops renewing is replaced after one whole lease on the standby\'s clock; woken, its map write is refused and it steps down', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('failover', 1, moved);
  const b = instance('failover', 2, moved);
  await a.node.beat();
  await b.node.beat();
  const lead = await a.node.mapForPass(portState(6379));
  t.equal(lead.mode === 'lead' && (await a.node.commit(lead.base, lead.state)), 'written');
  // a stalls with a pass in hand: it read the map as leader and has not written yet. Its
  // clock stands still too (a suspended VM), so nothing on a itself says the hold lapsed.
  const stalled = await a.node.mapForPass(portState());
  t.equal(stalled.mode, 'lead');

  await advance([b], LEASE - 1000);
  t.equal(b.node.role, 'standby', 'not before a whole lease');
  await advance([b], 1500);
  t.equal(b.node.role, 'leader', 'after a whole lease the standby takes over');
  t.match(b.logs.find((l) => l.msg.startsWith('ha: became leader')), { reason: 'expired', previousHolder: a.node.instanceId });
  t.same(b.associations.map((x) => x.networkInterfaceId), ['eni-02222222222222222'], 'the new leader took the Elastic IP');
  t.same(a.associations, [], 'away from the old one');
  const claim = await b.node.mapForPass(portState());
  t.same(claim.mode === 'lead' && claim.state, portState(6379), 'the new leader starts from the shared map: every port kept');
  t.equal(claim.mode === 'lead' && (await b.node.commit(claim.base, claim.state)), 'written', 'its first write claims the map for its term, unchanged as it is');

  // a wakes and tries its late write: its own clock still calls the hold confirmed, DynamoDB's condition does not.
  t.equal(a.node.mayWriteMap, true, 'the woken leader believes it still holds the lease');
  t.equal(stalled.mode === 'lead' && (await a.node.commit(stalled.base, portState(6379, 6380))), 'refused', 'its late write is refused by the term fence');
  t.equal(a.node.role, 'standby', 'and it steps down');
  t.ok(a.logs.some((l) => /stepping down to standby: a later term/.test(l.msg)), 'saying why');
  const follow = await b.node.mapForPass(portState());
  t.same(follow.mode === 'lead' && follow.state, portState(6379), 'the map holds no trace of the late write');
  await a.node.beat();
  t.equal(a.node.role, 'standby', 'its next beat finds the other holder and stays standby');
});

t.test('a paused leader whose own clock ran on refuses to write by itself, and steps down at its next beat', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('paused', 1, moved);
  const b = instance('paused', 2, moved);
  await a.node.beat();
  await b.node.beat();
  const stalled = await a.node.mapForPass(portState(6379));
  await advance([a, b], 2 * LEASE, [b]);
  t.equal(b.node.role, 'leader');
  t.equal(a.node.mayWriteMap, false, 'a hold older than 90% of a lease is not confirmed');
  t.equal(stalled.mode === 'lead' && (await a.node.commit(stalled.base, portState(6379))), 'refused', 'no write is even sent');
  await a.node.beat();
  t.equal(a.node.role, 'standby');
  t.ok(a.logs.some((l) => /lost the lease/.test(l.msg)), 'the step-down is logged');
});

t.test('planned handover: the released lease is taken at the standby\'s next beat, and the releaser does not take it back', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('handover', 1, moved);
  const b = instance('handover', 2, moved);
  await a.node.beat();
  await b.node.beat();
  await settle();
  t.equal(await a.node.release('test'), true);
  t.equal(a.node.role, 'standby');
  await a.node.beat();
  t.equal(a.node.role, 'standby', 'the releaser leaves the free lease to its peer');
  await advance([a, b], beatEveryMs(LEASE));
  t.equal(b.node.role, 'leader', 'the standby took it within one beat');
  t.match(b.logs.find((l) => l.msg.startsWith('ha: became leader')), { reason: 'free' });
  t.same(b.associations.length, 1);
  t.equal(await b.node.release('again'), true);
  t.equal(await b.node.release('twice'), false, 'nothing left to release');
});

t.test('Elastic IP errors are retried with backoff until the association holds', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('eip-retry', 1, moved);
  a.failAssociations.count = 3;
  await a.node.beat();
  await settle();
  t.equal(a.node.status().elasticIps[0]?.state, 'failed');
  t.match(a.node.status().elasticIps[0]?.error, /RequestLimitExceeded/);
  await advance([a], 5000);
  t.equal(a.node.status().elasticIps[0]?.state, 'held', 'held after the retries');
  t.equal(a.logs.filter((l) => l.msg.startsWith('ha: cannot move Elastic IP')).length, 3, 'each failure logged');
});

t.test('DynamoDB outage: the leader keeps its role and the Elastic IP but stops allocating; the standby never takes over because of it', async (t) => {
  const moved: Rig['associations'][] = [];
  const a = instance('outage', 1, moved);
  const b = instance('outage', 2, moved);
  await a.node.beat();
  await b.node.beat();
  const lead = await a.node.mapForPass(portState(6379));
  t.equal(lead.mode === 'lead' && (await a.node.commit(lead.base, lead.state)), 'written');
  await b.node.mapForPass(portState());
  a.outage.on = true;
  b.outage.on = true;
  await advance([a, b], 3 * LEASE);
  t.equal(a.node.role, 'leader', 'the leader stays leader');
  t.equal(a.node.mayWriteMap, false, 'but may not allocate');
  t.equal(b.node.role, 'standby', 'the standby does not take over during the outage');
  t.same(await a.node.mapForPass(portState()), { mode: 'follow', state: portState(6379) }, 'the leader follows its last map');
  t.same(await b.node.mapForPass(portState()), { mode: 'follow', state: portState(6379) }, 'and so does the standby');
  t.match(a.node.status().storeError, { error: /ETIMEDOUT/ });
  t.equal(moved.flat().length, 1, 'the Elastic IP did not move');
  a.outage.on = false;
  b.outage.on = false;
  await advance([a, b], LEASE);
  t.equal(a.node.role, 'leader', 'back to normal: the same leader');
  t.equal(a.node.mayWriteMap, true);
  t.equal(b.node.role, 'standby');
  t.equal(a.node.status().storeError, undefined);
});

t.test('address mode: each Elastic IP goes to this instance\'s own private address; the shared map names Elastic IPs', async (t) => {
  const moved: Rig['associations'][] = [];
  const pairs = (n: number) => [
    { address: `10.0.${n}.21`, public: '203.0.113.21', allocationId: 'eipalloc-0000000000000aa21' },
    { address: `10.0.${n}.22`, public: '203.0.113.22', allocationId: 'eipalloc-0000000000000aa22' },
    { address: `10.0.${n}.99`, public: '203.0.113.99', allocationId: 'eipalloc-0000000000000aa99' },
  ];
  const a = instance('address-mode', 1, moved, { listenAddresses: pairs(1) });
  const b = instance('address-mode', 2, moved, { listenAddresses: pairs(2) });
  await a.node.beat();
  await b.node.beat();
  await settle();
  t.same(a.associations.map((x) => [x.allocationId, x.privateIp]), [['eipalloc-0000000000000aa21', '10.0.1.21'], ['eipalloc-0000000000000aa22', '10.0.1.22']]);
  const missing = a.node.status().elasticIps.find((e) => e.allocationId === 'eipalloc-0000000000000aa99');
  t.equal(missing?.state, 'failed');
  t.match(missing?.error, /10\.0\.1\.99 is not a private address of this instance's interface eni-01111111111111111/);

  const own: PortState = { version: 1, entries: [{ ...portState(6379).entries[0]!, listenAddress: '10.0.1.21' }], released: [] };
  const lead = await a.node.mapForPass(own);
  t.equal(lead.mode === 'lead' && (await a.node.commit(lead.base, own)), 'written');
  const follow = await b.node.mapForPass(portState());
  t.same(follow.state.entries.map((e) => e.listenAddress), ['10.0.2.21'], 'the standby installs the same Elastic IP\'s target on its own private address');
});
