// The audit log's schema: how an end reason is decided, what a line holds,
// and that `cachenat audit` reads back exactly what the daemon wrote, from the
// file or from the journal, and nothing that is not a record of this schema.
// AUDIT_RUNS cases (default 10,000); AUDIT_SEED replays.

import t from 'tap';
import fc from 'fast-check';
import { TCP_STATES, type TcpState } from '../../../src/core/audit/reader-lines.js';
import { auditLineOf, endReasonOf, endRecordOf, gapRecordOf, parseAuditLine, startRecordOf, END_REASONS, GAP_CAUSES, type AuditRecord, type FlushReason } from '../../../src/core/audit/record.js';
import type { ForwardIdentity } from '../../../src/core/audit/attribution.js';
import { EXAMPLE_EVENT, flowEvent } from '../../support/audit-arbitraries.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 10_000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);
const replay = `replay: AUDIT_SEED=${SEED} npx tap ${import.meta.filename}`;

const EVENT = EXAMPLE_EVENT;
const PRIMARY: ForwardIdentity = { key: 'primary/orders', kind: 'primary', engine: 'redis', cache: 'orders' };

t.test('how a flow ended', async (t) => {
  const cases: [TcpState | undefined, FlushReason | undefined, number, string][] = [
    ['TIME_WAIT', undefined, 0, 'closed'],
    ['CLOSE', undefined, 0, 'closed'],
    ['TIME_WAIT', 'target-moved', 4242, 'closed'], // already over: the flush only swept up its memory
    ['CLOSE', 'revoked', 4242, 'closed'],
    ['ESTABLISHED', 'target-moved', 4242, 'target-moved'],
    ['ESTABLISHED', 'revoked', 4242, 'revoked'],
    ['FIN_WAIT', 'revoked', 4242, 'revoked'], // half closed, still open one way: the flush cut it
    ['ESTABLISHED', undefined, 4242, 'deleted'], // someone else's conntrack -D
    ['SYN_SENT', undefined, 4242, 'deleted'],
    ['FIN_WAIT', undefined, 0, 'closed'],
    ['CLOSE_WAIT', undefined, 0, 'closed'],
    ['LAST_ACK', undefined, 0, 'closed'],
    ['ESTABLISHED', undefined, 0, 'timed-out'], // idle for nf_conntrack_tcp_timeout_established
    ['SYN_SENT', undefined, 0, 'timed-out'], // the target never answered
    ['SYN_RECV', undefined, 0, 'timed-out'],
    [undefined, undefined, 0, 'timed-out'],
  ];
  for (const [tcpState, flushed, portid, reason] of cases) t.equal(endReasonOf({ tcpState, portid }, flushed), reason, `${tcpState} ${flushed ?? 'no flush'} portid ${portid}`);
  let all = 0;
  for (const state of [...TCP_STATES, undefined]) for (const flushed of [undefined, 'target-moved', 'revoked'] as const) for (const portid of [0, 1]) {
    t.ok(END_REASONS.includes(endReasonOf({ tcpState: state, portid }, flushed)), 'a reason of the schema');
    all++;
  }
  t.equal(all, 66);
});

t.test('an end line', async (t) => {
  const record = endRecordOf(EVENT, PRIMARY, '198.18.0.10/32', 'closed');
  t.equal(
    auditLineOf(record),
    '{"audit":true,"schema":1,"event":"end","start":"2026-12-07T13:27:09.903Z","end":"2026-12-07T13:27:11.905Z","durationSeconds":2.002,"clientAddress":"198.18.0.10","clientPort":59796,"listenAddress":"198.18.0.1","listenPort":6379,"source":"198.18.0.10/32","targetKey":"primary/orders","kind":"primary","engine":"redis","cache":"orders","targetAddress":"198.19.0.11","targetPort":6379,"bytesFromClient":1268,"bytesToClient":5268,"packetsFromClient":5,"packetsToClient":5,"reason":"closed","tcpState":"TIME_WAIT","conntrackId":1137920278}',
    'the keys in their fixed order',
  );
  const bare = endRecordOf({ ...EVENT, counters: undefined, startMs: undefined, stopMs: undefined, id: undefined, tcpState: undefined }, undefined, 'unlisted', 'timed-out');
  t.same(
    [bare.start, bare.end, bare.durationSeconds, bare.bytesFromClient, bare.packetsToClient, bare.targetKey, bare.cache, bare.tcpState, bare.conntrackId],
    [null, '2026-12-07T13:27:12.355Z', null, null, null, null, null, null, null],
    'without acct, timestamps or a known forward: null, and the end is when the reader heard of it',
  );
  const start = startRecordOf({ ...EVENT, kind: 'start' }, PRIMARY, '198.18.0.10/32');
  t.same(Object.keys(start), ['audit', 'schema', 'event', 'start', 'clientAddress', 'clientPort', 'listenAddress', 'listenPort', 'source', 'targetKey', 'kind', 'engine', 'cache', 'targetAddress', 'targetPort', 'conntrackId']);
  t.same(gapRecordOf('overrun', Date.parse('2026-12-07T13:00:00Z'), { lost: 577 }), { audit: true, schema: 1, event: 'gap', cause: 'overrun', at: '2026-12-07T13:00:00.000Z', since: null, lost: 577 });
});

const identity: fc.Arbitrary<ForwardIdentity | undefined> = fc.option(
  fc.record({ key: fc.constantFrom('primary/orders', 'node/mc/0001', 'serverless/sess'), kind: fc.constantFrom('primary' as const, 'node' as const, 'serverless' as const), engine: fc.constantFrom('redis' as const, 'valkey' as const, 'memcached' as const), cache: fc.string({ minLength: 1, maxLength: 20 }) }),
  { nil: undefined },
);
const time = fc.integer({ min: Date.parse('2020-01-01T00:00:00Z'), max: Date.parse('2040-01-01T00:00:00Z') });
const record: fc.Arbitrary<AuditRecord> = fc.oneof(
  fc.tuple(flowEvent, identity, fc.string(), fc.constantFrom(...END_REASONS), time).map(([e, id, source, reason, now]) => endRecordOf({ ...e, receivedMs: now }, id, source, reason)),
  fc.tuple(flowEvent, identity, fc.string(), time).map(([e, id, source, now]) => startRecordOf({ ...e, receivedMs: now }, id, source)),
  fc.tuple(fc.constantFrom(...GAP_CAUSES), time, fc.option(time, { nil: undefined }), fc.option(fc.nat(), { nil: undefined })).map(([cause, at, sinceMs, lost]) =>
    gapRecordOf(cause, at, { ...(sinceMs === undefined ? {} : { sinceMs }), ...(lost === undefined ? {} : { lost }) }),
  ),
);

t.test(`what is written is read back the same, from the file or the journal (${RUNS} cases, seed ${SEED})`, async (t) => {
  let cases = 0;
  const result = fc.check(
    fc.property(record, fc.boolean(), (r, journal) => {
      cases++;
      // The journal's line: the logger's own keys around the record's.
      const line = journal ? JSON.stringify({ level: 30, time: 1796650032355, ...r, msg: 'audit: flow ended' }) : auditLineOf(r);
      return JSON.stringify(parseAuditLine(line)) === JSON.stringify(r);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\n${replay}` : 'every record read back');
  t.equal(cases, RUNS, `${cases} cases ran`);
});

t.test(`any field missing or of the wrong kind: not a record (${RUNS} cases)`, async (t) => {
  let cases = 0;
  const wrongValues = [undefined, null, '', 'x', -1, 1.5, 70000, true, {}, [], '2026-13-45T00:00:00Z'];
  const result = fc.check(
    fc.property(record, fc.nat(), fc.constantFrom(...wrongValues), (r, which, wrong) => {
      const keys = Object.keys(r).filter((k) => !['audit', 'schema', 'event'].includes(k));
      const key = keys[which % keys.length]!;
      const broken = { ...r, [key]: wrong } as Record<string, unknown>;
      if (wrong === undefined) delete broken[key];
      const back = parseAuditLine(JSON.stringify(broken));
      // Some wrong values are right for some keys (null for a nullable one, 1.5 for a duration): then it must read as written.
      if (back === undefined) {
        cases++;
        return true;
      }
      return JSON.stringify(back) === JSON.stringify(broken);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\n${replay}` : 'refused or read exactly');
  t.ok(cases > RUNS / 2, `${cases} broken records refused`);
  for (const [line, what] of [
    ['{"audit":true,"schema":2,"event":"gap","cause":"overrun","at":"2026-12-07T13:00:00.000Z","since":null,"lost":1}', 'another schema version'],
    ['{"level":30,"msg":"ready"}', 'another log line'],
    ['{"audit":true,', 'cut short'],
    ['"audit":true', 'not an object'],
    ['{"audit":"true","schema":1,"event":"gap","cause":"overrun","at":"2026-12-07T13:00:00.000Z","since":null,"lost":1}', 'audit as text'],
  ] as const) t.equal(parseAuditLine(line), undefined, what);
});

t.test(`times: the same text as Date's, whatever the order of calls (${RUNS} cases)`, async (t) => {
  let cases = 0;
  const ms = fc.oneof(fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 }), fc.integer({ min: 1_700_000_000_000, max: 1_700_000_005_000 }));
  const result = fc.check(
    fc.property(fc.array(ms, { minLength: 1, maxLength: 20 }), (times) =>
      times.every((at) => {
        cases++;
        const written = gapRecordOf('overrun', at).at;
        return written === new Date(at).toISOString();
      }),
    ),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\n${replay}` : 'same text');
  t.ok(cases >= RUNS, `${cases} times`);
});
