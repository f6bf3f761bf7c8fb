// The two DynamoDB items of one HA group, as pure functions: their keys,
// their attributes, the condition each write carries, and the validation of
// what comes back. Everything read from the table is untrusted: an item
// that does not validate is reported as invalid, never half-used; the port
// map inside the map item goes through the same codec as the state file.
// (docs/design/ha.md describes the protocol.)

import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { isHaToken, isInstanceId, leaseProblem, MAX_LEASE_MS, show } from '../grammar.js';
import { parseState, serializeState } from '../ports/port-map-codec.js';
import type { PortState } from '../ports/port-state.js';
import type { LeaseItem } from './lease.js';

export type Attributes = Record<string, AttributeValue>;

/** The partition key of the lease item and of the map item of `group` (one table can serve several pairs). */
export const leaseKey = (group: string): string => `${group}#lease`;
export const mapKey = (group: string): string => `${group}#map`;


/** DynamoDB refuses items over 400 KB; the map text stays well below, with room for the other attributes. */
export const MAX_MAP_TEXT_BYTES = 350 * 1024;

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

/** Acquire and renew: the item must be absent (expect null) or still carry the version this instance read. */
export function leaseWriteCondition(expect: string | null): Condition {
  if (expect === null) return { expression: 'attribute_not_exists(#pk)', names: { '#pk': 'pk' } };
  return { expression: '#version = :expect', names: { '#version': 'version' }, values: { ':expect': { S: expect } } };
}

/** Release: only the holder, and only while its version is unchanged (a standby that took over is never cleared). */
export function leaseReleaseCondition(self: string, expect: string): Condition {
  return {
    expression: '#version = :expect AND #holder = :self',
    names: { '#version': 'version', '#holder': 'holder' },
    values: { ':expect': { S: expect }, ':self': { S: self } },
  };
}

// ── the map item ───────────────────────────────────────────────────────────

/** The shared port map, with who wrote it under which term. */
export interface MapItem {
  /** Fresh on every write: the compare-and-set token. */
  version: string;
  /** The lease term of its writer: the fencing token. */
  term: number;
  writer: string;
  state: PortState;
}

const MAP_ATTRIBUTES = ['pk', 'version', 'term', 'writer', 'map'] as const;

/** The item's attributes, or why it cannot be written (a map too large for one item). */
export function mapAttributes(group: string, item: MapItem): { attributes: Attributes } | { problem: string } {
  const text = serializeState(item.state);
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_MAP_TEXT_BYTES) return { problem: `the port map is ${bytes} bytes, over the ${MAX_MAP_TEXT_BYTES} that fit in one DynamoDB item` };
  return {
    attributes: {
      pk: { S: mapKey(group) },
      version: { S: item.version },
      term: { N: numberText(item.term) },
      writer: { S: item.writer },
      map: { S: text },
    },
  };
}

/** A map item from the table → the item, or why it cannot be trusted (the port map through the state file's own validation). */
export function readMapItem(group: string, raw: Attributes | undefined): ItemRead<MapItem> {
  if (raw === undefined) return { kind: 'absent' };
  const problem = (text: string): ItemRead<MapItem> => ({ kind: 'invalid', problem: `map item ${mapKey(group)}: ${text}` });
  if (raw.pk?.S !== mapKey(group)) return problem(`key ${show(raw.pk?.S)} is not ${mapKey(group)}`);
  const extra = unknownAttribute(raw, MAP_ATTRIBUTES);
  if (extra !== undefined) return problem(`unknown attribute ${show(extra)}`);
  const version = raw.version?.S;
  if (!isHaToken(version)) return problem(`version ${show(version)} is not a token of 8-64 letters, digits and hyphens`);
  const term = wholeNumber(raw.term, 1, Number.MAX_SAFE_INTEGER);
  if (term === undefined) return problem(`term ${show(raw.term)} is not a whole number from 1`);
  const writer = raw.writer?.S;
  if (!isInstanceId(writer)) return problem(`writer ${show(writer)} is not an instance id`);
  const text = raw.map?.S;
  if (text === undefined) return problem('no map attribute (text)');
  const parsed = parseState(text);
  if (parsed.status !== 'ok') return problem(`port map: ${parsed.status === 'corrupt' ? parsed.problem : 'missing'}`);
  return { kind: 'ok', item: { version, term, writer, state: parsed.state } };
}

/**
 * Every map write: the map must still be the one the writer planned from
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
  /** Write `item` on condition of `expect`. */
  | { kind: 'write'; expect: string | null; item: MapItem }
  /** The map already says this under this term: nothing to write. */
  | { kind: 'unchanged' }
  /** A later term wrote the map: this instance is no longer the leader, whatever its lease memory says. */
  | { kind: 'superseded'; term: number };

/**
 * The leader's map write for a pass: from the map it read (`base`, null when
 * there is none), the state its planner produced from that same map, and its
 * term. The first write of a term is made even when the state is unchanged:
 * it is the claim that fences out older terms.
 */
export function planMapWrite(base: MapItem | null, state: PortState, term: number, self: string, freshToken: string): MapWritePlan {
  if (base !== null && base.term > term) return { kind: 'superseded', term: base.term };
  if (base !== null && base.term === term && serializeState(base.state) === serializeState(state)) return { kind: 'unchanged' };
  return { kind: 'write', expect: base?.version ?? null, item: { version: freshToken, term, writer: self, state } };
}

// ── the members item (who else is there) ──────────────────────────────────

/**
 * One item per group holds every instance's heartbeat, one top-level
 * attribute per instance (named by its instance id), each written only by
 * that instance with an UpdateItem of its own attribute: its role and a
 * token it replaces at every heartbeat. Peers see the token change on their
 * own clocks (never comparing wall clocks): that is how a leader knows a
 * standby is alive. One small item, read with one GetItem.
 */
export interface MemberItem {
  instanceId: string;
  role: 'leader' | 'standby';
  beat: string;
  leaseMs: number;
}

export const membersKey = (group: string): string => `${group}#members`;

/** This instance's heartbeat: `SET #self = :entry` on the members item (created by the first). */
export function memberUpdate(item: MemberItem): { expression: string; names: Record<string, string>; values: Attributes } {
  return {
    expression: 'SET #self = :entry',
    names: { '#self': item.instanceId },
    values: { ':entry': { M: { role: { S: item.role }, beat: { S: item.beat }, leaseMs: { N: numberText(item.leaseMs) } } } },
  };
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
    const extra = entry === undefined ? undefined : unknownAttribute(entry, ['role', 'beat', 'leaseMs']);
    const role = entry?.role?.S;
    const beat = entry?.beat?.S;
    const leaseMs = leaseMsOf(entry?.leaseMs);
    if (entry === undefined) problem('is not a map');
    else if (extra !== undefined) problem(`unknown attribute ${show(extra)}`);
    else if (role !== 'leader' && role !== 'standby') problem(`role ${show(role)} is not leader or standby`);
    else if (!isHaToken(beat)) problem(`beat ${show(beat)} is not a token of 8-64 letters, digits and hyphens`);
    else if (typeof leaseMs === 'string') problem(`leaseMs: ${leaseMs}`);
    else members.push({ instanceId: name, role, beat, leaseMs });
  }
  return { members, invalid };
}
