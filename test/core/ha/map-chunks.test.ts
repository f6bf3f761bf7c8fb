import t from 'tap';
import { assembleMap, bucketOf, canonicalOrder, chunksOf, decodeChunk, encodeChunk, MAP_BUCKETS, MAX_CHUNK_BYTES, roomUsed } from '../../../src/core/ha/map-chunks.js';
import { serializeState } from '../../../src/core/ports/port-map-codec.js';
import type { PortEntry, PortState } from '../../../src/core/ports/port-state.js';

/** A realistic entry: a cluster-mode node of an ElastiCache name, resolved. */
const entry = (i: number): PortEntry => ({
  key: `node/cache-${i}-0001-001/0001`,
  kind: 'node',
  engine: 'redis',
  cacheClusterId: `cache-${i}-0001-001`,
  cacheNodeId: '0001',
  address: `cache-${i}-0001-001.abc123.0001.use1.cache.amazonaws.com`,
  targetPort: 6379,
  listenPort: 6379 + i,
  ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  resolvedAt: 1_764_460_800_000 + i,
});
const mapOf = (n: number): PortState => ({ version: 1, entries: Array.from({ length: n }, (_, i) => entry(i)), released: [{ port: 60_000, key: 'node/gone/0001', releasedAt: 1_764_460_800_000 }] });

const roundTrip = (state: PortState) => assembleMap(chunksOf(state).map((c) => {
  const decoded = decodeChunk(c.id, encodeChunk(c));
  if ('problem' in decoded) throw new Error(decoded.problem);
  return decoded.state;
}));

t.test('keys spread over the buckets by a stable hash; every bucket in use is one chunk', async (t) => {
  t.equal(bucketOf('node/c1/0001'), bucketOf('node/c1/0001'));
  const used = new Set(Array.from({ length: 200 }, (_, i) => bucketOf(`node/c${i}/0001`)));
  t.equal(used.size, MAP_BUCKETS, '200 keys use all 16 buckets');
  const chunks = chunksOf(mapOf(200));
  t.equal(chunks.length, MAP_BUCKETS);
  t.equal(chunks.reduce((n, c) => n + c.entries, 0), 200);
  t.same(chunksOf({ version: 1, entries: [], released: [] }), [], 'an empty map has no chunks');
  const released = chunksOf({ version: 1, entries: [], released: [{ port: 6380, key: 'node/c1/0001', releasedAt: 1 }] });
  t.equal(released.length, 1, 'a released port goes with its key');
  t.equal(released[0]!.bucket, bucketOf('node/c1/0001'));
});

t.test('chunks round-trip to the same map, byte for byte through the codec', async (t) => {
  const map = mapOf(300);
  const back = roundTrip(map);
  if ('problem' in back) return t.fail(back.problem);
  t.equal(serializeState(back.state), serializeState(canonicalOrder(map)), 'in the codec\'s order: entries by key, released ports by port');
});

t.test('one changed target changes one chunk', async (t) => {
  const before = chunksOf(mapOf(300));
  const changed = mapOf(300);
  changed.entries[17] = { ...changed.entries[17]!, ip: '10.9.9.9' };
  const after = chunksOf(changed);
  t.equal(after.filter((c, i) => c.id !== before[i]!.id).length, 1);
});

t.test('assembly refuses what one chunk alone cannot show: a key twice, two targets on one listener', async (t) => {
  const a: PortState = { version: 1, entries: [entry(1)], released: [] };
  t.match(assembleMap([a, a]), { problem: /node\/cache-1-0001-001\/0001 is in two chunks/ });
  const clash: PortState = { version: 1, entries: [{ ...entry(2), listenPort: entry(1).listenPort }], released: [] };
  t.match(assembleMap([a, clash]), { problem: /both listen on :6380/ });
});

t.test('a chunk is trusted only for the content its name says, within a size bound', async (t) => {
  const [chunk] = chunksOf(mapOf(3));
  t.match(decodeChunk('0'.repeat(64), encodeChunk(chunk!)), { problem: /does not match its name/ });
  t.match(decodeChunk(chunk!.id, new Uint8Array([0x1f, 0x8b, 0, 0])), { problem: /not gzip/ });
  const { gzipSync } = await import('node:zlib');
  const bomb = new Uint8Array(gzipSync(Buffer.alloc(20 * 1024 * 1024, 32)));
  t.match(decodeChunk(chunk!.id, bomb), { problem: /not gzip within 16777216 bytes/ }, 'a chunk that unzips to more than 16 MB is refused unread');
});

t.test('5,000 targets fit with room to spare (the figures say how much)', async (t) => {
  const chunks = chunksOf(mapOf(5000));
  const refs = chunks.map((c) => ({ id: c.id, put: 'map-00000001', bucket: c.bucket, bytes: encodeChunk(c).byteLength, entries: c.entries }));
  const total = refs.reduce((n, r) => n + r.bytes, 0);
  const text = chunks.reduce((n, c) => n + Buffer.byteLength(c.text), 0);
  t.comment(`5,000 targets: ${text} bytes of map text in ${chunks.length} chunks, ${total} bytes gzipped (${(total / 5000).toFixed(1)} bytes a target; the fullest chunk ${Math.max(...refs.map((r) => r.bytes))} of ${MAX_CHUNK_BYTES}); a single 400 KB item held about 1,060`);
  t.ok(roomUsed(refs) < 0.2, `the fullest chunk is ${(roomUsed(refs) * 100).toFixed(1)}% full`);
});
