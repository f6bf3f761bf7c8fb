// Address mode in the planner: each target its own listen address on its
// native port, sticky across passes, quarantined when freed, a port-mode
// fallback on the first address when the pool runs out, and clean switches
// between the two modes.

import t from 'tap';
import { planForwards, type ForwardEvent, type ForwardPolicy } from '../../../src/core/planner/plan-forwards.js';
import type { DiscoveredTarget, Forward, Resolution } from '../../../src/core/model.js';
import { emptyPortState, listenerClash, type PortState } from '../../../src/core/ports/port-state.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const POOL = ['10.0.1.21', '10.0.1.22', '10.0.1.23'];
const portMode: ForwardPolicy = { ranges: { redis: 6379, memcached: 11211 }, removalGraceMs: 10 * MIN, reuseAfterMs: DAY, staleAddressMs: 10 * MIN };
const addressMode = (pool: string[] = POOL): ForwardPolicy => ({ ...portMode, listenAddresses: pool });

const node = (cluster: string, nodeId: string, engine: DiscoveredTarget['engine'] = 'redis'): DiscoveredTarget => ({
  key: `node/${cluster}/${nodeId}`, kind: 'node', engine, cacheClusterId: cluster, cacheNodeId: nodeId,
  address: `${cluster}-${nodeId}.cache.example`, targetPort: engine === 'memcached' ? 11211 : 6379,
});
const serverless = (name: string): DiscoveredTarget[] => [
  { key: `serverless/${name}`, kind: 'serverless', engine: 'valkey', serverlessCacheName: name, tls: true, address: `${name}.serverless.cache.example`, targetPort: 6379 },
  { key: `serverless-reader/${name}`, kind: 'serverless-reader', engine: 'valkey', serverlessCacheName: name, tls: true, address: `${name}.serverless.cache.example`, targetPort: 6380 },
];
const resolveAll = (targets: DiscoveredTarget[], ip = (i: number) => `10.9.0.${i + 1}`): Map<string, Resolution> =>
  new Map(targets.map((target, i) => [target.address, { ok: true, ip: ip(i) }]));

function pass(state: PortState, targets: DiscoveredTarget[] | undefined, policy: ForwardPolicy, now: number, resolutions = resolveAll(targets ?? [])) {
  return planForwards(state, { ...(targets ? { topology: { targets, skipped: [] } } : {}), resolutions }, policy, now);
}
const listeners = (forwards: Forward[]) => Object.fromEntries(forwards.map((f) => [f.key, `${f.listenAddress ?? ''}:${f.listenPort}${f.fallback ? ' fallback' : ''}`]));
const types = (events: ForwardEvent[]) => events.map((e) => e.type);

t.test('each target gets its own address on its native port, in allocation order', async (t) => {
  const r = pass(emptyPortState(), [node('c1', '0002'), node('mc', '0001', 'memcached'), node('c1', '0001')], addressMode(), 0);
  t.same(listeners(r.forwards), { 'node/c1/0001': '10.0.1.21:6379', 'node/c1/0002': '10.0.1.22:6379', 'node/mc/0001': '10.0.1.23:11211' });
  t.same(types(r.events), ['added', 'added', 'added']);
  t.equal(listenerClash(r.forwards), undefined, 'no two targets share an (address, port)');
});

t.test("a Serverless cache's endpoint and reader endpoint share one address, on 6379 and 6380", async (t) => {
  const r = pass(emptyPortState(), [...serverless('sessions'), node('c1', '0001')], addressMode(), 0);
  t.same(listeners(r.forwards), { 'node/c1/0001': '10.0.1.21:6379', 'serverless/sessions': '10.0.1.22:6379', 'serverless-reader/sessions': '10.0.1.22:6380' });
});

t.test('sticky: an address stays with its target across passes, IP changes, other targets coming and going, and a reload of the map', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002'), c = node('c2', '0001');
  const first = pass(emptyPortState(), [a, b], addressMode(), 0);
  const moved = pass(first.state, [a, b], addressMode(), 1000, resolveAll([a, b], (i) => `10.9.1.${i + 7}`));
  t.same(types(moved.events), ['ip-changed', 'ip-changed']);
  const reloaded = JSON.parse(JSON.stringify(moved.state)) as PortState;
  const grown = pass(reloaded, [c, b, a], addressMode(), 2000);
  t.same(listeners(grown.forwards), { 'node/c1/0001': '10.0.1.21:6379', 'node/c1/0002': '10.0.1.22:6379', 'node/c2/0001': '10.0.1.23:6379' });
  const idle = pass(grown.state, [c, b, a], addressMode(), 3000);
  t.same(idle.state, grown.state, 'an idle pass changes nothing');
  t.same(idle.events, []);
});

t.test('a target that leaves keeps its address through the grace, then the address is quarantined for reuseAfter', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002'), late = node('c3', '0001');
  const pool = ['10.0.1.21', '10.0.1.22'];
  const start = pass(emptyPortState(), [a, b], addressMode(pool), 0);
  const draining = pass(start.state, [a], addressMode(pool), MIN);
  t.same(listeners(draining.forwards), { 'node/c1/0001': '10.0.1.21:6379', 'node/c1/0002': '10.0.1.22:6379' });
  t.equal(draining.forwards.find((f) => f.key === b.key)?.state, 'draining');
  const removed = pass(draining.state, [a], addressMode(pool), 12 * MIN);
  t.same(types(removed.events), ['removed']);
  t.same(removed.state.releasedAddresses, [{ address: '10.0.1.22', port: 6379, key: b.key, releasedAt: 12 * MIN }]);
  const newcomer = pass(removed.state, [a, late], addressMode(pool), 13 * MIN);
  t.same(listeners(newcomer.forwards)[late.key], '10.0.1.21:6380 fallback', 'a newcomer does not get the quarantined address');
  const after = pass(newcomer.state, [a, late], addressMode(pool), 12 * MIN + DAY);
  t.same(listeners(after.forwards)[late.key], '10.0.1.22:6379', 'once the quarantine is over, the fallback gets its own address');
  t.same(types(after.events), ['relocated']);
  t.notOk(after.state.releasedAddresses, 'the quarantine record is gone');
});

t.test('a target that comes back within reuseAfter gets its old address back', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002');
  const start = pass(emptyPortState(), [a, b], addressMode(), 0);
  const removed = pass(pass(start.state, [b], addressMode(), MIN).state, [b], addressMode(), 12 * MIN);
  const other = pass(removed.state, [b, node('c0', '0001')], addressMode(), 13 * MIN);
  t.equal(listeners(other.forwards)['node/c0/0001'], '10.0.1.23:6379', 'a newcomer skips the quarantined address');
  const back = pass(other.state, [a, b, node('c0', '0001')], addressMode(), 14 * MIN);
  t.equal(listeners(back.forwards)[a.key], '10.0.1.21:6379');
});

t.test('pool exhausted: the rest fall back to port mode on the first address, on ports no target uses, with a warning event each', async (t) => {
  const targets = [node('c1', '0001'), node('c1', '0002'), node('c1', '0003'), node('c1', '0004'), node('mc', '0001', 'memcached'), ...serverless('s')];
  const r = pass(emptyPortState(), targets, addressMode(['10.0.1.21', '10.0.1.22']), 0);
  t.same(listeners(r.forwards), {
    'node/c1/0001': '10.0.1.21:6379',
    'node/c1/0002': '10.0.1.22:6379',
    'node/c1/0003': '10.0.1.21:6380 fallback',
    'node/c1/0004': '10.0.1.21:6381 fallback',
    'node/mc/0001': '10.0.1.21:11211 fallback',
    'serverless/s': '10.0.1.21:6382 fallback',
    'serverless-reader/s': '10.0.1.21:6383 fallback',
  });
  t.equal(r.events.filter((e) => e.type === 'addresses-exhausted').length, 5);
  t.equal(listenerClash(r.forwards), undefined);
  const again = pass(r.state, targets, addressMode(['10.0.1.21', '10.0.1.22']), 1000);
  t.same(again.events, [], 'a fallback that still finds no address stays where it is, quietly');
  t.same(again.state, r.state);
  const grown = pass(r.state, targets, addressMode(['10.0.1.21', '10.0.1.22', '10.0.1.23', '10.0.1.24']), 2000);
  t.same(listeners(grown.forwards)['node/c1/0003'], '10.0.1.23:6379', 'more addresses: the fallbacks move to their own');
  t.same(listeners(grown.forwards)['node/c1/0004'], '10.0.1.24:6379');
  t.same(grown.events.filter((e) => e.type === 'relocated').length, 2);
});

t.test('port mode → address mode → port mode: each target gets its old port back unless it would catch another\'s address, and no address is left in the rules', async (t) => {
  const targets = [node('c1', '0001'), node('c1', '0002'), node('mc', '0001', 'memcached')];
  const ports = pass(emptyPortState(), targets, portMode, 0);
  t.same(listeners(ports.forwards), { 'node/c1/0001': ':6379', 'node/c1/0002': ':6380', 'node/mc/0001': ':11211' });
  const addresses = pass(ports.state, targets, addressMode(), 1000);
  t.same(listeners(addresses.forwards), { 'node/c1/0001': '10.0.1.21:6379', 'node/c1/0002': '10.0.1.22:6379', 'node/mc/0001': '10.0.1.23:11211' });
  t.same(types(addresses.events), ['relocated', 'relocated', 'relocated']);
  const back = pass(addresses.state, targets, portMode, 2000);
  // A port-mode :6379 catches 6379 on every address of the host, 10.0.1.22:6379 too, which
  // node/c1/0002's clients dialled until a moment ago: node/c1/0001 may not have it within reuseAfter.
  t.same(listeners(back.forwards), { 'node/c1/0001': ':6381', 'node/c1/0002': ':6380', 'node/mc/0001': ':11211' });
  t.ok(back.forwards.every((f) => f.listenAddress === undefined && f.fallback === undefined));
  const forth = pass(back.state, targets, addressMode(), 3000);
  t.same(listeners(forth.forwards), listeners(addresses.forwards), 'and the addresses come back too');
  const one = [targets[0]!];
  const alone = pass(pass(pass(emptyPortState(), one, portMode, 0).state, one, addressMode(), 1000).state, one, portMode, 2000);
  t.same(listeners(alone.forwards), { 'node/c1/0001': ':6379' }, 'with nobody else on 6379, its old port');
});

t.test('an address removed from the pool: its target moves to a free one; a held source does not stop the move', async (t) => {
  const a = node('c1', '0001'), b = node('c1', '0002');
  const start = pass(emptyPortState(), [a, b], addressMode(), 0);
  const shrunk = pass(start.state, undefined, addressMode(['10.0.1.22', '10.0.1.23']), 1000);
  t.same(listeners(shrunk.forwards), { 'node/c1/0001': '10.0.1.23:6379', 'node/c1/0002': '10.0.1.22:6379' });
  t.equal(shrunk.forwards.find((f) => f.key === a.key)?.targetIp, '10.9.0.1', 'the move keeps what DNS said');
});

t.test('a native port that changes follows in address mode', async (t) => {
  const a = node('c1', '0001');
  const start = pass(emptyPortState(), [a], addressMode(), 0);
  const moved = pass(start.state, [{ ...a, targetPort: 6390 }], addressMode(), 1000);
  t.same(listeners(moved.forwards), { 'node/c1/0001': '10.0.1.21:6390' });
});
