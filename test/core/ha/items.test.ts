import t from 'tap';
import {
  chunkAttributes,
  chunkKey,
  leaseAttributes,
  leaseReleaseCondition,
  leaseWriteCondition,
  mapHeadAttributes,
  mapWriteCondition,
  memberUpdate,
  planMapWrite,
  readChunkItem,
  readLeaseItem,
  readMapHead,
  readMembersItem,
  type MapItem,
} from '../../../src/core/ha/items.js';
import { bucketOf, chunksOf, encodeChunk, MAP_BUCKETS } from '../../../src/core/ha/map-chunks.js';
import type { PortEntry, PortState } from '../../../src/core/ports/port-state.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const entry = (i: number, port = 6379 + i): PortEntry => ({ key: `node/c${i}/0001`, kind: 'node', engine: 'redis', cacheClusterId: `c${i}`, cacheNodeId: '0001', address: `c${i}.cache.example`, targetPort: 6379, listenPort: port });
const state: PortState = { version: 1, entries: [entry(0)], released: [{ port: 6380, key: 'node/c1/0001', releasedAt: 1_700_000_000_000 }] };
const mapOf = (s: PortState, count: number): PortState => ({ version: 1, entries: Array.from({ length: count }, (_, i) => entry(i)), released: s.released });

/** The map item a reader would assemble after `plan` was written. */
function written(base: MapItem | null, planned: PortState, term: number, token: string, limit?: number): MapItem {
  const plan = planMapWrite(base, planned, term, A, token, limit);
  if (plan.kind !== 'write') throw new Error(`expected a write, got ${plan.kind}`);
  return { ...plan.head, state: plan.state };
}

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

t.test('the map: a head listing content-named chunks, each the state file codec\'s bytes, gzipped', async (t) => {
  const item = written(null, state, 2, 'map-00000001');
  t.equal(item.chunks.length, new Set([bucketOf('node/c0/0001'), bucketOf('node/c1/0001')]).size, 'one chunk per bucket in use');
  t.same(readMapHead('g', mapHeadAttributes('g', item)), { kind: 'ok', item: { version: item.version, term: 2, writer: A, chunks: item.chunks } });
  for (const chunk of chunksOf(state)) {
    const ref = { id: chunk.id, put: 'map-00000001' };
    const raw = chunkAttributes('g', 2, ref, encodeChunk(chunk));
    t.equal(raw.pk?.S, `g#chunk#2#map-00000001#${chunk.id}`, 'keyed by term, the write that put it, and content');
    t.match(readChunkItem('g', 2, ref, raw), { kind: 'ok' });
    const other = { ...ref, id: chunk.id.replace(/^./, chunk.id.startsWith('0') ? '1' : '0') };
    t.match(readChunkItem('g', 2, other, { ...raw, pk: { S: chunkKey('g', 2, other) } }), { kind: 'invalid', problem: /does not match its name/ }, 'content that is not what its name says is refused');
    t.match(readChunkItem('g', 2, ref, { ...raw, data: { B: new Uint8Array([1, 2, 3]) } }), { kind: 'invalid', problem: /not gzip/ });
  }
  t.same(readChunkItem('g', 2, { id: chunksOf(state)[0]!.id, put: 'map-00000001' }, undefined), { kind: 'absent' });
  t.ok(item.chunks.every((c) => c.put === 'map-00000001'), 'every chunk of a first write put by it');
  const good = mapHeadAttributes('g', item);
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a writer that is not an instance', { ...good, writer: { S: 'nat-1' } }, /writer "nat-1"/],
    ['chunks as text', { ...good, chunks: { S: 'x' } }, /chunks is not a list/],
    ['a chunk id that is not a digest', { ...good, chunks: { L: [{ M: { id: { S: 'x' }, put: { S: 'map-00000001' }, bucket: { N: '0' }, bytes: { N: '10' }, entries: { N: '1' } } }] } }, /is not a sha256/],
    ['a chunk without the write that put it', { ...good, chunks: { L: [{ M: { id: { S: 'a'.repeat(64) }, bucket: { N: '0' }, bytes: { N: '10' }, entries: { N: '1' } } }] } }, /put undefined is not a token/],
    ['two chunks in one bucket', { ...good, chunks: { L: [good.chunks!.L![0]!, good.chunks!.L![0]!] } }, /bucket .* is not a bucket of its own/],
    ['too many chunks', { ...good, chunks: { L: Array.from({ length: MAP_BUCKETS + 1 }, () => good.chunks!.L![0]!) } }, /at most 16/],
    ['an old single-item map', { ...good, map: { S: '{}' } }, /unknown attribute "map"/],
  ];
  for (const [name, raw, problem] of cases) t.match(readMapHead('g', raw as never), { kind: 'invalid', problem }, name);
});

t.test('conditions: acquire on no item or the version read; renew and release on any version the holder may have written; map writes fenced by version and term', async (t) => {
  t.same(leaseWriteCondition(null), { expression: 'attribute_not_exists(#pk)', names: { '#pk': 'pk' } });
  t.same(leaseWriteCondition('v1-aaaaaa'), { expression: '#version = :expect', names: { '#version': 'version' }, values: { ':expect': { S: 'v1-aaaaaa' } } });
  t.same(leaseWriteCondition(['v1-aaaaaa', 'v2-aaaaaa']), {
    expression: '(#version = :expect OR #version = :expect1)',
    names: { '#version': 'version' },
    values: { ':expect': { S: 'v1-aaaaaa' }, ':expect1': { S: 'v2-aaaaaa' } },
  });
  t.match(leaseReleaseCondition(A, ['v1-aaaaaa']), { expression: '#version = :expect AND #holder = :self', values: { ':self': { S: A } } });
  t.match(leaseReleaseCondition(A, ['v1-aaaaaa', 'v2-aaaaaa']), { expression: '(#version = :expect OR #version = :expect1) AND #holder = :self' });
  t.same(mapWriteCondition('m1-aaaaaa', 4), {
    expression: '#version = :expect AND #term <= :term',
    names: { '#version': 'version', '#term': 'term' },
    values: { ':expect': { S: 'm1-aaaaaa' }, ':term': { N: '4' } },
  });
});

t.test('planMapWrite: the first write of a term is a claim with chunks of its own; unchanged maps are not rewritten; one change rewrites one chunk; a later term supersedes', async (t) => {
  const first = planMapWrite(null, state, 1, A, 'm0-aaaaaa');
  t.match(first, { kind: 'write', expect: null, head: { version: 'm0-aaaaaa', term: 1, writer: A }, drops: [], waiting: [] });
  const base = written(null, mapOf(state, 40), 2, 'm1-aaaaaa');
  t.same(planMapWrite(base, structuredClone(base.state), 2, A, 'm2-aaaaaa'), { kind: 'unchanged', waiting: [], state: base.state });
  const claim = planMapWrite(base, base.state, 3, A, 'm2-aaaaaa');
  t.match(claim, { kind: 'write', expect: 'm1-aaaaaa', head: { term: 3 } }, 'the claim of term 3');
  if (claim.kind !== 'write') return;
  t.equal(claim.puts.length, base.chunks.length, 'the claim writes every chunk under its own term');
  t.same(claim.drops, base.chunks.map((c) => ({ term: 2, id: c.id, put: 'm1-aaaaaa' })), "and drops the older term's");
  t.ok(claim.head.chunks.every((c) => c.put === 'm2-aaaaaa'), 'all put by the claim');
  t.same(planMapWrite(base, base.state, 1, A, 'm2-aaaaaa'), { kind: 'superseded', term: 2 });
  const changed = { ...base.state, entries: base.state.entries.map((e) => (e.key === 'node/c7/0001' ? { ...e, ip: '10.0.0.7' } : e)) };
  const one = planMapWrite(base, changed, 2, A, 'm3-aaaaaa');
  if (one.kind !== 'write') return t.fail(one.kind);
  t.equal(one.puts.length, 1, 'one target changed: one chunk written');
  t.equal(one.drops.length, 1, 'and the one it replaces dropped');
  t.equal(one.head.chunks.filter((c) => !base.chunks.some((b) => b.id === c.id)).length, 1, 'every other chunk shared with the map before');
  t.same(one.head.chunks.filter((c) => c.put === 'm3-aaaaaa').length, 1, 'the shared ones keep the write that put them');
  // The changed target changes back: the content of the dropped chunk is put again, as a new item (a late delete of the old one cannot touch it).
  const second = { ...one.head, state: one.state };
  const back = planMapWrite(second, base.state, 2, A, 'm4-aaaaaa');
  if (back.kind !== 'write') return t.fail(back.kind);
  t.same(back.puts.map((p) => [p.id, p.put]), one.drops.map((d) => [d.id, 'm4-aaaaaa']), 'the same content, put again under this write');
});

t.test('out of room: the new targets of a full chunk wait, named; a map that only shrinks always goes through', async (t) => {
  const base = written(null, mapOf(state, 60), 1, 'm1-aaaaaa');
  const limit = Math.max(...base.chunks.map((c) => c.bytes)) + 10;
  const fuller = mapOf(state, 120);
  const plan = planMapWrite(base, fuller, 1, A, 'm2-aaaaaa', limit);
  if (plan.kind === 'superseded') return t.fail(plan.kind);
  t.ok(plan.waiting.length > 0, `${plan.waiting.length} new targets wait`);
  t.ok(plan.waiting.every((key) => !base.state.entries.some((e) => e.key === key)), 'only new targets wait');
  const chunks = plan.kind === 'write' ? plan.head.chunks : base.chunks;
  t.ok(chunks.every((c) => c.bytes <= limit || c.bytes <= (base.chunks.find((b) => b.bucket === c.bucket)?.bytes ?? 0)), 'no chunk grew past the room');
  t.same(plan.state.entries.length + plan.waiting.length, 120, 'every other target written');
  t.ok(base.state.entries.every((e) => plan.state.entries.some((w) => w.key === e.key && w.listenPort === e.listenPort)), 'every target of the map before kept, on its port');
  // The limit falls below what is stored already: a write that removes targets still goes through.
  const smaller = { ...base.state, entries: base.state.entries.slice(10) };
  const shrink = planMapWrite(base, smaller, 1, A, 'm3-aaaaaa', 10);
  t.match(shrink, { kind: 'write', waiting: [] });
  t.same(shrink.kind === 'write' && shrink.state.entries.length, 50, 'drains and removals are written whatever the room');
});

t.test('the members item: role, heartbeat token, lease and the config fingerprint; an earlier release\'s entry (no fingerprint) is read as unknown', async (t) => {
  const update = memberUpdate({ instanceId: A, role: 'stopped', beat: 'beat-0000001', leaseMs: 10_000, config: { 'ports.reuseAfter': '0123456789abcdef' } });
  const raw = { pk: { S: 'g#members' }, [A]: update.values[':entry']! };
  t.same(readMembersItem('g', raw), { members: [{ instanceId: A, role: 'stopped', beat: 'beat-0000001', leaseMs: 10_000, config: { 'ports.reuseAfter': '0123456789abcdef' } }], invalid: [] });
  const old = { pk: { S: 'g#members' }, [A]: { M: { role: { S: 'leader' }, beat: { S: 'beat-0000001' }, leaseMs: { N: '10000' } } } };
  t.same(readMembersItem('g', old).members[0]?.config, {});
  const bad = { pk: { S: 'g#members' }, [A]: { M: { role: { S: 'leader' }, beat: { S: 'beat-0000001' }, leaseMs: { N: '10000' }, config: { M: { 'ports.reuseAfter': { S: 'not a digest' } } } } } };
  t.match(readMembersItem('g', bad).invalid, [/config is not a map/]);
});
