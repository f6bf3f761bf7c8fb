// The HA store against dynalite with the real SDK v3 client: table creation,
// the lease's conditional writes, the map's fencing, and validation of
// everything read back.

import t from 'tap';
import { randomUUID } from 'node:crypto';
import { DeleteItemCommand, DescribeTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoHaStore, createDynamoClient } from '../../src/ha/dynamo-store.js';
import type { LeaseWrite } from '../../src/core/ha/lease.js';
import { chunkKey, mapHeadAttributes, planMapWrite, type MapItem, type MapWritePlan } from '../../src/core/ha/items.js';
import { canonicalOrder, chunkIdOf, chunksOf, encodeChunk } from '../../src/core/ha/map-chunks.js';
import { serializeState } from '../../src/core/ports/port-map-codec.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { startDynalite } from '../support/dynalite.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const LEASE = 10_000;
const CONFIG = { 'ports.reuseAfter': '0123456789abcdef', 'ha.elasticIp': 'fedcba9876543210' };

const dynamo = await startDynalite(t);
const store = (group = 'prod-nat', table = 'cachenat') => new DynamoHaStore({ region: 'us-east-1', table, group, timeoutMs: 2000, client: dynamo.client() });
const main = store();
t.equal(await main.ensureTable(), 'created', 'ha init creates the table');

const acquire = (holder: string, expect: string | null, term: number): LeaseWrite => ({ kind: 'acquire', expect, reason: 'free', item: { holder, version: randomUUID(), term, leaseMs: LEASE } });
const renew = (holder: string, expect: string, term: number): LeaseWrite => ({ kind: 'renew', expect: [expect], item: { holder, version: randomUUID(), term, leaseMs: LEASE } });

const portState = (port: number, key = 'node/alpha/0001'): PortState => ({
  version: 1,
  entries: [{ key, kind: 'node', engine: 'redis', cacheClusterId: key.split('/')[1]!, cacheNodeId: key.split('/')[2]!, address: `${key.split('/')[1]}.cache.example`, targetPort: 6379, listenPort: port }],
  released: [],
});
type MapWrite = Extract<MapWritePlan, { kind: 'write' }>;
/** The write planMapWrite makes of `state` on `base` (a claim when the term is new). */
function mapWrite(base: MapItem | null, term: number, writer: string, state: PortState): MapWrite {
  const plan = planMapWrite(base, state, term, writer, randomUUID());
  if (plan.kind !== 'write') throw new Error(`expected a write, got ${plan.kind}`);
  return plan;
}
const itemOf = (plan: MapWrite): MapItem => ({ ...plan.head, state: plan.state });

t.test('ha init: the table has the key "pk" (string) and on-demand billing; a second init is a no-op that keeps the items', async (t) => {
  const { Table } = await dynamo.client().send(new DescribeTableCommand({ TableName: 'cachenat' }));
  t.same(Table?.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }]);
  t.same(Table?.AttributeDefinitions, [{ AttributeName: 'pk', AttributeType: 'S' }]);
  t.equal(Table?.BillingModeSummary?.BillingMode, 'PAY_PER_REQUEST');
  const s = store('init-check');
  const first = acquire(A, null, 1);
  t.same(await s.writeLease(first), { kind: 'accepted' });
  t.equal(await s.ensureTable(), 'exists');
  t.match(await s.readLease(), { kind: 'item', item: first.item }, 'the lease survives a second init');
});

t.test('ha init: DescribeTable right after CreateTable may not know the table yet (AWS documents the window): it asks again', async (t) => {
  const real = dynamo.client();
  let unknown = 2;
  const describes: string[] = [];
  const client = {
    send: (command: { input: unknown }, options?: unknown) => {
      if (command instanceof DescribeTableCommand) {
        describes.push(unknown > 0 ? 'ResourceNotFoundException' : 'answered');
        if (unknown-- > 0) return Promise.reject(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' }));
      }
      return real.send(command as never, options as never);
    },
    destroy() {},
  } as unknown as typeof real;
  const s = new DynamoHaStore({ region: 'us-east-1', table: 'just-created', group: 'g', timeoutMs: 2000, client });
  t.equal(await s.ensureTable({ pollMs: 10 }), 'created');
  t.same(describes.slice(0, 3), ['ResourceNotFoundException', 'ResourceNotFoundException', 'answered']);
  let never = true;
  const gone = { send: (command: { input: unknown }, options?: unknown) => (command instanceof DescribeTableCommand && never ? Promise.reject(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' })) : real.send(command as never, options as never)), destroy() {} } as unknown as typeof real;
  await t.rejects(new DynamoHaStore({ region: 'us-east-1', table: 'never-there', group: 'g', timeoutMs: 2000, client: gone }).ensureTable({ waitMs: 50, pollMs: 10 }), /never-there is still unknown to DescribeTable after 0s/, 'not forever');
  never = false;
});

t.test('ha init refuses a table of the same name with another key', async (t) => {
  const { CreateTableCommand } = await import('@aws-sdk/client-dynamodb');
  await dynamo.client().send(new CreateTableCommand({ TableName: 'other-key', AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }], BillingMode: 'PAY_PER_REQUEST' }));
  await t.rejects(store('g', 'other-key').ensureTable(), /not the partition key "pk"/);
});

t.test('lease: one acquire wins on an empty table; renewals need the current version; release clears only for its holder', async (t) => {
  const s = store('lease');
  t.same(await s.readLease(), { kind: 'absent' });
  const a = acquire(A, null, 1);
  const b = acquire(B, null, 1);
  t.same(await s.writeLease(a), { kind: 'accepted' });
  t.same(await s.writeLease(b), { kind: 'conflict' }, 'the second acquire on an empty table is refused');
  t.same(await s.readLease(), { kind: 'item', item: a.item });

  const r1 = renew(A, a.item.version, 1);
  t.same(await s.writeLease(r1), { kind: 'accepted' });
  t.same(await s.writeLease(renew(A, a.item.version, 1)), { kind: 'conflict' }, 'a renewal naming a replaced version is refused');
  const takeover = acquire(B, a.item.version, 2);
  t.same(await s.writeLease(takeover), { kind: 'conflict' }, 'a takeover naming the version the standby saw before the renewal is refused');

  const r2: LeaseWrite = { kind: 'renew', expect: [randomUUID(), r1.item.version], item: { holder: A, version: randomUUID(), term: 1, leaseMs: LEASE } };
  t.same(await s.writeLease(r2), { kind: 'accepted' }, 'a renewal may name several versions (answers lost): the item carries one of them');
  t.same(await s.releaseLease(B, [r2.item.version], r2.item), { kind: 'conflict' }, 'the standby cannot release the leader');
  t.same(await s.releaseLease(A, [a.item.version], r2.item), { kind: 'conflict' }, 'a release naming an old version is refused');
  const releasedVersion = randomUUID();
  t.same(await s.releaseLease(A, [randomUUID(), r2.item.version], { ...r2.item, version: releasedVersion }), { kind: 'accepted' });
  t.same(await s.readLease(), { kind: 'item', item: { holder: null, version: releasedVersion, term: 1, leaseMs: LEASE } }, 'released: no holder, the term kept');
  t.same(await s.writeLease(acquire(B, releasedVersion, 2)), { kind: 'accepted' }, 'the standby takes a released lease at once');
});

t.test('map: first write, compare-and-set on the version, and a stale term refused even with the latest version', async (t) => {
  const s = store('map');
  t.same(await s.readMap(), { kind: 'absent' });
  const m1 = mapWrite(null, 1, A, portState(6379));
  t.same(await s.writeMap(m1, undefined), { kind: 'accepted' });
  t.same(await s.writeMap(mapWrite(null, 1, B, portState(6380)), undefined), { kind: 'conflict' }, 'a second first write is refused');
  t.same(await store('map').readMap(), { kind: 'ok', item: itemOf(m1) }, 'another store reads it whole');

  const m2 = mapWrite(itemOf(m1), 1, A, portState(6379, 'node/alpha/0002'));
  t.same(await s.writeMap(m2, undefined), { kind: 'accepted' });
  t.same(await s.writeMap(mapWrite(itemOf(m1), 1, A, portState(6381)), undefined), { kind: 'conflict' }, 'a writer planning from an old map is refused');

  // B takes over (term 2) and claims the map from the version it read.
  const claim = mapWrite(itemOf(m2), 2, B, m2.state);
  t.same(await s.writeMap(claim, undefined), { kind: 'accepted' });
  t.same(await s.writeMap(mapWrite(itemOf(m2), 1, A, portState(6382)), undefined), { kind: 'conflict' }, 'the paused leader, planning from the map before the claim, is refused');
  t.same(await s.writeMap({ ...mapWrite(itemOf(m2), 1, A, portState(6382)), expect: claim.head.version }, undefined), { kind: 'conflict' }, 'the paused leader is refused even when it read the claimed map: its term is older');
  const m3 = mapWrite(itemOf(claim), 2, B, portState(6383));
  t.same(await s.writeMap(m3, undefined), { kind: 'accepted' }, 'the new leader writes on');
  t.same(await store('map').readMap(), { kind: 'ok', item: itemOf(m3) });
  const left = await dynamo.client().send(new (await import('@aws-sdk/client-dynamodb')).ScanCommand({ TableName: 'cachenat' }));
  const chunks = new Set((left.Items ?? []).map((i) => i.pk?.S ?? '').filter((pk) => pk.startsWith('map#chunk#')));
  t.ok(m3.head.chunks.every((c) => chunks.has(chunkKey('map', 2, c))), 'every chunk the head lists is there');
  const replaced = [...m1.head.chunks, ...m2.head.chunks, ...claim.head.chunks].filter((c) => !m3.head.chunks.some((n) => n.id === c.id));
  t.ok(replaced.length > 0 && replaced.every((c) => !chunks.has(chunkKey('map', 1, c)) && !chunks.has(chunkKey('map', 2, c))), "the claim dropped term 1's chunks, each write the ones it replaced (a refused write's own may stay behind)");
});

t.test('the fence: asked right before the head is sent; undefined sends nothing', async (t) => {
  const s = store('fence');
  t.same(await s.writeMap(mapWrite(null, 1, A, portState(6379)), undefined, () => undefined), { kind: 'not-sent' });
  t.same(await s.readMap(), { kind: 'absent' }, 'no head was written');
  const aborted = AbortSignal.abort();
  t.match(await s.writeMap(mapWrite(null, 1, A, portState(6379)), undefined, () => aborted), { kind: 'unavailable' }, "a head whose deadline has passed is not sent (the SDK honours the caller's signal)");
  t.match(await s.readLease(aborted), { kind: 'unavailable' });
});

t.test('5,000 targets: written in chunks, read back whole by the other instance, one chunk rewritten for one change', async (t) => {
  const entries = Array.from({ length: 5000 }, (_, i) => portState(10_000 + i, `node/c${i}/0001`).entries[0]!);
  const big: PortState = { version: 1, entries, released: [] };
  const a = store('five-thousand');
  const first = mapWrite(null, 1, A, big);
  t.same(await a.writeMap(first, undefined), { kind: 'accepted' });
  const read = await store('five-thousand').readMap();
  t.equal(read.kind === 'ok' && read.item.state.entries.length, 5000);
  t.equal(read.kind === 'ok' && serializeState(read.item.state), serializeState(canonicalOrder(first.state)), 'the same map, byte for byte (in the codec\'s order)');
  const changed = { ...first.state, entries: first.state.entries.map((e) => (e.key === 'node/c42/0001' ? { ...e, ip: '10.0.0.42' } : e)) };
  const second = mapWrite(itemOf(first), 1, A, changed);
  t.equal(second.puts.length, 1, 'one chunk written');
  t.same(await a.writeMap(second, undefined), { kind: 'accepted' });
  t.comment(`5,000 targets in ${first.head.chunks.length} chunks, ${first.head.chunks.reduce((n, c) => n + c.bytes, 0)} bytes gzipped`);
});

t.test('everything read back is validated: a foreign or corrupt item is never used', async (t) => {
  const raw = dynamo.client();
  const put = (Item: Record<string, { S: string } | { N: string }>) => raw.send(new PutItemCommand({ TableName: 'cachenat', Item }));
  const s = () => store('hostile');
  await put({ pk: { S: 'hostile#lease' }, holder: { S: 'i-0aaaaaaaaaaaaaaaa; rm -rf /' }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '10000' } });
  t.match(await s().readLease(), { kind: 'unavailable', error: /invalid lease item hostile#lease: holder .* is not an instance id/ });
  await put({ pk: { S: 'hostile#lease' }, holder: { S: A }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '100' } });
  t.match(await s().readLease(), { kind: 'unavailable', error: /leaseMs: expected a lease from 3s to 1h/ });
  await put({ pk: { S: 'hostile#lease' }, holder: { S: A }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '10000' }, note: { S: 'x' } });
  t.match(await s().readLease(), { kind: 'unavailable', error: /unknown attribute "note"/ });

  // A head, and chunks of the writer's term whose content is hostile.
  const text = serializeState(portState(6379));
  const clash = serializeState({ ...portState(6379), entries: [...portState(6379).entries, ...portState(6379, 'node/alpha/0002').entries] });
  const cases: [string, string, RegExp][] = [
    ['truncated map', text.slice(0, 40), /not JSON/],
    ['two targets on one port', clash, /both listen on :6379/],
    ['a shell word in an ip', text.replace('"listenPort": 6379', '"listenPort": 6379, "ip": "10.0.0.1 -j ACCEPT"'), /entries\.0\.ip/],
  ];
  for (const [name, content] of cases) {
    const [chunk] = chunksOf(portState(6379));
    const forged = { ...chunk!, text: content, id: chunkIdOf(content) };
    const put = randomUUID();
    await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: { pk: { S: chunkKey('hostile', 1, { id: forged.id, put }) }, data: { B: encodeChunk(forged) } } }));
    await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: mapHeadAttributes('hostile', { version: randomUUID(), term: 1, writer: A, chunks: [{ id: forged.id, put, bucket: forged.bucket, bytes: 100, entries: 1 }] }) }));
    t.match(await s().readMap(), { kind: 'invalid', problem: cases.find((c) => c[0] === name)![2] }, name);
  }
  await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: { ...mapHeadAttributes('hostile', { version: randomUUID(), term: 1, writer: A, chunks: [] }), term: { N: '-1' } } }));
  t.match(await s().readMap(), { kind: 'invalid', problem: /term/ });
  // A head listing a chunk that is gone (removed after a newer head): read again, then unavailable (never invalid, never half a map).
  await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: mapHeadAttributes('hostile', { version: randomUUID(), term: 1, writer: A, chunks: [{ id: 'f'.repeat(64), put: randomUUID(), bucket: 0, bytes: 100, entries: 1 }] }) }));
  t.match(await s().readMap(), { kind: 'unavailable', error: /a chunk it lists is gone/ });
  await raw.send(new DeleteItemCommand({ TableName: 'cachenat', Key: { pk: { S: 'hostile#map' } } }));
  t.same(await s().readMap(), { kind: 'absent' });
});

t.test('no table, no server: unavailable, with what to do', async (t) => {
  const missing = store('g', 'no-such-table');
  t.match(await missing.readLease(), { kind: 'unavailable', error: /table no-such-table does not exist \(run "cachenat ha init"\)/ });
  t.match(await missing.writeLease(acquire(A, null, 1)), { kind: 'unavailable', error: /does not exist/ });
  // A port nobody listens on: the client's own error, not an exception.
  const closed = new DynamoHaStore({ region: 'us-east-1', table: 'cachenat', group: 'g', timeoutMs: 1000, endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  t.teardown(() => closed.close());
  t.match(await closed.readLease(), { kind: 'unavailable', error: /ECONNREFUSED/ });
  t.match(await closed.writeMap(mapWrite(null, 1, A, portState(6379)), undefined), { kind: 'unavailable' });
  t.ok(createDynamoClient({ region: 'us-east-1', timeoutMs: 1000 }), 'a client without an endpoint override builds');
});

t.test('the members item: each instance writes its own heartbeat attribute; one read finds them all, validated, and no other group\'s', async (t) => {
  const s = store('members');
  const other = store('members-other');
  t.same(await s.readMembers(), { kind: 'ok', members: [], invalid: [] }, 'no item yet: nobody');
  t.same(await s.writeMember({ instanceId: A, role: 'leader', beat: randomUUID(), leaseMs: LEASE, config: {} }), { kind: 'accepted' }, 'the first heartbeat creates the item');
  const beat = randomUUID();
  t.same(await s.writeMember({ instanceId: B, role: 'standby', beat, leaseMs: LEASE, config: CONFIG }), { kind: 'accepted' });
  t.same(await other.writeMember({ instanceId: B, role: 'leader', beat: randomUUID(), leaseMs: LEASE, config: {} }), { kind: 'accepted' });
  const read = await s.readMembers();
  t.equal(read.kind, 'ok');
  if (read.kind !== 'ok') return;
  t.same(read.members.map((m) => m.instanceId).sort(), [A, B], 'both members of this group, none of the other');
  t.same(read.members.find((m) => m.instanceId === B), { instanceId: B, role: 'standby', beat, leaseMs: LEASE, config: CONFIG }, 'with its config fingerprint');
  const next = randomUUID();
  t.same(await s.writeMember({ instanceId: B, role: 'stopped', beat: next, leaseMs: LEASE, config: CONFIG }), { kind: 'accepted' });
  const again = await s.readMembers();
  t.same(again.kind === 'ok' && again.members.find((m) => m.instanceId === B), { instanceId: B, role: 'stopped', beat: next, leaseMs: LEASE, config: CONFIG }, 'a heartbeat replaces only its own attribute (a daemon that stops says so)');
  t.same(again.kind === 'ok' && again.members.find((m) => m.instanceId === A)?.role, 'leader', "the other's is untouched");
  const { UpdateItemCommand } = await import('@aws-sdk/client-dynamodb');
  await dynamo.client().send(new UpdateItemCommand({ TableName: 'cachenat', Key: { pk: { S: 'members#members' } }, UpdateExpression: 'SET #a = :bad, #x = :x', ExpressionAttributeNames: { '#a': A, '#x': 'intruder' }, ExpressionAttributeValues: { ':bad': { M: { role: { S: 'boss' }, beat: { S: randomUUID() }, leaseMs: { N: '10000' } } }, ':x': { S: 'y' } } }));
  const tampered = await s.readMembers();
  t.match(tampered, { kind: 'ok', invalid: [/"i-0a+": role "boss" is not leader, standby or stopped/, /"intruder": is not an instance id/] }, 'entries that do not validate are named, not used');
  t.same(tampered.kind === 'ok' && tampered.members.map((m) => m.instanceId), [B]);
});
