// Random audit inputs for the property tests: conntrack events as the reader
// reports them.

import fc from 'fast-check';
import { TCP_STATES, type FlowEvent } from '../../src/core/audit/reader-lines.js';

/** cachenat's default connmark bit. */
export const MARK = 0x1000000;

/** A Redis flow through a forward, closed and forgotten after TIME_WAIT, as the reader printed it in the lab… */
export const EXAMPLE_LINE = 'D 1137920278 6 7 198.18.0.10 198.18.0.1 59796 6379 198.19.0.11 198.19.0.1 6379 59796 5 1268 5 5268 16777216 1796650029903998137 1796650031905060687 0 1796650032355039263';

/** …and as the daemon reads it (the kernel's nanoseconds cut to whole milliseconds). */
export const EXAMPLE_EVENT: FlowEvent = {
  kind: 'end',
  id: 1137920278,
  protocol: 6,
  tcpState: 'TIME_WAIT',
  orig: { src: '198.18.0.10', dst: '198.18.0.1', sport: 59796, dport: 6379 },
  reply: { src: '198.19.0.11', dst: '198.19.0.1', sport: 6379, dport: 59796 },
  counters: { origPackets: 5, origBytes: 1268, replyPackets: 5, replyBytes: 5268 },
  mark: MARK,
  startMs: 1796650029903,
  stopMs: 1796650031905,
  portid: 0,
  receivedMs: 1796650032355,
};

export const address = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((p) => p.join('.'));
const port = fc.integer({ min: 1, max: 65535 });
export const tuple = fc.record({ src: address, dst: address, sport: port, dport: port });
const ms = fc.nat(2 ** 42); // until the year 2109
const count = fc.nat(Number.MAX_SAFE_INTEGER);

export const flowEvent: fc.Arbitrary<FlowEvent> = fc.record({
  kind: fc.constantFrom('start' as const, 'end' as const),
  id: fc.option(fc.nat(0xffffffff), { nil: undefined }),
  protocol: fc.constant(6),
  tcpState: fc.option(fc.constantFrom(...TCP_STATES), { nil: undefined }),
  orig: tuple,
  reply: tuple,
  counters: fc.option(fc.record({ origPackets: count, origBytes: count, replyPackets: count, replyBytes: count }), { nil: undefined }),
  // Mostly with cachenat's bit among others; sometimes without it, sometimes no mark at all.
  mark: fc.oneof({ weight: 6, arbitrary: fc.nat(0xffffffff).map((m) => (m | MARK) >>> 0) }, { weight: 2, arbitrary: fc.nat(0xffffffff).map((m) => (m & ~MARK) >>> 0) }, { weight: 1, arbitrary: fc.constant(0) }),
  startMs: fc.option(ms, { nil: undefined }),
  stopMs: fc.option(ms, { nil: undefined }),
  portid: fc.nat(0xffffffff),
  receivedMs: fc.constant(0),
});

