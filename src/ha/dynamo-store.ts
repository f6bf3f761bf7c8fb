// The HA group's two items in DynamoDB (docs/design/ha.md): the lease and
// the shared port map. Every write carries its ConditionExpression (built in
// src/core/ha/items.ts); a refused condition is a typed `conflict`, never an
// exception; everything read back is validated before anyone sees it; any
// other failure is `unavailable`, which the caller meets fail-static.

import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import type { LeaseItem, LeaseRead, LeaseWrite } from '../core/ha/lease.js';
import { singleAttemptClientConfig, type AwsCredentials } from '../aws/client-settings.js';
import {
  leaseAttributes,
  leaseKey,
  leaseReleaseCondition,
  leaseWriteCondition,
  mapAttributes,
  mapKey,
  mapWriteCondition,
  membersKey,
  memberUpdate,
  readLeaseItem,
  readMembersItem,
  readMapItem,
  type Attributes,
  type Condition,
  type ItemRead,
  type MapItem,
  type MemberItem,
} from '../core/ha/items.js';

export interface HaStoreOptions {
  region: string;
  table: string;
  group: string;
  /** ha.endpoint: a local DynamoDB (tests, the lab). */
  endpoint?: string;
  /** Budget of one request; the daemon's beat is the retry. */
  timeoutMs: number;
  credentials?: AwsCredentials;
  /** A ready client, used as given. */
  client?: DynamoDBClient;
}

/** How the table answered a conditional write. */
export type WriteOutcome = { kind: 'accepted' } | { kind: 'conflict' } | { kind: 'unavailable'; error: string };

/** A read: the validated item, no item, an item that failed validation, or no answer. */
export type StoreRead<T> = ItemRead<T> | { kind: 'unavailable'; error: string };

/** How long `ha init` waits for a new table to become ACTIVE. */
const TABLE_ACTIVE_WAIT_MS = 60_000;

/**
 * One attempt per request: an SDK retry of a conditional write whose first
 * attempt landed would be refused by its own write, and read as losing the
 * lease. A lost answer is `unavailable`; the next read tells what happened.
 */
export function createDynamoClient(options: Pick<HaStoreOptions, 'region' | 'endpoint' | 'timeoutMs' | 'credentials'>): DynamoDBClient {
  return new DynamoDBClient(singleAttemptClientConfig(options));
}

const nameOf = (err: unknown): string => (err instanceof Error ? err.name : typeof err);

function describe(err: unknown, table: string): string {
  const name = nameOf(err);
  if (name === 'ResourceNotFoundException') return `table ${table} does not exist (run "cachenat ha init")`;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  return `${name}${typeof code === 'string' && code !== name ? ` ${code}` : ''}: ${message}`.slice(0, 300);
}

export class DynamoHaStore {
  readonly table: string;
  readonly group: string;
  readonly #client: DynamoDBClient;
  readonly #ownsClient: boolean;

  constructor(options: HaStoreOptions) {
    this.table = options.table;
    this.group = options.group;
    this.#client = options.client ?? createDynamoClient(options);
    this.#ownsClient = options.client === undefined;
  }

  /** Closes the SDK client's sockets (when this store made it). */
  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }

  /**
   * `cachenat ha init`: creates the table (partition key "pk", string,
   * on-demand) unless it exists, and waits until it is ACTIVE. Idempotent.
   * Throws what the API said when it cannot.
   */
  async ensureTable(): Promise<'created' | 'exists'> {
    let outcome: 'created' | 'exists' = 'created';
    try {
      await this.#client.send(
        new CreateTableCommand({
          TableName: this.table,
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    } catch (err) {
      if (!(err instanceof ResourceInUseException)) throw err;
      outcome = 'exists';
    }
    const deadline = Date.now() + TABLE_ACTIVE_WAIT_MS;
    for (;;) {
      const { Table } = await this.#client.send(new DescribeTableCommand({ TableName: this.table }));
      const key = Table?.KeySchema ?? [];
      const pk = Table?.AttributeDefinitions?.find((a) => a.AttributeName === 'pk');
      if (key.length !== 1 || key[0]?.AttributeName !== 'pk' || key[0]?.KeyType !== 'HASH' || pk?.AttributeType !== 'S') {
        throw new Error(`table ${this.table} exists but its key is not the partition key "pk" (string) alone; use another ha.table`);
      }
      if (Table?.TableStatus === 'ACTIVE') return outcome;
      if (Date.now() > deadline) throw new Error(`table ${this.table} is still ${Table?.TableStatus ?? 'unknown'} after ${TABLE_ACTIVE_WAIT_MS / 1000}s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /** The lease item, strongly consistent. An item that does not validate is met fail-static: reported, never used. */
  async readLease(): Promise<LeaseRead> {
    const read = await this.#get(leaseKey(this.group), (raw) => readLeaseItem(this.group, raw));
    if (read.kind === 'ok') return { kind: 'item', item: read.item };
    if (read.kind === 'invalid') return { kind: 'unavailable', error: `invalid ${read.problem}` };
    return read;
  }

  /** Acquire or renew, on condition of the version the decision read (or of no item). */
  async writeLease(write: LeaseWrite): Promise<WriteOutcome> {
    return this.#put(leaseAttributes(this.group, write.item), leaseWriteCondition(write.expect));
  }

  /** A planned handover: clears the holder, only while `expect` is still this holder's version. */
  async releaseLease(self: string, expect: string, item: LeaseItem): Promise<WriteOutcome> {
    return this.#put(leaseAttributes(this.group, { ...item, holder: null }), leaseReleaseCondition(self, expect));
  }

  /** The shared map, strongly consistent, validated through the port-map codec. */
  async readMap(): Promise<StoreRead<MapItem>> {
    return this.#get(mapKey(this.group), (raw) => readMapItem(this.group, raw));
  }

  /** A map write, on condition that the map is still `expect` and no later term wrote it. */
  async writeMap(expect: string | null, item: MapItem): Promise<WriteOutcome | { kind: 'too-large'; problem: string }> {
    const built = mapAttributes(this.group, item);
    if ('problem' in built) return { kind: 'too-large', problem: built.problem };
    return this.#put(built.attributes, mapWriteCondition(expect, item.term));
  }

  /** This instance's heartbeat: its own attribute of the members item (nobody else writes it). */
  async writeMember(item: MemberItem): Promise<WriteOutcome> {
    const update = memberUpdate(item);
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: { S: membersKey(this.group) } },
          UpdateExpression: update.expression,
          ExpressionAttributeNames: update.names,
          ExpressionAttributeValues: update.values,
        }),
      );
      return { kind: 'accepted' };
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }

  /** Every instance's heartbeat (one strongly consistent GetItem); entries that do not validate are named in `invalid`. */
  async readMembers(): Promise<{ kind: 'ok'; members: MemberItem[]; invalid: string[] } | { kind: 'unavailable'; error: string }> {
    try {
      const { Item } = await this.#client.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: membersKey(this.group) } }, ConsistentRead: true }));
      return { kind: 'ok', ...readMembersItem(this.group, Item) };
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }

  async #get<T>(pk: string, validate: (raw: Attributes | undefined) => ItemRead<T>): Promise<StoreRead<T>> {
    let raw: Record<string, AttributeValue> | undefined;
    try {
      ({ Item: raw } = await this.#client.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: pk } }, ConsistentRead: true })));
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
    return validate(raw);
  }

  async #put(item: Attributes, condition: Condition): Promise<WriteOutcome> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: condition.expression,
          ExpressionAttributeNames: condition.names,
          ...(condition.values === undefined ? {} : { ExpressionAttributeValues: condition.values }),
        }),
      );
      return { kind: 'accepted' };
    } catch (err) {
      if (nameOf(err) === 'ConditionalCheckFailedException') return { kind: 'conflict' };
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }
}
