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
  /** Wall-clock ns from the kernel's timestamp extension (nf_conntrack_timestamp), when it was on at the flow's start. */
  startNs: bigint | undefined;
  stopNs: bigint | undefined;
  /**
   * The netlink port of the process whose request destroyed the entry (a
   * `conntrack -D`); 0 when the kernel itself ended it (timeout, close).
   */
  portid: number;
  /** When the reader received the event (wall-clock ns). */
  receivedNs: bigint;
}

export type ReaderLine =
  | { type: 'ready'; version: number; buffer: number; filter: 'kernel' | 'user'; events: string }
  | { type: 'event'; event: FlowEvent }
  /** The kernel dropped events for the reader's socket (ENOBUFS): `lost` of them, when /proc/net/netlink said how many. */
  | { type: 'overrun'; lost: number | undefined; receivedNs: bigint };

const U32 = 0xffffffff;

const intField = (text: string | undefined, max: number): number | undefined => {
  if (text === undefined || !/^\d{1,20}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
};
const optionalInt = (text: string | undefined, max: number): number | undefined | null => (text === '-' ? undefined : (intField(text, max) ?? null));
const nsField = (text: string | undefined): bigint | undefined | null => (text === '-' ? undefined : text !== undefined && /^\d{1,20}$/.test(text) ? BigInt(text) : null);
const addressField = (text: string | undefined): string | undefined => (text !== undefined && isIpv4(text) ? text : undefined);

function tupleOf(fields: readonly string[], at: number): FlowTuple | undefined {
  const src = addressField(fields[at]);
  const dst = addressField(fields[at + 1]);
  const sport = intField(fields[at + 2], 65535);
  const dport = intField(fields[at + 3], 65535);
  return src === undefined || dst === undefined || sport === undefined || dport === undefined ? undefined : { src, dst, sport, dport };
}

/** One line of the reader's output, or undefined when it is not one the protocol allows. */
export function parseReaderLine(line: string): ReaderLine | undefined {
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
      const receivedNs = nsField(fields[3]);
      if (fields.length !== 4 || lost === null || optionalInt(fields[2], Number.MAX_SAFE_INTEGER) === null || receivedNs === null || receivedNs === undefined) return undefined;
      return { type: 'overrun', lost, receivedNs };
    }
    case 'D':
    case 'N':
      return eventOf(fields);
    default:
      return undefined;
  }
}

function eventOf(fields: readonly string[]): ReaderLine | undefined {
  if (fields.length !== 21) return undefined;
  const id = optionalInt(fields[1], U32);
  const protocol = intField(fields[2], 255);
  const stateNumber = optionalInt(fields[3], TCP_STATES.length - 1);
  const orig = tupleOf(fields, 4);
  const reply = tupleOf(fields, 8);
  const counts = [12, 13, 14, 15].map((i) => optionalInt(fields[i], Number.MAX_SAFE_INTEGER));
  const mark = intField(fields[16], U32);
  const startNs = nsField(fields[17]);
  const stopNs = nsField(fields[18]);
  const portid = intField(fields[19], U32);
  const receivedNs = nsField(fields[20]);
  if (id === null || protocol === undefined || stateNumber === null || !orig || !reply || counts.includes(null) || mark === undefined) return undefined;
  if (startNs === null || stopNs === null || portid === undefined || receivedNs === null || receivedNs === undefined) return undefined;
  const [origPackets, origBytes, replyPackets, replyBytes] = counts as (number | undefined)[];
  const counters =
    origPackets === undefined || origBytes === undefined || replyPackets === undefined || replyBytes === undefined ? undefined : { origPackets, origBytes, replyPackets, replyBytes };
  const event: FlowEvent = {
    kind: fields[0] === 'D' ? 'end' : 'start',
    id,
    protocol,
    tcpState: stateNumber === undefined ? undefined : TCP_STATES[stateNumber],
    orig,
    reply,
    counters,
    mark,
    startNs,
    stopNs,
    portid,
    receivedNs,
  };
  return { type: 'event', event };
}

/** The text the reader prints for an event: the inverse of parseReaderLine, for tests and fakes. */
export function readerLineOf(e: FlowEvent): string {
  const opt = (v: number | bigint | undefined) => (v === undefined ? '-' : String(v));
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
    opt(e.startNs),
    opt(e.stopNs),
    e.portid,
    e.receivedNs,
  ].join(' ');
}
