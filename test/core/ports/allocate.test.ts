import t from 'tap';
import { allocatePorts } from '../../../src/core/ports/allocate.js';
import type { DiscoveredTarget } from '../../../src/core/model.js';
import { emptyPortState } from '../../../src/core/ports/port-state.js';

const node = (cluster: string, nodeId: string, engine: DiscoveredTarget['engine'] = 'memcached'): DiscoveredTarget => ({
  key: `node/${cluster}/${nodeId}`,
  kind: 'node',
  engine,
  cacheClusterId: cluster,
  cacheNodeId: nodeId,
  address: `${cluster}.${nodeId}.example`,
  targetPort: engine === 'memcached' ? 11211 : 6379,
});
const ranges = { redis: 6379, memcached: 11211 };
const DAY = 86_400_000;

t.test("AWS's three-node Memcached example gets 11211, 11212, 11213 in node order", async (t) => {
  const targets = [node('mycache', '0003'), node('mycache', '0001'), node('mycache', '0002')];
  const { ports } = allocatePorts(targets, emptyPortState(), ranges, 0, DAY);
  t.same(Object.fromEntries(ports), { 'node/mycache/0001': 11211, 'node/mycache/0002': 11212, 'node/mycache/0003': 11213 });
});

t.test('redis and valkey share a range; memcached has its own', async (t) => {
  const { ports } = allocatePorts([node('a', '0001', 'redis'), node('b', '0001', 'valkey'), node('c', '0001')], emptyPortState(), ranges, 0, DAY);
  t.same(Object.fromEntries(ports), { 'node/a/0001': 6379, 'node/b/0001': 6380, 'node/c/0001': 11211 });
});

t.test('a replication group primary and reader come before its member nodes', async (t) => {
  const primary: DiscoveredTarget = { key: 'primary/rg', kind: 'primary', engine: 'redis', replicationGroupId: 'rg', address: 'p.example', targetPort: 6379 };
  const reader: DiscoveredTarget = { ...primary, key: 'reader/rg', kind: 'reader', address: 'r.example' };
  const { ports } = allocatePorts([node('rg-002', '0001', 'redis'), reader, node('rg-001', '0001', 'redis'), primary], emptyPortState(), ranges, 0, DAY);
  t.same(Object.fromEntries(ports), { 'primary/rg': 6379, 'reader/rg': 6380, 'node/rg-001/0001': 6381, 'node/rg-002/0001': 6382 });
});

t.test('ports in use are skipped; holes are filled lowest first', async (t) => {
  const state = { entries: [{ ...node('a', '0001'), listenPort: 11212 }], released: [] };
  const { ports } = allocatePorts([node('b', '0001'), node('c', '0001')], state, ranges, 0, DAY);
  t.same(Object.fromEntries(ports), { 'node/b/0001': 11211, 'node/c/0001': 11213 });
});

t.test('a released port is quarantined for reuseAfter, then free again', async (t) => {
  const state = { entries: [], released: [{ port: 11211, key: 'node/old/0001', releasedAt: 1000 }] };
  t.equal(allocatePorts([node('new', '0001')], state, ranges, 1000 + DAY - 1, DAY).ports.get('node/new/0001'), 11212);
  t.equal(allocatePorts([node('new', '0001')], state, ranges, 1000 + DAY, DAY).ports.get('node/new/0001'), 11211);
});

t.test('a target coming back within quarantine gets its own old port back', async (t) => {
  const state = { entries: [], released: [{ port: 11215, key: 'node/old/0001', releasedAt: 1000 }] };
  t.equal(allocatePorts([node('old', '0001')], state, ranges, 2000, DAY).ports.get('node/old/0001'), 11215);
});

t.test('the top of the port space is exhausted cleanly', async (t) => {
  const { ports, exhausted } = allocatePorts([node('a', '0001'), node('b', '0001')], emptyPortState(), { redis: 6379, memcached: 65535 }, 0, DAY);
  t.same(Object.fromEntries(ports), { 'node/a/0001': 65535 });
  t.same(exhausted, ['node/b/0001']);
});
