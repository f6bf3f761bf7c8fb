// The reader's line protocol: lines as the reader prints them are read
// exactly, anything else is refused whole, and every event survives the trip
// through its own line (AUDIT_RUNS cases, default 10,000; AUDIT_SEED replays).

import t from 'tap';
import fc from 'fast-check';
import { parseReaderLine, readerLineOf } from '../../../src/core/audit/reader-lines.js';
import { EXAMPLE_EVENT, EXAMPLE_LINE, flowEvent } from '../../support/audit-arbitraries.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 10_000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);

const DESTROY = EXAMPLE_LINE;

t.test('lines as the reader prints them', async (t) => {
  t.same(parseReaderLine('R 1 buffer=33554432 filter=kernel events=destroy'), { type: 'ready', version: 1, buffer: 33554432, filter: 'kernel', events: 'destroy' });
  t.same(parseReaderLine('L 577 1154 1796650032355039263'), { type: 'overrun', lost: 577, receivedMs: 1796650032355 });
  t.same(parseReaderLine('L - - 1796650032355039263'), { type: 'overrun', lost: undefined, receivedMs: 1796650032355 }, 'an overrun the reader could not count');
  const line = parseReaderLine(DESTROY);
  t.equal(line?.type, 'event');
  if (line?.type !== 'event') return;
  t.same(line.event, EXAMPLE_EVENT, 'the kernel nanoseconds cut to whole milliseconds');
  const start = parseReaderLine('N - 6 1 198.18.0.10 198.18.0.1 59796 6379 198.19.0.11 198.19.0.1 6379 59796 - - - - 16777216 - - 0 1796650029904177659');
  t.same(start?.type === 'event' && [start.event.kind, start.event.id, start.event.tcpState, start.event.counters, start.event.startMs], ['start', undefined, 'SYN_SENT', undefined, undefined], 'a start: no id, no counters, no timestamps');
});

t.test('anything else is refused whole', async (t) => {
  const fields = DESTROY.split(' ');
  const variants: [string, string][] = [
    ['', 'empty'],
    ['X 1 2 3', 'an unknown kind'],
    [fields.slice(0, 20).join(' '), 'a field short'],
    [`${DESTROY} 7`, 'a field too many'],
    [DESTROY.replace('198.18.0.10', '198.18.0.300'), 'an address out of range'],
    [DESTROY.replace(' 59796 6379 198.19', ' 70000 6379 198.19'), 'a port out of range'],
    [DESTROY.replace('D 1137920278 6 7', 'D 1137920278 6 10'), 'a TCP state the kernel does not have'],
    [DESTROY.replace('16777216', '4294967296'), 'a mark wider than 32 bits'],
    [DESTROY.replace(' 1268 ', ' 12x8 '), 'a count that is not a number'],
    [DESTROY.replace(' 1268 ', ' -1 '), 'a negative count'],
    ['R 1 buffer=x filter=kernel events=destroy', 'a ready line without a size'],
    ['R 1 buffer=4096 filter=bpf events=destroy', 'a filter place the reader does not name'],
    ['L 1 2', 'an overrun without its time'],
  ];
  for (const [line, what] of variants) t.equal(parseReaderLine(line), undefined, what);
});

t.test(`every event reads back from its line (${RUNS} cases, seed ${SEED})`, async (t) => {
  let cases = 0;
  const result = fc.check(
    fc.property(flowEvent, fc.nat(2 ** 42), (e, receivedMs) => {
      cases++;
      const event = { ...e, receivedMs };
      const back = parseReaderLine(readerLineOf(event));
      return back?.type === 'event' && JSON.stringify(back.event, big) === JSON.stringify(event, big);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\nreplay: AUDIT_SEED=${SEED} npx tap ${import.meta.filename}` : 'round trip');
  t.equal(cases, RUNS, `${cases} cases ran`);
});

const big = (_: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
