// The simulation's DynamoDB model against dynalite (the real SDK): the same
// seeded sequence of writes and reads, with the conditions and updates the
// HA code builds (src/core/ha/items.ts) and a few more, must give the same
// outcome (accepted, or refused by its condition) and leave the same items.

import t from 'tap';
import { DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { leaseReleaseCondition, leaseWriteCondition, mapWriteCondition, memberUpdate, type Attributes, type Condition } from '../../../src/core/ha/items.js';
import { DynamoHaStore } from '../../../src/ha/dynamo-store.js';
import { startDynalite } from '../../support/dynalite.js';
import { DynamoModel } from './dynamo-model.js';
import { Random } from './scheduler.js';

const OPS = Number(process.env.MODEL_OPS ?? 400);
const TABLE = 'model-check';
const dynamo = await startDynalite(t);
const client = dynamo.client();
await new DynamoHaStore({ region: 'us-east-1', table: TABLE, group: 'g', timeoutMs: 2000, client }).ensureTable();
const model = new DynamoModel(TABLE);

const KEYS = ['g#lease', 'g#map', 'g#members'];
const VERSIONS = ['ver-00000001', 'ver-00000002', 'ver-00000003'];
const HOLDERS = ['i-0aaaaaaaaaaaaaaaa', 'i-0bbbbbbbbbbbbbbbb'];

type Op =
  | { kind: 'put'; item: Attributes; condition?: Condition }
  | { kind: 'update'; key: string; expression: string; names: Record<string, string>; values?: Attributes; condition?: Condition }
  | { kind: 'delete'; key: string; condition?: Condition }
  | { kind: 'get'; key: string };

function drawOp(r: Random): Op {
  const key = r.pick(KEYS);
  const version = (): string => r.pick(VERSIONS);
  const item = (): Attributes => ({ pk: { S: key }, version: { S: version() }, term: { N: String(r.int(1, 4)) }, ...(r.chance(0.7) ? { holder: { S: r.pick(HOLDERS) } } : {}) });
  const condition = (): Condition | undefined =>
    r.pick([
      () => undefined,
      () => leaseWriteCondition(null),
      () => leaseWriteCondition(version()),
      () => leaseWriteCondition([version(), version()]),
      () => leaseWriteCondition([version(), version(), version()]),
      () => leaseReleaseCondition(r.pick(HOLDERS), [version(), version()]),
      () => mapWriteCondition(version(), r.int(1, 4)),
      () => mapWriteCondition(null, 1),
      () => ({ expression: 'attribute_exists(#pk) AND NOT #term > :t', names: { '#pk': 'pk', '#term': 'term' }, values: { ':t': { N: String(r.int(1, 4)) } } }),
      () => ({ expression: '#holder <> :h OR (#term >= :t AND #version = :v)', names: { '#holder': 'holder', '#term': 'term', '#version': 'version' }, values: { ':h': { S: r.pick(HOLDERS) }, ':t': { N: String(r.int(1, 4)) }, ':v': { S: version() } } }),
    ])();
  const u = r.next();
  if (u < 0.45) {
    const c = condition();
    return { kind: 'put', item: item(), ...(c ? { condition: c } : {}) };
  }
  if (u < 0.65) {
    const c = condition();
    const member = memberUpdate({ instanceId: r.pick(HOLDERS), role: r.pick(['leader', 'standby', 'stopped'] as const), beat: version(), leaseMs: 3000, config: { 'ports.reuseAfter': '0123456789abcdef' } });
    const update = r.chance(0.7) ? member : { expression: 'REMOVE #self', names: { '#self': r.pick(HOLDERS) } };
    return { kind: 'update', key, ...update, ...(c ? { condition: c } : {}) };
  }
  if (u < 0.75) {
    const c = condition();
    return { kind: 'delete', key, ...(c ? { condition: c } : {}) };
  }
  return { kind: 'get', key };
}

/** The SDK input of an op (the same object goes to the model). */
function inputOf(op: Op): { name: string; input: Record<string, unknown> } {
  const cond = (c: Condition | undefined, names: Record<string, string> = {}, values: Attributes = {}) =>
    c === undefined
      ? Object.keys(names).length === 0
        ? {}
        : { ExpressionAttributeNames: names, ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}) }
      : { ConditionExpression: c.expression, ExpressionAttributeNames: { ...names, ...c.names }, ...(Object.keys({ ...values, ...c.values }).length ? { ExpressionAttributeValues: { ...values, ...c.values } } : {}) };
  switch (op.kind) {
    case 'put':
      return { name: 'PutItemCommand', input: { TableName: TABLE, Item: op.item, ...cond(op.condition) } };
    case 'update':
      return { name: 'UpdateItemCommand', input: { TableName: TABLE, Key: { pk: { S: op.key } }, UpdateExpression: op.expression, ...cond(op.condition, op.names, op.values ?? {}) } };
    case 'delete':
      return { name: 'DeleteItemCommand', input: { TableName: TABLE, Key: { pk: { S: op.key } }, ...cond(op.condition) } };
    default:
      return { name: 'GetItemCommand', input: { TableName: TABLE, Key: { pk: { S: op.key } }, ConsistentRead: true } };
  }
}

const COMMANDS = { PutItemCommand, UpdateItemCommand, DeleteItemCommand, GetItemCommand } as const;

t.test(`${OPS} seeded operations: the model and dynalite agree on every outcome and every item`, async (t) => {
  const r = new Random(19);
  let refused = 0;
  let agreed = 0;
  for (let i = 0; i < OPS; i++) {
    const op = drawOp(r);
    const { name, input } = inputOf(op);
    const Command = COMMANDS[name as keyof typeof COMMANDS] as unknown as new (input: unknown) => Parameters<typeof client.send>[0];
    const real = await client
      .send(new Command(input))
      .then((out) => ({ ok: true as const, item: (out as { Item?: Attributes }).Item }))
      .catch((err: Error) => ({ ok: false as const, error: err.name }));
    let mine: { ok: true; item?: Attributes } | { ok: false; error: string };
    try {
      const out = model.apply(name, structuredClone(input)) as { Item?: Attributes };
      mine = { ok: true, item: out.Item };
    } catch (err) {
      mine = { ok: false, error: (err as Error).name };
    }
    if (!real.ok) refused++;
    if (JSON.stringify(real) !== JSON.stringify(mine)) {
      t.fail(`op ${i} ${name} ${JSON.stringify(input)}: dynalite ${JSON.stringify(real)}, the model ${JSON.stringify(mine)}`);
      return;
    }
    agreed++;
  }
  for (const key of KEYS) {
    const { Item } = await client.send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: key } }, ConsistentRead: true }));
    t.same(model.items.get(key), Item, `${key}: the same item at the end`);
  }
  t.equal(agreed, OPS, `${agreed} operations agreed, ${refused} of them refused by their condition`);
  t.ok(refused > OPS / 10 && refused < OPS * 0.9, 'the conditions both held and failed often enough to mean something');
});
