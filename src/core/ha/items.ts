// The DynamoDB items of one HA group, as pure functions: their keys, their
// attributes, the condition each write carries, and the validation of what
// comes back. The lease item, the members item (heartbeats), and the shared
// map: a head item fenced by term, and content-named chunk items
// (map-chunks.ts). Everything read from the table is untrusted: an item that
// does not validate is reported as invalid, never half-used; the port map
// in the chunks goes through the same codec as the state file.
// (docs/design/ha.md describes the protocol.)

import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { isHaToken, isInstanceId, leaseProblem, MAX_LEASE_MS, show } from '../grammar.js';
import type { PortState } from '../ports/port-state.js';
import type { LeaseItem } from './lease.js';
import { bucketOf, canonicalOrder, chunksOf, decodeChunk, encodeChunk, MAP_BUCKETS, MAX_CHUNK_BYTES, type ChunkRef, type MapChunk } from './map-chunks.js';

export type Attributes = Record<string, AttributeValue>;

/** The partition key of the lease item and of the map item of `group` (one table can serve several pairs). */
export const leaseKey = (group: string): string => `${group}#lease`;
export const mapKey = (group: string): string => `${group}#map`;

/** A condition for one write: its expression and the names and values it uses. */
export interface Condition {
  expression: string;
  names: Record<string, string>;
  values?: Attributes;
}

export type ItemRead<T> = { kind: 'ok'; item: T } | { kind: 'absent' } | { kind: 'invalid'; problem: string };

const numberText = (n: number): string => String(n);

/** A whole number from a DynamoDB N attribute within [min, max], or undefined. */
function wholeNumber(value: AttributeValue | undefined, min: number, max: number): number | undefined {
  const text = value?.N;
  if (text === undefined || !/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

/** A holder's `ha.lease` from an N attribute, or what is wrong with it. */
function leaseMsOf(value: AttributeValue | undefined): number | string {
  const leaseMs = wholeNumber(value, 0, MAX_LEASE_MS);
  if (leaseMs === undefined) return `${show(value)} is not a whole number`;
  return leaseProblem(leaseMs) ?? leaseMs;
}

/** Attributes the item may hold; any other is a sign of a foreign writer. */
function unknownAttribute(raw: Attributes, allowed: readonly string[]): string | undefined {
  return Object.keys(raw).find((k) => !allowed.includes(k));
}

// ── the lease item ─────────────────────────────────────────────────────────

const LEASE_ATTRIBUTES = ['pk', 'holder', 'version', 'term', 'leaseMs'] as const;

export function leaseAttributes(group: string, item: LeaseItem): Attributes {
  return {
    pk: { S: leaseKey(group) },
    ...(item.holder === null ? {} : { holder: { S: item.holder } }),
    version: { S: item.version },
    term: { N: numberText(item.term) },
    leaseMs: { N: numberText(item.leaseMs) },
  };
}

/** A lease item from the table → the item, or why it cannot be trusted. */
export function readLeaseItem(group: string, raw: Attributes | undefined): ItemRead<LeaseItem> {
  if (raw === undefined) return { kind: 'absent' };
  const problem = (text: string): ItemRead<LeaseItem> => ({ kind: 'invalid', problem: `lease item ${leaseKey(group)}: ${text}` });
  if (raw.pk?.S !== leaseKey(group)) return problem(`key ${show(raw.pk?.S)} is not ${leaseKey(group)}`);
  const extra = unknownAttribute(raw, LEASE_ATTRIBUTES);
  if (extra !== undefined) return problem(`unknown attribute ${show(extra)}`);
  const holder = raw.holder === undefined ? null : raw.holder.S;
  if (holder !== null && !isInstanceId(holder)) return problem(`holder ${show(holder)} is not an instance id`);
  const version = raw.version?.S;
  if (!isHaToken(version)) return problem(`version ${show(version)} is not a token of 8-64 letters, digits and hyphens`);
  const term = wholeNumber(raw.term, 1, Number.MAX_SAFE_INTEGER);
  if (term === undefined) return problem(`term ${show(raw.term)} is not a whole number from 1`);
  const leaseMs = leaseMsOf(raw.leaseMs);
  if (typeof leaseMs === 'string') return problem(`leaseMs: ${leaseMs}`);
  return { kind: 'ok', item: { holder, version, term, leaseMs } };
}

/** `#version` is one of `versions` (one, or the few a holder may have written whose answers were lost). */
function versionIn(versions: readonly string[]): { expression: string; values: Attributes } {
  const values: Attributes = Object.fromEntries(versions.map((v, i) => [i === 0 ? ':expect' : `:expect${i}`, { S: v }]));
  const expression = Object.keys(values).map((name) => `#version = ${name}`).join(' OR ');
  return { expression: versions.length > 1 ? `(${expression})` : expression, values };
}

/** Acquire and renew: the item must be absent (expect null) or still carry the version read (or, renewing, one this holder may have written). */
export function leaseWriteCondition(expect: string | null | readonly string[]): Condition {
  if (expect === null) return { expression: 'attribute_not_exists(#pk)', names: { '#pk': 'pk' } };
  const { expression, values } = versionIn(typeof expect === 'string' ? [expect] : expect);
  return { expression, names: { '#version': 'version' }, values };
}

/** Release: only the holder, and only while the version is still one it may have written (a standby that took over is never cleared). */
export function leaseReleaseCondition(self: string, expect: string | readonly string[]): Condition {
  const { expression, values } = versionIn(typeof expect === 'string' ? [expect] : expect);
  return {
    expression: `${expression} AND #holder = :self`,
    names: { '#version': 'version', '#holder': 'holder' },
    values: { ...values, ':self': { S: self } },
  };
}

// ── the map: one head item, chunk items (map-chunks.ts) ─────────────────────

/** One version of the shared map as its head lists it: who wrote it under which term, and its chunks. */
export interface MapHead {
  /** Fresh on every write: the compare-and-set token. */
  version: string;
  /** The lease term of its writer: the fencing token. */
  term: number;
  writer: string;
  chunks: ChunkRef[];
}

/** The shared map, read whole: its head and the port map its chunks make. */
export interface MapItem extends MapHead {
  state: PortState;
}

/**
 * A chunk's key: its writer's term, the write that put it, and its content.
 * Chunks are never changed. A new term writes its own (its claim), so
 * nothing an older term's writer does to its chunks can touch a map of a
 * later term; and content put again by a later write is a new item, so a
 * delete of the earlier one, however late it lands, cannot touch it.
 */
export const chunkKey = (group: string, term: number, ref: Pick<ChunkRef, 'id' | 'put'>): string => `${group}#chunk#${term}#${ref.put}#${ref.id}`;

const HEAD_ATTRIBUTES = ['pk', 'version', 'term', 'writer', 'chunks'] as const;
const CHUNK_ID = /^[0-9a-f]{64}$/;
/** Any chunk item is under DynamoDB's 400 KB. */
const MAX_STORED_CHUNK_BYTES = 400 * 1024;

export function mapHeadAttributes(group: string, head: MapHead): Attributes {
  return {
    pk: { S: mapKey(group) },
    version: { S: head.version },
    term: { N: numberText(head.term) },
    writer: { S: head.writer },
    chunks: { L: head.chunks.map((c) => ({ M: { id: { S: c.id }, put: { S: c.put }, bucket: { N: numberText(c.bucket) }, bytes: { N: numberText(c.bytes) }, entries: { N: numberText(c.entries) } } })) },
  };
}

/** A map head from the table → the head, or why it cannot be trusted. */
export function readMapHead(group: string, raw: Attributes | undefined): ItemRead<MapHead> {
  if (raw === undefined) return { kind: 'absent' };
  const problem = (text: string): ItemRead<MapHead> => ({ kind: 'invalid', problem: `map item ${mapKey(group)}: ${text}` });
  if (raw.pk?.S !== mapKey(group)) return problem(`key ${show(raw.pk?.S)} is not ${mapKey(group)}`);
  const extra = unknownAttribute(raw, HEAD_ATTRIBUTES);
  if (extra !== undefined) return problem(`unknown attribute ${show(extra)}`);
  const version = raw.version?.S;
  if (!isHaToken(version)) return problem(`version ${show(version)} is not a token of 8-64 letters, digits and hyphens`);
  const term = wholeNumber(raw.term, 1, Number.MAX_SAFE_INTEGER);
  if (term === undefined) return problem(`term ${show(raw.term)} is not a whole number from 1`);
  const writer = raw.writer?.S;
  if (!isInstanceId(writer)) return problem(`writer ${show(writer)} is not an instance id`);
  const list = raw.chunks?.L;
  if (list === undefined || list.length > MAP_BUCKETS) return problem(`chunks is not a list of at most ${MAP_BUCKETS}`);
  const chunks: ChunkRef[] = [];
  for (const [i, value] of list.entries()) {
    const m = value.M;
    const id = m?.id?.S;
    const put = m?.put?.S;
    const bucket = wholeNumber(m?.bucket, 0, MAP_BUCKETS - 1);
    const bytes = wholeNumber(m?.bytes, 1, MAX_STORED_CHUNK_BYTES);
    const entries = wholeNumber(m?.entries, 0, 1_000_000);
    if (m === undefined || unknownAttribute(m, ['id', 'put', 'bucket', 'bytes', 'entries']) !== undefined) return problem(`chunk ${i + 1} is not {id, put, bucket, bytes, entries}`);
    if (id === undefined || !CHUNK_ID.test(id)) return problem(`chunk ${i + 1}: id ${show(id)} is not a sha256`);
    if (!isHaToken(put)) return problem(`chunk ${i + 1}: put ${show(put)} is not a token of 8-64 letters, digits and hyphens`);
    if (bucket === undefined || chunks.some((c) => c.bucket === bucket)) return problem(`chunk ${i + 1}: bucket ${show(m.bucket)} is not a bucket of its own from 0 to ${MAP_BUCKETS - 1}`);
    if (bytes === undefined || entries === undefined) return problem(`chunk ${i + 1}: bytes or entries is not a whole number in range`);
    chunks.push({ id, put, bucket, bytes, entries });
  }
  return { kind: 'ok', item: { version, term, writer, chunks } };
}

/** A chunk item: its key and its gzipped bytes. */
export const chunkAttributes = (group: string, term: number, ref: Pick<ChunkRef, 'id' | 'put'>, data: Uint8Array): Attributes => ({ pk: { S: chunkKey(group, term, ref) }, data: { B: data } });

/** A chunk item from the table → its port map, or why not (absent: removed since the head was read). */
export function readChunkItem(group: string, term: number, ref: Pick<ChunkRef, 'id' | 'put'>, raw: Attributes | undefined): { kind: 'ok'; state: PortState } | { kind: 'absent' } | { kind: 'invalid'; problem: string } {
  if (raw === undefined) return { kind: 'absent' };
  const key = chunkKey(group, term, ref);
  if (raw.pk?.S !== key || unknownAttribute(raw, ['pk', 'data']) !== undefined || !(raw.data?.B instanceof Uint8Array)) return { kind: 'invalid', problem: `chunk item ${key}: not {pk, data (binary)}` };
  const decoded = decodeChunk(ref.id, raw.data.B);
  return 'problem' in decoded ? { kind: 'invalid', problem: `map ${decoded.problem}` } : { kind: 'ok', state: decoded.state };
}

/**
 * Every head write: the map must still be the one the writer planned from
 * (expect: its version; null: no map yet), and no later term may have
 * written it. A leader's first write of its term (the claim) moves the
 * map's term up to its own; from then on every writer of an older term is
 * refused, however long it slept.
 */
export function mapWriteCondition(expect: string | null, term: number): Condition {
  if (expect === null) return { expression: 'attribute_not_exists(#pk)', names: { '#pk': 'pk' } };
  return {
    expression: '#version = :expect AND #term <= :term',
    names: { '#version': 'version', '#term': 'term' },
    values: { ':expect': { S: expect }, ':term': { N: numberText(term) } },
  };
}

export type MapWritePlan =
  /**
   * Put the chunks in `puts`, then write `head` on condition of `expect`;
   * once it is accepted, `drops` (chunks of the map before that the new one
   * does not list) may go. `state` is what is written: the planned map, less
   * the new targets that found no room (`waiting`).
   */
  | { kind: 'write'; expect: string | null; head: MapHead; puts: { id: string; put: string; data: Uint8Array }[]; drops: { term: number; id: string; put: string }[]; state: PortState; waiting: string[] }
  /** The map already says this under this term: nothing to write (`waiting`: new targets left out for want of room, `state` what stays). */
  | { kind: 'unchanged'; waiting: string[]; state: PortState }
  /** A later term wrote the map: this instance is no longer the leader, whatever its lease memory says. */
  | { kind: 'superseded'; term: number };

/**
 * The leader's map write for a pass: from the map it read (`base`, null when
 * there is none), the state its planner produced from that same map, and its
 * term. The first write of a term is made even when the state is unchanged:
 * it is the claim that fences out older terms (and it writes the term's own
 * chunks). A chunk that would grow past `limit` drops the targets that are
 * new in it (they wait, named); if it would still grow past it, that chunk
 * keeps the base's content. A chunk that does not grow is always written:
 * a map that only shrinks always goes through.
 */
export function planMapWrite(base: MapItem | null, planned: PortState, term: number, self: string, freshToken: string, limit = MAX_CHUNK_BYTES): MapWritePlan {
  if (base !== null && base.term > term) return { kind: 'superseded', term: base.term };
  const sameTerm = base !== null && base.term === term;
  const reusable = new Map((sameTerm ? base.chunks : []).map((c) => [c.id, c]));
  const baseBytes = new Map((base?.chunks ?? []).map((c) => [c.bucket, c.bytes]));
  const baseKeys = new Set(base?.state.entries.map((e) => e.key));
  const waiting: string[] = [];

  let chunks = chunksOf(planned);
  const encoded = new Map<string, Uint8Array>();
  const bytesOf = (chunk: MapChunk): number => {
    const known = reusable.get(chunk.id)?.bytes;
    if (known !== undefined) return known;
    let data = encoded.get(chunk.id);
    if (data === undefined) encoded.set(chunk.id, (data = encodeChunk(chunk)));
    return data.byteLength;
  };
  const grows = (chunk: MapChunk): boolean => bytesOf(chunk) > limit && bytesOf(chunk) > (baseBytes.get(chunk.bucket) ?? 0);
  let state = planned;
  if (chunks.some(grows)) {
    // Out of room in some chunk: leave that chunk's new targets out, and if that is not enough, keep that chunk as it was.
    const full = new Set(chunks.filter(grows).map((c) => c.bucket));
    const left = (key: string): boolean => full.has(bucketOf(key)) && !baseKeys.has(key);
    waiting.push(...planned.entries.filter((e) => left(e.key)).map((e) => e.key));
    state = { ...planned, entries: planned.entries.filter((e) => !left(e.key)) };
    chunks = chunksOf(state);
    const stillFull = new Set(chunks.filter(grows).map((c) => c.bucket));
    if (stillFull.size > 0 && base !== null) {
      const inBucket = (key: string): boolean => stillFull.has(bucketOf(key));
      const keep = <T extends { key: string }>(now: readonly T[], before: readonly T[] | undefined): T[] => [...now.filter((x) => !inBucket(x.key)), ...(before ?? []).filter((x) => inBucket(x.key))];
      const addresses = keep(state.releasedAddresses ?? [], base.state.releasedAddresses);
      state = { version: 1, entries: keep(state.entries, base.state.entries), released: keep(state.released, base.state.released), ...(addresses.length > 0 ? { releasedAddresses: addresses } : {}) };
      chunks = chunksOf(state);
    }
    state = canonicalOrder(state);
  }
  // A chunk the map before lists (this term) is listed again as it is; new content is put by this write.
  const refs: ChunkRef[] = chunks.map((c) => ({ id: c.id, put: reusable.get(c.id)?.put ?? freshToken, bucket: c.bucket, bytes: bytesOf(c), entries: c.entries }));
  if (sameTerm && refs.length === base.chunks.length && refs.every((r, i) => r.id === base.chunks[i]!.id)) return { kind: 'unchanged', waiting, state };
  const ids = new Set(refs.map((r) => r.id));
  const puts = chunks.filter((c) => !reusable.has(c.id)).map((c) => ({ id: c.id, put: freshToken, data: encoded.get(c.id) ?? encodeChunk(c) }));
  const drops = (base?.chunks ?? []).filter((c) => !sameTerm || !ids.has(c.id)).map((c) => ({ term: base!.term, id: c.id, put: c.put }));
  return { kind: 'write', expect: base?.version ?? null, head: { version: freshToken, term, writer: self, chunks: refs }, puts, drops, state, waiting };
}

// ── the members item (who else is there) ──────────────────────────────────

/**
 * One item per group holds every instance's heartbeat, one top-level
 * attribute per instance (named by its instance id), each written only by
 * that instance with an UpdateItem of its own attribute: its role, a token
 * it replaces at every heartbeat, and the fingerprint of its HA-relevant
 * config (fingerprint.ts). Peers see the token change on their own clocks
 * (never comparing wall clocks): that is how each knows the other runs. A
 * daemon that stops says so (role `stopped`), so its peer need not wait for
 * its heartbeat to go stale. One small item, read with one GetItem.
 */
export interface MemberItem {
  instanceId: string;
  role: 'leader' | 'standby' | 'stopped';
  beat: string;
  leaseMs: number;
  /** Config key → digest of its value (fingerprint.ts). */
  config: Record<string, string>;
}

export const membersKey = (group: string): string => `${group}#members`;

const CONFIG_KEY = /^[a-z][A-Za-z]{0,30}(\.[a-z][A-Za-z]{0,30}){0,3}$/;
const CONFIG_DIGEST = /^[0-9a-f]{16}$/;
const MAX_CONFIG_KEYS = 32;

/** This instance's heartbeat: `SET #self = :entry` on the members item (created by the first). */
export function memberUpdate(item: MemberItem): { expression: string; names: Record<string, string>; values: Attributes } {
  const config: Attributes = Object.fromEntries(Object.entries(item.config).map(([key, digest]) => [key, { S: digest }]));
  return {
    expression: 'SET #self = :entry',
    names: { '#self': item.instanceId },
    values: { ':entry': { M: { role: { S: item.role }, beat: { S: item.beat }, leaseMs: { N: numberText(item.leaseMs) }, config: { M: config } } } },
  };
}

/** A fingerprint from the table: every key and digest in shape, or undefined. */
function configOf(value: AttributeValue | undefined): Record<string, string> | undefined {
  const m = value?.M;
  if (m === undefined || Object.keys(m).length > MAX_CONFIG_KEYS) return undefined;
  const config: Record<string, string> = {};
  for (const [key, digest] of Object.entries(m)) {
    if (!CONFIG_KEY.test(key) || digest.S === undefined || !CONFIG_DIGEST.test(digest.S)) return undefined;
    config[key] = digest.S;
  }
  return config;
}

/** The members item → every valid heartbeat, and what was wrong with the others. */
export function readMembersItem(group: string, raw: Attributes | undefined): { members: MemberItem[]; invalid: string[] } {
  const members: MemberItem[] = [];
  const invalid: string[] = [];
  if (raw === undefined) return { members, invalid };
  if (raw.pk?.S !== membersKey(group)) return { members, invalid: [`members item: key ${show(raw.pk?.S)} is not ${membersKey(group)}`] };
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'pk') continue;
    const problem = (text: string) => invalid.push(`members item ${membersKey(group)}: ${show(name)}: ${text}`);
    if (!isInstanceId(name)) {
      problem('is not an instance id');
      continue;
    }
    const entry = value.M;
    const extra = entry === undefined ? undefined : unknownAttribute(entry, ['role', 'beat', 'leaseMs', 'config']);
    const role = entry?.role?.S;
    const beat = entry?.beat?.S;
    const leaseMs = leaseMsOf(entry?.leaseMs);
    // An instance of an earlier release has no fingerprint: it compares as unknown, never as different.
    const config = entry?.config === undefined ? {} : configOf(entry.config);
    if (entry === undefined) problem('is not a map');
    else if (extra !== undefined) problem(`unknown attribute ${show(extra)}`);
    else if (role !== 'leader' && role !== 'standby' && role !== 'stopped') problem(`role ${show(role)} is not leader, standby or stopped`);
    else if (!isHaToken(beat)) problem(`beat ${show(beat)} is not a token of 8-64 letters, digits and hyphens`);
    else if (typeof leaseMs === 'string') problem(`leaseMs: ${leaseMs}`);
    else if (config === undefined) problem(`config is not a map of at most ${MAX_CONFIG_KEYS} config keys to 16-hex-digit digests`);
    else members.push({ instanceId: name, role, beat, leaseMs, config });
  }
  return { members, invalid };
}
