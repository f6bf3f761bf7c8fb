// The event reader's line protocol (src/audit/reader-program.ts prints it):
// one line per conntrack event, an overrun, or the reader's start. Pure: text
// in, typed events out; a line that does not read exactly is rejected whole,
// never half-used.

import { isIpv4 } from '../ipv4.js';
import type { FlowTuple } from '../netfilter/conntrack-entry.js';

export type { FlowTuple } from '../netfilter/conntrack-entry.js';

/** conntrack's TCP states (enum tcp_conntrack), by number. */
export const TCP_STATES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'] as const;
export type TcpState = (typeof TCP_STATES)[number];

/** A conntrack event of a flow carrying cachenat's connmark. */
export interface FlowEvent {
  kind: 'start' | 'end';
  /** The kernel's id of the entry (unique among live entries). */
  id: number | undefined;
  /** IP protocol number (6 = TCP). */
  protocol: number;
  /** Absent for protocols without states, and in NEW events the kernel sends without one. */
  tcpState: TcpState | undefined;
  /** Client → listener, as the client sent it. */
  orig: FlowTuple;
  /** Target → NAT host, as the target answers (its source is the target). */
  reply: FlowTuple;
  /** Bytes and packets each way; absent unless nf_conntrack_acct was on when the flow began. */
  counters: { origPackets: number; origBytes: number; replyPackets: number; replyBytes: number } | undefined;
  mark: number;
  /** Wall-clock ms (the kernel's ns, truncated) from its timestamp extension (nf_conntrack_timestamp), when it was on at the flow's start. */
  startMs: number | undefined;
  stopMs: number | undefined;
  /**
   * The netlink port of the process whose request destroyed the entry (a
   * `conntrack -D`); 0 when the kernel itself ended it (timeout, close).
   */
  portid: number;
  /** When the reader received the event (wall-clock ms). */
  receivedMs: number;
}

export type ReaderLine =
  | { type: 'ready'; version: number; buffer: number; filter: 'kernel' | 'user'; events: string }
  | { type: 'event'; event: FlowEvent }
  /** The kernel dropped events for the reader's socket (ENOBUFS): `lost` of them, when /proc/net/netlink said how many. */
  | { type: 'overrun'; lost: number | undefined; receivedMs: number };

const U32 = 0xffffffff;

/** Only ASCII digits, 1 to 20 of them (checked without allocating: several fields per flow). */
function isDigits(text: string): boolean {
  if (text.length === 0 || text.length > 20) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

const intField = (text: string | undefined, max: number): number | undefined => {
  if (text === undefined || !isDigits(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
};
const optionalInt = (text: string | undefined, max: number): number | undefined | null => (text === '-' ? undefined : (intField(text, max) ?? null));
/** Nanoseconds as printed, to whole milliseconds (exact: the digits are cut, not divided in floating point). */
const msField = (text: string | undefined): number | undefined | null => {
  if (text === '-') return undefined;
  if (text === undefined || !isDigits(text)) return null;
  return text.length > 6 ? Number(text.slice(0, -6)) : 0;
};
/** One line of the reader's output, or undefined when it is not one the protocol allows. */
export function parseReaderLine(line: string): ReaderLine | undefined {
  const head = line.charCodeAt(0);
  if ((head === 68 /* D */ || head === 78) /* N */ && line.charCodeAt(1) === 32) return eventOf(line);
  const fields = line.trimEnd().split(' ');
  switch (fields[0]) {
    case 'R': {
      const version = intField(fields[1], 1000);
      const options = Object.fromEntries(fields.slice(2).map((f) => f.split('=', 2) as [string, string]));
      const buffer = intField(options.buffer, Number.MAX_SAFE_INTEGER);
      const filter = options.filter === 'kernel' || options.filter === 'user' ? options.filter : undefined;
      if (version === undefined || buffer === undefined || filter === undefined || typeof options.events !== 'string') return undefined;
      return { type: 'ready', version, buffer, filter, events: options.events };
    }
    case 'L': {
      const lost = optionalInt(fields[1], Number.MAX_SAFE_INTEGER);
      const receivedMs = msField(fields[3]);
      if (fields.length !== 4 || lost === null || optionalInt(fields[2], Number.MAX_SAFE_INTEGER) === null || receivedMs === null || receivedMs === undefined) return undefined;
      return { type: 'overrun', lost, receivedMs };
    }
    default:
      return undefined;
  }
}

// An event line is read in place: its fields are located once, numbers are
// read from the characters, and only the four addresses become strings. The
// daemon reads one per flow, thousands a second, in a small young generation.
const EVENT_FIELDS = 21;
const bounds = new Int32Array(2 * (EVENT_FIELDS + 1));

/** Locates the fields of a line split on single spaces (trailing whitespace ignored); returns how many, up to one more than wanted. */
function locate(line: string, wanted: number): number {
  let end = line.length;
  while (end > 0 && line.charCodeAt(end - 1) <= 32) end--;
  let count = 0;
  let start = 0;
  for (let i = 0; i <= end && count <= wanted; i++) {
    if (i === end || line.charCodeAt(i) === 32) {
      bounds[2 * count] = start;
      bounds[2 * count + 1] = i;
      count++;
      start = i + 1;
    }
  }
  return count;
}

const isDash = (line: string, field: number): boolean => bounds[2 * field + 1]! - bounds[2 * field]! === 1 && line.charCodeAt(bounds[2 * field]!) === 45;

/** Field `field` as a whole number no larger than `max`, or undefined when it is not one. */
function numberAt(line: string, field: number, max: number, dropLast = 0): number | undefined {
  const start = bounds[2 * field]!;
  const end = bounds[2 * field + 1]!;
  const length = end - start;
  if (length === 0 || length > 20) return undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = line.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    if (i < end - dropLast) n = n * 10 + (c - 48);
  }
  return length - dropLast > 16 || n > max ? undefined : n;
}
/** undefined for "-", null when it is neither "-" nor a number. */
const optionalAt = (line: string, field: number, max: number): number | undefined | null => (isDash(line, field) ? undefined : (numberAt(line, field, max) ?? null));
/** Nanoseconds as printed, to whole milliseconds (the last six digits cut, not divided in floating point). */
const msAt = (line: string, field: number): number | undefined | null => (isDash(line, field) ? undefined : (numberAt(line, field, Number.MAX_SAFE_INTEGER, 6) ?? null));

function addressAt(line: string, field: number): string | undefined {
  const text = line.slice(bounds[2 * field]!, bounds[2 * field + 1]!);
  return isIpv4(text) ? text : undefined;
}

function tupleAt(line: string, at: number): FlowTuple | undefined {
  const src = addressAt(line, at);
  const dst = addressAt(line, at + 1);
  const sport = numberAt(line, at + 2, 65535);
  const dport = numberAt(line, at + 3, 65535);
  return src === undefined || dst === undefined || sport === undefined || dport === undefined ? undefined : { src, dst, sport, dport };
}

function eventOf(line: string): ReaderLine | undefined {
  if (locate(line, EVENT_FIELDS) !== EVENT_FIELDS || bounds[1] !== 1) return undefined;
  const id = optionalAt(line, 1, U32);
  const protocol = numberAt(line, 2, 255);
  const stateNumber = optionalAt(line, 3, TCP_STATES.length - 1);
  const orig = tupleAt(line, 4);
  const reply = tupleAt(line, 8);
  const origPackets = optionalAt(line, 12, Number.MAX_SAFE_INTEGER);
  const origBytes = optionalAt(line, 13, Number.MAX_SAFE_INTEGER);
  const replyPackets = optionalAt(line, 14, Number.MAX_SAFE_INTEGER);
  const replyBytes = optionalAt(line, 15, Number.MAX_SAFE_INTEGER);
  const mark = numberAt(line, 16, U32);
  const startMs = msAt(line, 17);
  const stopMs = msAt(line, 18);
  const portid = numberAt(line, 19, U32);
  const receivedMs = msAt(line, 20);
  if (id === null || protocol === undefined || stateNumber === null || !orig || !reply || mark === undefined || portid === undefined) return undefined;
  if (origPackets === null || origBytes === null || replyPackets === null || replyBytes === null) return undefined;
  if (startMs === null || stopMs === null || receivedMs === null || receivedMs === undefined) return undefined;
  const counters =
    origPackets === undefined || origBytes === undefined || replyPackets === undefined || replyBytes === undefined ? undefined : { origPackets, origBytes, replyPackets, replyBytes };
  const event: FlowEvent = {
    kind: line.charCodeAt(0) === 68 /* D */ ? 'end' : 'start',
    id,
    protocol,
    tcpState: stateNumber === undefined ? undefined : TCP_STATES[stateNumber],
    orig,
    reply,
    counters,
    mark,
    startMs,
    stopMs,
    portid,
    receivedMs,
  };
  return { type: 'event', event };
}

/** Milliseconds as the reader prints nanoseconds. */
const nsText = (ms: number | undefined): string => (ms === undefined ? '-' : ms === 0 ? '0' : `${ms}000000`);

/** The text the reader prints for an event (its times in whole ms): the inverse of parseReaderLine, for tests and fakes. */
export function readerLineOf(e: FlowEvent): string {
  const opt = (v: number | undefined) => (v === undefined ? '-' : String(v));
  const state = e.tcpState === undefined ? undefined : TCP_STATES.indexOf(e.tcpState);
  const c = e.counters;
  return [
    e.kind === 'end' ? 'D' : 'N',
    opt(e.id),
    e.protocol,
    opt(state),
    e.orig.src,
    e.orig.dst,
    e.orig.sport,
    e.orig.dport,
    e.reply.src,
    e.reply.dst,
    e.reply.sport,
    e.reply.dport,
    opt(c?.origPackets),
    opt(c?.origBytes),
    opt(c?.replyPackets),
    opt(c?.replyBytes),
    e.mark,
    nsText(e.startMs),
    nsText(e.stopMs),
    e.portid,
    nsText(e.receivedMs),
  ].join(' ');
}
