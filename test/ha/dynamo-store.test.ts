// The HA store against dynalite with the real SDK v3 client: table creation,
// the lease's conditional writes, the map's fencing, and validation of
// everything read back.

import t from 'tap';
import { randomUUID } from 'node:crypto';
import { DeleteItemCommand, DescribeTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoHaStore, createDynamoClient } from '../../src/ha/dynamo-store.js';
import type { LeaseWrite } from '../../src/core/ha/lease.js';
import { mapAttributes, type MapItem } from '../../src/core/ha/items.js';
import { serializeState } from '../../src/core/ports/port-map-codec.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { startDynalite } from '../support/dynalite.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const LEASE = 10_000;

const dynamo = await startDynalite(t);
const store = (group = 'prod-nat', table = 'cachenat') => new DynamoHaStore({ region: 'us-east-1', table, group, timeoutMs: 2000, client: dynamo.client() });
const main = store();
t.equal(await main.ensureTable(), 'created', 'ha init creates the table');

const acquire = (holder: string, expect: string | null, term: number): LeaseWrite => ({ kind: 'acquire', expect, reason: 'free', item: { holder, version: randomUUID(), term, leaseMs: LEASE } });
const renew = (holder: string, expect: string, term: number): LeaseWrite => ({ kind: 'renew', expect, item: { holder, version: randomUUID(), term, leaseMs: LEASE } });

const portState = (port: number, key = 'node/alpha/0001'): PortState => ({
  version: 1,
  entries: [{ key, kind: 'node', engine: 'redis', cacheClusterId: key.split('/')[1]!, cacheNodeId: key.split('/')[2]!, address: `${key.split('/')[1]}.cache.example`, targetPort: 6379, listenPort: port }],
  released: [],
});
const mapItem = (term: number, writer: string, state: PortState): MapItem => ({ version: randomUUID(), term, writer, state });

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

  t.same(await s.releaseLease(B, r1.item.version, r1.item), { kind: 'conflict' }, 'the standby cannot release the leader');
  t.same(await s.releaseLease(A, a.item.version, r1.item), { kind: 'conflict' }, 'a release naming an old version is refused');
  const releasedVersion = randomUUID();
  t.same(await s.releaseLease(A, r1.item.version, { ...r1.item, version: releasedVersion }), { kind: 'accepted' });
  t.same(await s.readLease(), { kind: 'item', item: { holder: null, version: releasedVersion, term: 1, leaseMs: LEASE } }, 'released: no holder, the term kept');
  t.same(await s.writeLease(acquire(B, releasedVersion, 2)), { kind: 'accepted' }, 'the standby takes a released lease at once');
});

t.test('map: first write, compare-and-set on the version, and a stale term refused even with the latest version', async (t) => {
  const s = store('map');
  t.same(await s.readMap(), { kind: 'absent' });
  const m1 = mapItem(1, A, portState(6379));
  t.same(await s.writeMap(null, m1), { kind: 'accepted' });
  t.same(await s.writeMap(null, mapItem(1, B, portState(6380))), { kind: 'conflict' }, 'a second first write is refused');
  t.same(await s.readMap(), { kind: 'ok', item: m1 });

  const m2 = mapItem(1, A, portState(6379, 'node/alpha/0002'));
  t.same(await s.writeMap(m1.version, m2), { kind: 'accepted' });
  t.same(await s.writeMap(m1.version, mapItem(1, A, portState(6381))), { kind: 'conflict' }, 'a writer planning from an old map is refused');

  // B takes over (term 2) and claims the map from the version it read.
  const claim = mapItem(2, B, m2.state);
  t.same(await s.writeMap(m2.version, claim), { kind: 'accepted' });
  t.same(await s.writeMap(m2.version, mapItem(1, A, portState(6382))), { kind: 'conflict' }, 'the paused leader, planning from the map before the claim, is refused');
  t.same(await s.writeMap(claim.version, mapItem(1, A, portState(6382))), { kind: 'conflict' }, 'the paused leader is refused even when it read the claimed map: its term is older');
  const m3 = mapItem(2, B, portState(6383));
  t.same(await s.writeMap(claim.version, m3), { kind: 'accepted' }, 'the new leader writes on');
  t.same(await s.readMap(), { kind: 'ok', item: m3 });
});

t.test('everything read back is validated: a foreign or corrupt item is never used', async (t) => {
  const raw = dynamo.client();
  const put = (Item: Record<string, { S: string } | { N: string }>) => raw.send(new PutItemCommand({ TableName: 'cachenat', Item }));
  const s = store('hostile');
  await put({ pk: { S: 'hostile#lease' }, holder: { S: 'i-0aaaaaaaaaaaaaaaa; rm -rf /' }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '10000' } });
  t.match(await s.readLease(), { kind: 'unavailable', error: /invalid lease item hostile#lease: holder .* is not an instance id/ });
  await put({ pk: { S: 'hostile#lease' }, holder: { S: A }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '100' } });
  t.match(await s.readLease(), { kind: 'unavailable', error: /leaseMs: expected a lease from 3s to 1h/ });
  await put({ pk: { S: 'hostile#lease' }, holder: { S: A }, version: { S: randomUUID() }, term: { N: '1' }, leaseMs: { N: '10000' }, note: { S: 'x' } });
  t.match(await s.readLease(), { kind: 'unavailable', error: /unknown attribute "note"/ });

  const good = mapAttributes('hostile', mapItem(1, A, portState(6379)));
  if (!('attributes' in good)) throw new Error('unexpected');
  const text = serializeState(portState(6379));
  const clash = JSON.stringify({ ...portState(6379), entries: [...portState(6379).entries, ...portState(6379, 'node/alpha/0002').entries] });
  const cases: [string, string, RegExp][] = [
    ['truncated map', text.slice(0, 40), /port map: not JSON/],
    ['two targets on one port', clash, /both listen on :6379/],
    ['a shell word in an ip', text.replace('"listenPort": 6379', '"listenPort": 6379, "ip": "10.0.0.1 -j ACCEPT"'), /port map: entries\.0\.ip/],
  ];
  for (const [name, map, problem] of cases) {
    await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: { ...good.attributes, map: { S: map } } }));
    t.match(await s.readMap(), { kind: 'invalid', problem }, name);
  }
  await raw.send(new PutItemCommand({ TableName: 'cachenat', Item: { ...good.attributes, term: { N: '-1' } } }));
  t.match(await s.readMap(), { kind: 'invalid', problem: /term/ });
  await raw.send(new DeleteItemCommand({ TableName: 'cachenat', Key: { pk: { S: 'hostile#map' } } }));
  t.same(await s.readMap(), { kind: 'absent' });
});

t.test('a map too large for one item is not sent', async (t) => {
  const s = store('large');
  const entries = Array.from({ length: 3000 }, (_, i) => portState(1024 + i, `node/c${i}/0001`).entries[0]!);
  t.match(await s.writeMap(null, mapItem(1, A, { version: 1, entries, released: [] })), { kind: 'too-large', problem: /over the 358400 that fit/ });
});

t.test('no table, no server: unavailable, with what to do', async (t) => {
  const missing = store('g', 'no-such-table');
  t.match(await missing.readLease(), { kind: 'unavailable', error: /table no-such-table does not exist \(run "cachenat ha init"\)/ });
  t.match(await missing.writeLease(acquire(A, null, 1)), { kind: 'unavailable', error: /does not exist/ });
  // A port nobody listens on: the client's own error, not an exception.
  const closed = new DynamoHaStore({ region: 'us-east-1', table: 'cachenat', group: 'g', timeoutMs: 1000, endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  t.teardown(() => closed.close());
  t.match(await closed.readLease(), { kind: 'unavailable', error: /ECONNREFUSED/ });
  t.match(await closed.writeMap(null, mapItem(1, A, portState(6379))), { kind: 'unavailable' });
  t.ok(createDynamoClient({ region: 'us-east-1', timeoutMs: 1000 }), 'a client without an endpoint override builds');
});

t.test('the members item: each instance writes its own heartbeat attribute; one read finds them all, validated, and no other group\'s', async (t) => {
  const s = store('members');
  const other = store('members-other');
  t.same(await s.readMembers(), { kind: 'ok', members: [], invalid: [] }, 'no item yet: nobody');
  t.same(await s.writeMember({ instanceId: A, role: 'leader', beat: randomUUID(), leaseMs: LEASE }), { kind: 'accepted' }, 'the first heartbeat creates the item');
  const beat = randomUUID();
  t.same(await s.writeMember({ instanceId: B, role: 'standby', beat, leaseMs: LEASE }), { kind: 'accepted' });
  t.same(await other.writeMember({ instanceId: B, role: 'leader', beat: randomUUID(), leaseMs: LEASE }), { kind: 'accepted' });
  const read = await s.readMembers();
  t.equal(read.kind, 'ok');
  if (read.kind !== 'ok') return;
  t.same(read.members.map((m) => m.instanceId).sort(), [A, B], 'both members of this group, none of the other');
  t.same(read.members.find((m) => m.instanceId === B), { instanceId: B, role: 'standby', beat, leaseMs: LEASE });
  const next = randomUUID();
  t.same(await s.writeMember({ instanceId: B, role: 'leader', beat: next, leaseMs: LEASE }), { kind: 'accepted' });
  const again = await s.readMembers();
  t.same(again.kind === 'ok' && again.members.find((m) => m.instanceId === B), { instanceId: B, role: 'leader', beat: next, leaseMs: LEASE }, 'a heartbeat replaces only its own attribute');
  t.same(again.kind === 'ok' && again.members.find((m) => m.instanceId === A)?.role, 'leader', "the other's is untouched");
  const { UpdateItemCommand } = await import('@aws-sdk/client-dynamodb');
  await dynamo.client().send(new UpdateItemCommand({ TableName: 'cachenat', Key: { pk: { S: 'members#members' } }, UpdateExpression: 'SET #a = :bad, #x = :x', ExpressionAttributeNames: { '#a': A, '#x': 'intruder' }, ExpressionAttributeValues: { ':bad': { M: { role: { S: 'boss' }, beat: { S: randomUUID() }, leaseMs: { N: '10000' } } }, ':x': { S: 'y' } } }));
  const tampered = await s.readMembers();
  t.match(tampered, { kind: 'ok', invalid: [/"i-0a+": role "boss" is not leader or standby/, /"intruder": is not an instance id/] }, 'entries that do not validate are named, not used');
  t.same(tampered.kind === 'ok' && tampered.members.map((m) => m.instanceId), [B]);
});
