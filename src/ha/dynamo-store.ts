// The HA group's items in DynamoDB (docs/design/ha.md): the lease, the
// members item, and the shared port map (a head item and its chunks). Every
// write carries its ConditionExpression (built in src/core/ha/items.ts); a
// refused condition is a typed `conflict`, never an exception; everything
// read back is validated before anyone sees it; any other failure is
// `unavailable`, which the caller meets fail-static. Every call takes the
// caller's deadline as an AbortSignal (the node bounds each call by its time
// budget, and a fenced call by the end of its confirmed hold).

import { DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { LeaseItem, LeaseRead, LeaseWrite } from '../core/ha/lease.js';
import { assembleMap } from '../core/ha/map-chunks.js';
import type { PortState } from '../core/ports/port-state.js';
import { singleAttemptClientConfig, type AwsCredentials } from '../aws/client-settings.js';
import { ensureHaTable, nameOf } from './table-setup.js';
import {
  chunkAttributes,
  chunkKey,
  leaseAttributes,
  leaseKey,
  leaseReleaseCondition,
  leaseWriteCondition,
  mapHeadAttributes,
  mapKey,
  mapWriteCondition,
  membersKey,
  memberUpdate,
  readChunkItem,
  readLeaseItem,
  readMapHead,
  readMembersItem,
  type Attributes,
  type Condition,
  type ItemRead,
  type MapItem,
  type MapWritePlan,
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

type MapWrite = Extract<MapWritePlan, { kind: 'write' }>;

/**
 * One attempt per request: an SDK retry of a conditional write whose first
 * attempt landed would be refused by its own write, and read as losing the
 * lease. A lost answer is `unavailable`; the next read tells what happened.
 */
export function createDynamoClient(options: Pick<HaStoreOptions, 'region' | 'endpoint' | 'timeoutMs' | 'credentials'>): DynamoDBClient {
  return new DynamoDBClient(singleAttemptClientConfig(options));
}



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
  /** Chunks of the map last read or written (never changed once written), by key. */
  readonly #chunks = new Map<string, PortState>();
  #lastMap: MapItem | undefined;

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

  /** `cachenat ha init` (src/ha/table-setup.ts): creates the table unless it exists, and waits until it is ACTIVE. */
  ensureTable(options: { waitMs?: number; pollMs?: number } = {}): Promise<'created' | 'exists'> {
    return ensureHaTable(this.#client, this.table, options);
  }

  /** The lease item, strongly consistent. An item that does not validate is met fail-static: reported, never used. */
  async readLease(signal?: AbortSignal): Promise<LeaseRead> {
    const read = await this.#get(leaseKey(this.group), (raw) => readLeaseItem(this.group, raw), signal);
    if (read.kind === 'ok') return { kind: 'item', item: read.item };
    if (read.kind === 'invalid') return { kind: 'unavailable', error: `invalid ${read.problem}` };
    return read;
  }

  /** Acquire or renew, on condition of the version the decision read (or of no item, or of the versions a holder may have written). */
  async writeLease(write: LeaseWrite, signal?: AbortSignal): Promise<WriteOutcome> {
    return this.#put(leaseAttributes(this.group, write.item), leaseWriteCondition(write.expect), signal);
  }

  /** A planned handover: clears the holder, only while the version is still one this holder may have written. */
  async releaseLease(self: string, expect: readonly string[], item: LeaseItem, signal?: AbortSignal): Promise<WriteOutcome> {
    return this.#put(leaseAttributes(this.group, { ...item, holder: null }), leaseReleaseCondition(self, expect), signal);
  }

  /**
   * The shared map: its head, strongly consistent, then the chunks it lists
   * that this store has not read before (chunks never change), each
   * validated, and the whole through the port-map codec. A head unchanged
   * since the last read returns the map read then. A chunk gone since the
   * head was read (the leader wrote a newer map and removed it) makes one
   * more attempt from a fresh head; then the read is `unavailable`.
   */
  async readMap(signal?: AbortSignal): Promise<StoreRead<MapItem>> {
    for (let attempt = 1; ; attempt++) {
      const head = await this.#get(mapKey(this.group), (raw) => readMapHead(this.group, raw), signal);
      if (head.kind !== 'ok') return head;
      if (this.#lastMap?.version === head.item.version) return { kind: 'ok', item: this.#lastMap };
      const { term, chunks } = head.item;
      const missing = chunks.filter((c) => !this.#chunks.has(chunkKey(this.group, term, c)));
      const reads = await Promise.all(missing.map((c) => this.#get(chunkKey(this.group, term, c), (raw) => chunkRead(readChunkItem(this.group, term, c, raw)), signal)));
      const failed = reads.find((r) => r.kind !== 'ok');
      if (failed?.kind === 'absent' && attempt < 2) continue;
      if (failed?.kind === 'absent') return { kind: 'unavailable', error: `map item ${mapKey(this.group)}: a chunk it lists is gone (the map changed while it was read); reading again next pass` };
      if (failed !== undefined) return failed as Exclude<typeof failed, { kind: 'ok' } | { kind: 'absent' }>;
      missing.forEach((c, i) => this.#chunks.set(chunkKey(this.group, term, c), (reads[i] as { item: PortState }).item));
      const assembled = assembleMap(chunks.map((c) => this.#chunks.get(chunkKey(this.group, term, c))!));
      if ('problem' in assembled) return { kind: 'invalid', problem: `map item ${mapKey(this.group)}: port map: ${assembled.problem}` };
      this.#remember({ ...head.item, state: assembled.state });
      return { kind: 'ok', item: this.#lastMap! };
    }
  }

  /**
   * A map write (planMapWrite): the new chunks first, then the head, on
   * condition that the map is still `expect` and no later term wrote it;
   * once the head is accepted, the chunks it no longer lists are removed
   * (awaited, so none of them can be removed after a later head lists the
   * same content again). A head refused or unanswered leaves its chunks:
   * they may be listed by a head that landed. `fence` is asked right before
   * the head is sent, with nothing awaited in between: the head's deadline
   * (the end of the writer's confirmed hold), or undefined to send nothing.
   */
  async writeMap(plan: MapWrite, signal: AbortSignal | undefined, fence?: () => AbortSignal | undefined): Promise<WriteOutcome | { kind: 'not-sent' }> {
    const { head, puts, drops, state } = plan;
    const written = await Promise.all(puts.map((p) => this.#put(chunkAttributes(this.group, head.term, p, p.data), undefined, signal)));
    const failed = written.find((w) => w.kind !== 'accepted');
    if (failed !== undefined) return failed.kind === 'unavailable' ? failed : { kind: 'unavailable', error: 'a chunk write was refused' };
    const headSignal = fence === undefined ? signal : fence();
    if (fence !== undefined && headSignal === undefined) return { kind: 'not-sent' };
    const outcome = await this.#put(mapHeadAttributes(this.group, head), mapWriteCondition(plan.expect, head.term), headSignal);
    if (outcome.kind !== 'accepted') return outcome;
    this.#remember({ ...head, state });
    await Promise.all(drops.map((d) => this.#delete(chunkKey(this.group, d.term, d), headSignal)));
    return outcome;
  }

  /** This instance's heartbeat: its own attribute of the members item (nobody else writes it). */
  async writeMember(item: MemberItem, signal?: AbortSignal): Promise<WriteOutcome> {
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
        { abortSignal: signal },
      );
      return { kind: 'accepted' };
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }

  /** Every instance's heartbeat (one strongly consistent GetItem); entries that do not validate are named in `invalid`. */
  async readMembers(signal?: AbortSignal): Promise<{ kind: 'ok'; members: MemberItem[]; invalid: string[] } | { kind: 'unavailable'; error: string }> {
    try {
      const { Item } = await this.#client.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: membersKey(this.group) } }, ConsistentRead: true }), { abortSignal: signal });
      return { kind: 'ok', ...readMembersItem(this.group, Item) };
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }

  /** The map last read or written, and only its chunks kept. */
  #remember(map: MapItem): void {
    this.#lastMap = map;
    const keep = new Set(map.chunks.map((c) => chunkKey(this.group, map.term, c)));
    for (const key of this.#chunks.keys()) if (!keep.has(key)) this.#chunks.delete(key);
  }

  async #get<T>(pk: string, validate: (raw: Attributes | undefined) => ItemRead<T>, signal: AbortSignal | undefined): Promise<StoreRead<T>> {
    let raw: Record<string, AttributeValue> | undefined;
    try {
      ({ Item: raw } = await this.#client.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: pk } }, ConsistentRead: true }), { abortSignal: signal }));
    } catch (err) {
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
    return validate(raw);
  }

  async #put(item: Attributes, condition: Condition | undefined, signal: AbortSignal | undefined): Promise<WriteOutcome> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: item,
          ...(condition === undefined
            ? {}
            : { ConditionExpression: condition.expression, ExpressionAttributeNames: condition.names, ...(condition.values === undefined ? {} : { ExpressionAttributeValues: condition.values }) }),
        }),
        { abortSignal: signal },
      );
      return { kind: 'accepted' };
    } catch (err) {
      if (nameOf(err) === 'ConditionalCheckFailedException') return { kind: 'conflict' };
      return { kind: 'unavailable', error: describe(err, this.table) };
    }
  }

  /** Best effort: a chunk left behind costs storage, never correctness. */
  async #delete(pk: string, signal: AbortSignal | undefined): Promise<void> {
    await this.#client.send(new DeleteItemCommand({ TableName: this.table, Key: { pk: { S: pk } } }), { abortSignal: signal }).catch(() => undefined);
  }
}

/** A chunk read in the shape #get validates to. */
const chunkRead = (read: ReturnType<typeof readChunkItem>): ItemRead<PortState> => (read.kind === 'ok' ? { kind: 'ok', item: read.state } : read);
