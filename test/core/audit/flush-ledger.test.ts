// The flush ledger against random interleavings of end events and cachenat's
// flushes (AUDIT_RUNS sequences, default 10,000; AUDIT_SEED replays):
//  L1 every event is released exactly once, and none while a flush runs;
//  L2 an event of a flow a flush deleted says that flush's reason, whether it
//     arrived before the flush's output, while it ran, or long after;
//  L3 an event of any other flow says no reason;
//  L4 a deletion's reason is given to one event at most.

import t from 'tap';
import fc from 'fast-check';
import { DELETED_FLOW_TTL_MS, FlushLedger, tupleKey, type ReleasedEvent } from '../../../src/core/audit/flush-ledger.js';
import type { FlowEvent } from '../../../src/core/audit/reader-lines.js';
import type { FlushReason } from '../../../src/core/audit/record.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 10_000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);

const FLOWS = 8;
const eventOf = (flow: number): FlowEvent => ({
  kind: 'end',
  id: flow,
  protocol: 6,
  tcpState: 'ESTABLISHED',
  orig: { src: '198.51.100.27', dst: '10.0.0.5', sport: 40000 + flow, dport: 6379 },
  reply: { src: '10.0.1.5', dst: '10.0.0.5', sport: 6379, dport: 40000 + flow },
  counters: undefined,
  mark: 0x1000000,
  startMs: undefined,
  stopMs: undefined,
  portid: 1,
  receivedMs: 0,
});

type Op = { kind: 'event'; flow: number } | { kind: 'begin' } | { kind: 'end'; reason: FlushReason; flows: number[] };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(FLOWS - 1).map((flow) => ({ kind: 'event' as const, flow })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'begin' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), reason: fc.constantFrom<FlushReason>('target-moved', 'revoked'), flows: fc.subarray([...Array(FLOWS).keys()]) }) },
);

t.test(`L1–L4 over random interleavings (${RUNS} sequences, seed ${SEED})`, async (t) => {
  let sequences = 0;
  let flushedSeen = 0;
  const result = fc.check(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      sequences++;
      const ledger = new FlushLedger();
      let running = 0;
      const sent: number[] = [];
      const released: ReleasedEvent[] = [];
      /** Per flow: reasons of deletions not yet given to an event, oldest first; the model of L2 and L4. */
      const owed = new Map<number, FlushReason[]>();
      const settle = (out: ReleasedEvent[]) => {
        for (const r of out) {
          const flow = r.event.id!;
          const expected = owed.get(flow)?.at(-1);
          if (r.flushed !== expected) throw new Error(`flow ${flow}: reason ${r.flushed}, expected ${expected}`);
          if (expected !== undefined) owed.delete(flow);
          if (r.flushed) flushedSeen++;
          released.push(r);
        }
      };
      for (const o of ops) {
        if (o.kind === 'begin') {
          ledger.begin();
          running++;
        } else if (o.kind === 'end') {
          if (running === 0) continue; // the reconciler ends only the flushes it began
          running--;
          for (const flow of o.flows) owed.set(flow, [...(owed.get(flow) ?? []), o.reason]);
          const out = ledger.end(o.reason, o.flows.map((f) => eventOf(f).orig), 0);
          if (running > 0 && out.length > 0) throw new Error('released while a flush runs');
          settle(out);
        } else {
          sent.push(o.flow);
          const event = eventOf(o.flow);
          const out = ledger.ended(event);
          if (running > 0) {
            if (out !== 'held') throw new Error('released while a flush runs');
          } else if (out === 'held') throw new Error('held with no flush running');
          else settle([out === undefined ? { event } : { event, flushed: out }]);
        }
      }
      while (running > 0) {
        running--;
        settle(ledger.release());
      }
      const counts = (list: number[]) => list.slice().sort((a, b) => a - b).join(',');
      if (counts(released.map((r) => r.event.id!)) !== counts(sent)) throw new Error(`sent ${counts(sent)}, released ${counts(released.map((r) => r.event.id!))}`);
      return true;
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\nreplay: AUDIT_SEED=${SEED} npx tap ${import.meta.filename}` : 'L1–L4 held');
  t.equal(sequences, RUNS, `${sequences} sequences`);
  t.ok(flushedSeen > RUNS / 10, `${flushedSeen} events carried a flush's reason`);
});

t.test('a deletion whose event never comes is forgotten after a while', async (t) => {
  const ledger = new FlushLedger();
  ledger.begin();
  ledger.end('target-moved', [eventOf(1).orig, eventOf(2).orig], 1_000);
  t.equal(ledger.waiting, 2);
  ledger.expire(1_000 + DELETED_FLOW_TTL_MS - 1);
  t.equal(ledger.waiting, 2, 'not yet');
  ledger.expire(1_000 + DELETED_FLOW_TTL_MS);
  t.equal(ledger.waiting, 0, 'forgotten: the reader lost that event, and an overrun said so');
  t.equal(ledger.ended(eventOf(1)), undefined, 'a late event then says no flush');
  t.equal(tupleKey(eventOf(3).orig), '198.51.100.27:40003>10.0.0.5:6379');
});
