// The shared port map split into chunks, so a pair can hold far more
// targets than one 400 KB DynamoDB item (docs/design/ha.md, "The map").
//
// Every target key falls in one of MAP_BUCKETS buckets by a hash of the key;
// its entry and any port or address it released go into that bucket. Each
// non-empty bucket is one chunk: the bucket as a port map (the state file's
// own codec and bytes), named by the sha256 of those bytes, stored gzipped.
// A change to one target rewrites one chunk; everything else is shared with
// the map before. The head item (items.ts) lists the chunks of one version
// of the map and is the only item a write is fenced on, so a reader sees a
// whole map or the one before it, never a mix.
//
// Pure: zlib and sha256 are computations here, not I/O.

import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseState, serializeState } from '../ports/port-map-codec.js';
import type { PortState } from '../ports/port-state.js';

/** How many buckets the keys are spread over (fixed: changing it would move every target to another chunk once). */
export const MAP_BUCKETS = 16;

/**
 * The most one chunk may hold, gzipped: well under DynamoDB's 400 KB item
 * limit. At the ~50 bytes a target takes gzipped, 16 chunks hold about
 * 90,000 targets, more than the port ranges do.
 */
export const MAX_CHUNK_BYTES = 300 * 1024;

/** A chunk's text may be at most this long once unzipped (a bound on what a hostile item can make us allocate). */
const MAX_CHUNK_TEXT_BYTES = 16 * 1024 * 1024;

/** One chunk as the writer made it. */
export interface MapChunk {
  /** sha256 (hex) of `text`. */
  id: string;
  bucket: number;
  /** The bucket as a port map: serializeState's bytes. */
  text: string;
  entries: number;
}

/** A chunk as the head lists it. */
export interface ChunkRef {
  id: string;
  /** The version of the head whose write put this chunk (part of its key: a chunk put again later is another item). */
  put: string;
  bucket: number;
  /** gzipped bytes, as stored. */
  bytes: number;
  entries: number;
}

/** FNV-1a of the key, into a bucket: cheap and the same everywhere. */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % MAP_BUCKETS;
}

/** Recent chunk texts and their ids: a leader chunks its map every pass, and most chunks are the same as last time. */
const recentIds = new Map<string, string>();
const RECENT_IDS = 4 * MAP_BUCKETS;

export function chunkIdOf(text: string): string {
  let id = recentIds.get(text);
  if (id === undefined) {
    id = createHash('sha256').update(text).digest('hex');
    if (recentIds.size >= RECENT_IDS) recentIds.delete(recentIds.keys().next().value!);
    recentIds.set(text, id);
  }
  return id;
}

/** The map's keys in the codec's canonical order: entries by key, released ports by port, released addresses by address then key. */
export function canonicalOrder(state: PortState): PortState {
  const entries = [...state.entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const released = [...state.released].sort((a, b) => a.port - b.port || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const addresses = state.releasedAddresses === undefined ? undefined : [...state.releasedAddresses].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { ...state, entries, released, ...(addresses === undefined ? {} : { releasedAddresses: addresses }) };
}

/** The map in chunks, in bucket order (empty buckets have none). */
export function chunksOf(state: PortState): MapChunk[] {
  const buckets = Array.from({ length: MAP_BUCKETS }, (): PortState => ({ version: 1, entries: [], released: [] }));
  for (const e of state.entries) buckets[bucketOf(e.key)]!.entries.push(e);
  for (const r of state.released) buckets[bucketOf(r.key)]!.released.push(r);
  for (const r of state.releasedAddresses ?? []) (buckets[bucketOf(r.key)]!.releasedAddresses ??= []).push(r);
  return buckets.flatMap((bucket, index) => {
    if (bucket.entries.length === 0 && bucket.released.length === 0 && bucket.releasedAddresses === undefined) return [];
    const text = serializeState(canonicalOrder(bucket));
    return [{ id: chunkIdOf(text), bucket: index, text, entries: bucket.entries.length }];
  });
}

export const encodeChunk = (chunk: Pick<MapChunk, 'text'>): Uint8Array => new Uint8Array(gzipSync(chunk.text, { level: 6 }));

/** A stored chunk → its port map, or why it cannot be trusted (not gzip, too large, not the content its id names, not a valid map). */
export function decodeChunk(id: string, data: Uint8Array): { state: PortState } | { problem: string } {
  let text: string;
  try {
    text = gunzipSync(data, { maxOutputLength: MAX_CHUNK_TEXT_BYTES }).toString('utf8');
  } catch (err) {
    return { problem: `chunk ${id.slice(0, 12)}: not gzip within ${MAX_CHUNK_TEXT_BYTES} bytes (${(err as Error).message})` };
  }
  if (chunkIdOf(text) !== id) return { problem: `chunk ${id.slice(0, 12)}: its content does not match its name` };
  const parsed = parseState(text);
  if (parsed.status !== 'ok') return { problem: `chunk ${id.slice(0, 12)}: ${parsed.status === 'corrupt' ? parsed.problem : 'missing'}` };
  return { state: parsed.state };
}

/**
 * The chunks of one head → the whole map, validated as a whole by the
 * state file's codec (listeners that clash across chunks, anything the
 * codec checks across entries), or why it cannot be used.
 */
export function assembleMap(parts: readonly PortState[]): { state: PortState } | { problem: string } {
  const merged: PortState = { version: 1, entries: parts.flatMap((p) => p.entries), released: parts.flatMap((p) => p.released) };
  const addresses = parts.flatMap((p) => p.releasedAddresses ?? []);
  if (addresses.length > 0) merged.releasedAddresses = addresses;
  const seen = new Set<string>();
  for (const e of merged.entries) {
    if (seen.has(e.key)) return { problem: `${e.key} is in two chunks` };
    seen.add(e.key);
  }
  const parsed = parseState(serializeState(canonicalOrder(merged)));
  if (parsed.status !== 'ok') return { problem: parsed.status === 'corrupt' ? parsed.problem : 'missing' };
  return { state: parsed.state };
}

/** How full the fullest chunk is, as a share of MAX_CHUNK_BYTES (what limits the map's growth). */
export const roomUsed = (refs: readonly ChunkRef[], limit = MAX_CHUNK_BYTES): number => refs.reduce((m, r) => Math.max(m, r.bytes), 0) / limit;
