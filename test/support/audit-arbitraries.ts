// Random audit inputs for the property tests: conntrack events as the reader
// reports them.

import fc from 'fast-check';
import { TCP_STATES, type FlowEvent } from '../../src/core/audit/reader-lines.js';

/** cachenat's default connmark bit. */
export const MARK = 0x1000000;

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

