// Which forward and which allowedSources entry a flow belongs to: by the
// listener the client dialled, in port mode and address mode, for flows that
// outlive their forward, and by the first entry that admits the client.

import t from 'tap';
import { forwardOf, rememberForwards, sourceOf, emptyAttribution, withSources, UNLISTED_SOURCE } from '../../../src/core/audit/attribution.js';
import type { Forward } from '../../../src/core/model.js';

const forward = (key: string, listenPort: number, extra: Partial<Forward> = {}): Forward => ({
  key,
  kind: key.startsWith('node/') ? 'node' : 'primary',
  engine: 'redis',
  ...(key.startsWith('node/') ? { cacheClusterId: key.split('/')[1]! } : { replicationGroupId: key.split('/')[1]! }),
  address: `${key.replace(/\//g, '-')}.cache.example`,
  targetPort: 6379,
  targetIp: '10.0.1.5',
  listenPort,
  state: 'active',
  ...extra,
});

t.test('port mode: by the port, whatever local address was dialled', async (t) => {
  const table = rememberForwards(emptyAttribution(), [forward('primary/orders', 6379), forward('node/mc/0001', 11211)], ['0.0.0.0/0']);
  t.same(forwardOf(table, { dst: '10.0.0.5', dport: 6379 }), { key: 'primary/orders', kind: 'primary', engine: 'redis', cache: 'orders' });
  t.same(forwardOf(table, { dst: '127.0.0.1', dport: 11211 })?.cache, 'mc', 'the NAT host itself dialling (OUTPUT)');
  t.equal(forwardOf(table, { dst: '10.0.0.5', dport: 6380 }), undefined, 'no forward on that port');
});

t.test("address mode: the listener's own address first, then a fallback listening by port", async (t) => {
  const table = rememberForwards(
    emptyAttribution(),
    [forward('primary/a', 6379, { listenAddress: '10.0.0.21' }), forward('primary/b', 6379, { listenAddress: '10.0.0.22' }), forward('primary/c', 6380, { listenAddress: '10.0.0.21', fallback: true })],
    ['0.0.0.0/0'],
  );
  t.equal(forwardOf(table, { dst: '10.0.0.21', dport: 6379 })?.key, 'primary/a');
  t.equal(forwardOf(table, { dst: '10.0.0.22', dport: 6379 })?.key, 'primary/b');
  t.equal(forwardOf(table, { dst: '10.0.0.21', dport: 6380 })?.key, 'primary/c');
  t.equal(forwardOf(table, { dst: '10.0.0.23', dport: 6379 }), undefined, 'an address no forward listens on');
});

t.test('a flow that ends after its forward is gone keeps the forward, until another takes the listener', async (t) => {
  let table = rememberForwards(emptyAttribution(), [forward('primary/old', 6379), forward('primary/kept', 6380)], []);
  table = rememberForwards(table, [forward('primary/kept', 6380)], []);
  t.equal(forwardOf(table, { dst: '10.0.0.5', dport: 6379 })?.key, 'primary/old', 'removed, still remembered');
  table = rememberForwards(table, [forward('primary/kept', 6380)], []);
  t.equal(forwardOf(table, { dst: '10.0.0.5', dport: 6379 })?.key, 'primary/old', 'across more passes');
  table = rememberForwards(table, [forward('primary/kept', 6380), forward('primary/new', 6379)], []);
  t.equal(forwardOf(table, { dst: '10.0.0.5', dport: 6379 })?.key, 'primary/new', 'the listener given to another forward');
  t.equal(table.retired.byPort.size + table.retired.byAddress.size, 0, 'nothing retired is kept once its listener is taken');
  // A switch to address mode: the new listener on the address wins over the old port-mode one.
  table = rememberForwards(table, [forward('primary/kept', 6380, { listenAddress: '10.0.0.21' }), forward('primary/new', 6379, { listenAddress: '10.0.0.22' })], []);
  t.equal(forwardOf(table, { dst: '10.0.0.21', dport: 6380 })?.key, 'primary/kept');
  t.equal(forwardOf(table, { dst: '10.0.0.30', dport: 6380 })?.key, 'primary/kept', 'a flow from before the switch, dialled at another address: the retired port-mode forward');
});

t.test('the source: the first allowedSources entry that admits the client, as the rules match', async (t) => {
  const table = withSources(emptyAttribution(), ['198.51.100.0/24', '198.51.100.27/32', '203.0.113.7', 'not a cidr']);
  t.equal(sourceOf(table, '198.51.100.27'), '198.51.100.0/24', 'the broader entry comes first in the config, and in the rules');
  t.equal(sourceOf(table, '203.0.113.7'), '203.0.113.7/32', 'written as the config normalises it');
  t.equal(sourceOf(table, '192.0.2.1'), UNLISTED_SOURCE, 'a local client (OUTPUT)');
  t.equal(sourceOf(table, 'nonsense'), UNLISTED_SOURCE);
  t.equal(sourceOf(withSources(table, ['0.0.0.0/0']), '192.0.2.1'), '0.0.0.0/0');
  // An entry taken out: the flows it admitted (cut by the revocation) still name it.
  const narrowed = withSources(table, ['198.51.100.27/32']);
  t.equal(sourceOf(narrowed, '198.51.100.27'), '198.51.100.27/32', 'a listed entry first');
  t.equal(sourceOf(narrowed, '198.51.100.9'), '198.51.100.0/24', 'then the retired entry that admitted it');
  t.same(narrowed.retiredSources.map((s) => s.text), ['198.51.100.0/24', '203.0.113.7/32']);
  const back = withSources(narrowed, ['198.51.100.0/24']);
  t.same(back.retiredSources.map((s) => s.text), ['198.51.100.27/32', '203.0.113.7/32'], 'an entry listed again is no longer retired');
});
