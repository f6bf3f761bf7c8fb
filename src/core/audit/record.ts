// The audit log's one schema (docs/audit.md describes it to people): a JSON
// object per line, the same in the file and in the journal (where the logger
// adds its own keys around it). Every key of an event type is always present,
// null when unknown, in a fixed order. Pure: events in, records and text out;
// text in, records out (the log is read back by `cachenat audit`, and what is
// read from a file is checked, never trusted).

import { isIpv4 } from '../ipv4.js';
import { ENGINES, TARGET_KINDS } from '../grammar.js';
import type { Engine, TargetKind } from '../model.js';
import type { ForwardIdentity } from './attribution.js';
import { TCP_STATES, type FlowEvent, type TcpState } from './reader-lines.js';

export const AUDIT_SCHEMA = 1;

/**
 * How a flow ended:
 * - closed: the client or the cache closed it (FIN or RST seen);
 * - timed-out: the kernel forgot it after its state's timeout (idle, or never answered);
 * - target-moved: cachenat deleted it because its target's address changed (failover);
 * - revoked: cachenat deleted it because the config no longer admits it;
 * - deleted: another process deleted the entry (e.g. an operator's `conntrack -D`).
 */
export const END_REASONS = ['closed', 'timed-out', 'target-moved', 'revoked', 'deleted'] as const;
export type EndReason = (typeof END_REASONS)[number];
/** The reasons cachenat's own flushes give. */
export type FlushReason = Extract<EndReason, 'target-moved' | 'revoked'>;

/** Why the log may miss flows from `at` on: an overrun, the reader restarting, or the audit starting. */
export const GAP_CAUSES = ['overrun', 'reader-restarted', 'started'] as const;
export type GapCause = (typeof GAP_CAUSES)[number];

/** The flow's who and where, in both start and end lines. */
interface FlowParties {
  clientAddress: string;
  clientPort: number;
  listenAddress: string;
  listenPort: number;
  /** The allowedSources entry that admitted the client (one taken out since, for a flow it cut), or "unlisted". */
  source: string;
  /** null: no forward of this daemon's memory listens there (a flow older than the daemon, on a listener gone since). */
  targetKey: string | null;
  kind: TargetKind | null;
  engine: Engine | null;
  cache: string | null;
  targetAddress: string;
  targetPort: number;
}

export interface FlowStartRecord extends FlowParties {
  audit: true;
  schema: typeof AUDIT_SCHEMA;
  event: 'start';
  /** ISO 8601: when the reader saw the flow begin. */
  start: string;
  conntrackId: number | null;
}

export interface FlowEndRecord extends FlowParties {
  audit: true;
  schema: typeof AUDIT_SCHEMA;
  event: 'end';
  /** ISO 8601 from the kernel's timestamp; null when nf_conntrack_timestamp was off as the flow began. */
  start: string | null;
  /** ISO 8601: when the kernel ended the flow (for a closed TCP flow: after TIME_WAIT). */
  end: string;
  durationSeconds: number | null;
  /** IP bytes (headers included) and packets each way; null when nf_conntrack_acct was off as the flow began. */
  bytesFromClient: number | null;
  bytesToClient: number | null;
  packetsFromClient: number | null;
  packetsToClient: number | null;
  reason: EndReason;
  /** conntrack's last TCP state of the flow. */
  tcpState: TcpState | null;
  conntrackId: number | null;
}

export interface GapRecord {
  audit: true;
  schema: typeof AUDIT_SCHEMA;
  event: 'gap';
  cause: GapCause;
  /** ISO 8601: when the gap was noticed (an overrun) or ended (the reader listens again). */
  at: string;
  /** reader-restarted: since when the reader was not listening. */
  since: string | null;
  /** Events the kernel dropped, when it said (overrun); null when unknown. */
  lost: number | null;
}

export type AuditRecord = FlowStartRecord | FlowEndRecord | GapRecord;

/** TIME_WAIT and CLOSE: the connection is over whoever deleted the entry. */
const OVER = new Set<TcpState>(['TIME_WAIT', 'CLOSE']);
/** A FIN was seen: the connection was being closed. */
const CLOSING = new Set<TcpState>(['FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK']);

/** Why a flow ended, from its last TCP state, who destroyed it, and the reason of a cachenat flush that deleted it. */
export function endReasonOf(event: Pick<FlowEvent, 'tcpState' | 'portid'>, flushed: FlushReason | undefined): EndReason {
  if (event.tcpState !== undefined && OVER.has(event.tcpState)) return 'closed';
  if (flushed !== undefined) return flushed;
  if (event.portid !== 0) return 'deleted';
  if (event.tcpState !== undefined && CLOSING.has(event.tcpState)) return 'closed';
  return 'timed-out';
}

/**
 * ISO 8601 with milliseconds. Flows end in bursts, so the text up to the
 * second is kept from the last call: most calls only append the milliseconds.
 */
let isoSecond = Number.NaN;
let isoPrefix = '';
function iso(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const text = new Date(second * 1000).toISOString(); // 2026-12-07T13:27:09.000Z
    if (text.length !== 24) return new Date(ms).toISOString(); // outside years 0000-9999: no shortcut
    isoSecond = second;
    isoPrefix = text.slice(0, 20);
  }
  const millis = ms - second * 1000;
  return `${isoPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

function partiesOf(event: FlowEvent, forward: ForwardIdentity | undefined, source: string): FlowParties {
  return {
    clientAddress: event.orig.src,
    clientPort: event.orig.sport,
    listenAddress: event.orig.dst,
    listenPort: event.orig.dport,
    source,
    targetKey: forward?.key ?? null,
    kind: forward?.kind ?? null,
    engine: forward?.engine ?? null,
    cache: forward?.cache ?? null,
    // The reply comes from the target: its source is where the flow really went.
    targetAddress: event.reply.src,
    targetPort: event.reply.sport,
  };
}

export function startRecordOf(event: FlowEvent, forward: ForwardIdentity | undefined, source: string): FlowStartRecord {
  return { audit: true, schema: AUDIT_SCHEMA, event: 'start', start: iso(event.receivedMs), ...partiesOf(event, forward, source), conntrackId: event.id ?? null };
}

export function endRecordOf(event: FlowEvent, forward: ForwardIdentity | undefined, source: string, reason: EndReason): FlowEndRecord {
  const endMs = event.stopMs ?? event.receivedMs;
  const c = event.counters;
  return {
    audit: true,
    schema: AUDIT_SCHEMA,
    event: 'end',
    start: event.startMs === undefined ? null : iso(event.startMs),
    end: iso(endMs),
    durationSeconds: event.startMs === undefined || endMs < event.startMs ? null : (endMs - event.startMs) / 1000,
    ...partiesOf(event, forward, source),
    bytesFromClient: c?.origBytes ?? null,
    bytesToClient: c?.replyBytes ?? null,
    packetsFromClient: c?.origPackets ?? null,
    packetsToClient: c?.replyPackets ?? null,
    reason,
    tcpState: event.tcpState ?? null,
    conntrackId: event.id ?? null,
  };
}

export function gapRecordOf(cause: GapCause, atMs: number, details: { sinceMs?: number; lost?: number } = {}): GapRecord {
  return {
    audit: true,
    schema: AUDIT_SCHEMA,
    event: 'gap',
    cause,
    at: iso(atMs),
    since: details.sinceMs === undefined ? null : new Date(details.sinceMs).toISOString(),
    lost: details.lost ?? null,
  };
}

/** The line written for a record (no newline). */
export const auditLineOf = (record: AuditRecord): string => JSON.stringify(record);

// ── reading the log back ────────────────────────────────────────────────────

type Check = (value: unknown) => boolean;
const isString: Check = (v) => typeof v === 'string';
const isTime: Check = (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) && !Number.isNaN(Date.parse(v));
const isCount: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const isPort: Check = (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;
const isAddress: Check = (v) => typeof v === 'string' && isIpv4(v);
const oneOf =
  (values: readonly unknown[]): Check =>
  (v) =>
    values.includes(v);
const orNull =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);

const PARTIES: Record<keyof FlowParties, Check> = {
  clientAddress: isAddress,
  clientPort: isPort,
  listenAddress: isAddress,
  listenPort: isPort,
  source: isString,
  targetKey: orNull(isString),
  kind: orNull(oneOf(TARGET_KINDS)),
  engine: orNull(oneOf(ENGINES)),
  cache: orNull(isString),
  targetAddress: isAddress,
  targetPort: isPort,
};

/** Each event's keys and their checks, in the order the writer puts them. */
const SHAPES: Record<AuditRecord['event'], Record<string, Check>> = {
  start: { start: isTime, ...PARTIES, conntrackId: orNull(isCount) },
  end: {
    start: orNull(isTime),
    end: isTime,
    durationSeconds: orNull((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0),
    ...PARTIES,
    bytesFromClient: orNull(isCount),
    bytesToClient: orNull(isCount),
    packetsFromClient: orNull(isCount),
    packetsToClient: orNull(isCount),
    reason: oneOf(END_REASONS),
    tcpState: orNull(oneOf(TCP_STATES)),
    conntrackId: orNull(isCount),
  },
  gap: { cause: oneOf(GAP_CAUSES), at: isTime, since: orNull(isTime), lost: orNull(isCount) },
};

/**
 * The audit record in a line of the file or of the journal (where the logger's
 * keys surround it), or undefined for any other line: other log lines, a
 * record of another schema version, a record with a field missing or wrong.
 */
export function parseAuditLine(line: string): AuditRecord | undefined {
  if (!line.includes('"audit":true')) return undefined; // most journal lines: skip before parsing
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.audit !== true || o.schema !== AUDIT_SCHEMA || typeof o.event !== 'string' || !Object.hasOwn(SHAPES, o.event)) return undefined;
  const shape = SHAPES[o.event as AuditRecord['event']];
  const record: Record<string, unknown> = { audit: true, schema: AUDIT_SCHEMA, event: o.event };
  for (const [key, check] of Object.entries(shape)) {
    if (!check(o[key])) return undefined;
    record[key] = o[key];
  }
  return record as unknown as AuditRecord;
}
