import t from 'tap';
import { leaseAttributes, leaseReleaseCondition, leaseWriteCondition, mapAttributes, mapWriteCondition, planMapWrite, readLeaseItem, readMapItem, type MapItem } from '../../../src/core/ha/items.js';
import type { PortState } from '../../../src/core/ports/port-state.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const state: PortState = {
  version: 1,
  entries: [{ key: 'node/alpha/0001', kind: 'node', engine: 'redis', cacheClusterId: 'alpha', cacheNodeId: '0001', address: 'alpha.cache.example', targetPort: 6379, listenPort: 6379 }],
  released: [{ port: 6380, key: 'node/alpha/0002', releasedAt: 1_700_000_000_000 }],
};

t.test('the lease item round-trips; a released lease has no holder', async (t) => {
  const item = { holder: A, version: 'ver-00000001', term: 3, leaseMs: 10_000 };
  t.same(readLeaseItem('g', leaseAttributes('g', item)), { kind: 'ok', item });
  const released = { ...item, holder: null };
  t.same(leaseAttributes('g', released).holder, undefined);
  t.same(readLeaseItem('g', leaseAttributes('g', released)), { kind: 'ok', item: released });
  t.same(readLeaseItem('g', undefined), { kind: 'absent' });
});

t.test('a lease item that does not validate says why', async (t) => {
  const good = leaseAttributes('g', { holder: A, version: 'ver-00000001', term: 3, leaseMs: 10_000 });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['another group', { ...good, pk: { S: 'h#lease' } }, /key "h#lease" is not g#lease/],
    ['holder as a number', { ...good, holder: { N: '1' } }, /holder undefined is not an instance id/],
    ['short version', { ...good, version: { S: 'v1' } }, /version "v1"/],
    ['term zero', { ...good, term: { N: '0' } }, /term/],
    ['term as text', { ...good, term: { S: '3' } }, /term/],
    ['fractional term', { ...good, term: { N: '1.5' } }, /term/],
    ['huge term', { ...good, term: { N: '99999999999999999' } }, /term/],
    ['lease too short', { ...good, leaseMs: { N: '2999' } }, /from 3s to 1h/],
    ['extra attribute', { ...good, ttl: { N: '1' } }, /unknown attribute "ttl"/],
  ];
  for (const [name, raw, problem] of cases) t.match(readLeaseItem('g', raw as never), { kind: 'invalid', problem }, name);
});

t.test('the map item round-trips through the state file codec', async (t) => {
  const item: MapItem = { version: 'map-00000001', term: 2, writer: A, state };
  const built = mapAttributes('g', item);
  if (!('attributes' in built)) throw new Error(built.problem);
  t.same(readMapItem('g', built.attributes), { kind: 'ok', item });
  t.match(readMapItem('g', { ...built.attributes, writer: { S: 'nat-1' } }), { kind: 'invalid', problem: /writer "nat-1"/ });
  t.match(readMapItem('g', { ...built.attributes, map: { S: '{"version":2,"entries":[],"released":[]}' } }), { kind: 'invalid', problem: /port map: version/ });
  const { map: _map, ...noMap } = built.attributes;
  t.match(readMapItem('g', noMap), { kind: 'invalid', problem: /no map attribute/ });
});

t.test('conditions: acquire on no item or the version read; release only by its holder; map writes fenced by version and term', async (t) => {
  t.same(leaseWriteCondition(null), { expression: 'attribute_not_exists(#pk)', names: { '#pk': 'pk' } });
  t.same(leaseWriteCondition('v1-aaaaaa'), { expression: '#version = :expect', names: { '#version': 'version' }, values: { ':expect': { S: 'v1-aaaaaa' } } });
  t.match(leaseReleaseCondition(A, 'v1-aaaaaa'), { expression: '#version = :expect AND #holder = :self', values: { ':self': { S: A } } });
  t.same(mapWriteCondition('m1-aaaaaa', 4), {
    expression: '#version = :expect AND #term <= :term',
    names: { '#version': 'version', '#term': 'term' },
    values: { ':expect': { S: 'm1-aaaaaa' }, ':term': { N: '4' } },
  });
});

t.test('planMapWrite: the first write of a term is a claim; unchanged maps are not rewritten; a later term supersedes', async (t) => {
  const base: MapItem = { version: 'm1-aaaaaa', term: 2, writer: A, state };
  t.same(planMapWrite(null, state, 1, A, 'm0-aaaaaa'), { kind: 'write', expect: null, item: { version: 'm0-aaaaaa', term: 1, writer: A, state } });
  t.same(planMapWrite(base, structuredClone(state), 2, A, 'm2-aaaaaa'), { kind: 'unchanged' });
  t.same(planMapWrite(base, state, 3, A, 'm2-aaaaaa'), { kind: 'write', expect: 'm1-aaaaaa', item: { version: 'm2-aaaaaa', term: 3, writer: A, state } }, 'the claim of term 3');
  t.same(planMapWrite(base, state, 1, A, 'm2-aaaaaa'), { kind: 'superseded', term: 2 });
  const changed = { ...state, released: [] };
  t.equal(planMapWrite(base, changed, 2, A, 'm2-aaaaaa').kind, 'write');
});
