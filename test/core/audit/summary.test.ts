// `cachenat audit`'s figures: a worked example, the text people read, the
// window's bounds, and (on AUDIT_RUNS random logs, default 2,000) totals that
// add up however the flows fall into caches and clients.

import t from 'tap';
import fc from 'fast-check';
import { endRecordOf, gapRecordOf, type AuditRecord, type EndReason } from '../../../src/core/audit/record.js';
import { parseWindowBound, renderSummaryText, summarise, UNKNOWN_CACHE } from '../../../src/core/audit/summary.js';
import type { FlowEvent } from '../../../src/core/audit/reader-lines.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 2_000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);

const T0 = Date.parse('2026-12-07T12:00:00Z');
const CACHES: Record<string, { key: string; cache: string } | undefined> = {
  orders: { key: 'primary/orders', cache: 'orders' },
  ordersRo: { key: 'reader/orders', cache: 'orders' },
  mc: { key: 'node/mc/0001', cache: 'mc' },
  gone: undefined,
};

function flow(client: string, cache: keyof typeof CACHES, endMs: number, bytes: number, reason: EndReason = 'closed', port = 40000): AuditRecord {
  const event: FlowEvent = {
    kind: 'end',
    id: 1,
    protocol: 6,
    tcpState: reason === 'closed' ? 'TIME_WAIT' : 'ESTABLISHED',
    orig: { src: client, dst: '10.0.0.5', sport: port, dport: 6379 },
    reply: { src: '10.0.1.5', dst: '10.0.0.5', sport: 6379, dport: port },
    counters: { origPackets: 1, origBytes: bytes, replyPackets: 1, replyBytes: 2 * bytes },
    mark: 0x1000000,
    startMs: endMs - 1000,
    stopMs: endMs,
    portid: 0,
    receivedMs: endMs,
  };
  const id = CACHES[cache];
  return endRecordOf(event, id && { ...id, kind: id.key.startsWith('node') ? 'node' : id.key.startsWith('reader') ? 'reader' : 'primary', engine: 'redis' }, `${client}/32`, reason);
}

t.test('a worked example', async (t) => {
  const records = [
    flow('198.51.100.1', 'orders', T0 + 1000, 100),
    flow('198.51.100.1', 'ordersRo', T0 + 2000, 100),
    flow('198.51.100.2', 'orders', T0 + 3000, 1000),
    flow('198.51.100.2', 'mc', T0 + 4000, 10, 'revoked', 41000),
    flow('198.51.100.3', 'gone', T0 + 5000, 1),
    flow('198.51.100.9', 'orders', T0 - 1, 999_999), // before the window
    flow('198.51.100.9', 'orders', T0 + 3_600_000, 999_999), // at its end: not in it
    gapRecordOf('overrun', T0 + 2500, { lost: 577 }),
    gapRecordOf('started', T0 - 5000),
  ];
  const s = summarise(records, { fromMs: T0, toMs: T0 + 3_600_000 });
  t.equal(s.flows, 5);
  t.same(s.totals, { flows: 5, bytesFromClient: 1211, bytesToClient: 2422 });
  t.same(s.reasons, { closed: 4, 'timed-out': 0, 'target-moved': 0, revoked: 1, deleted: 0 });
  t.same(
    s.caches.map((c) => [c.cache, c.flows, c.targets, c.clients.map((x) => [x.client, x.flows, x.bytesFromClient])]),
    [
      ['orders', 3, ['primary/orders', 'reader/orders'], [['198.51.100.1', 2, 200], ['198.51.100.2', 1, 1000]]],
      ['mc', 1, ['node/mc/0001'], [['198.51.100.2', 1, 10]]],
      [UNKNOWN_CACHE, 1, [], [['198.51.100.3', 1, 1]]],
    ],
    'caches busiest first; in each, clients by connections, then bytes',
  );
  t.same(s.revoked, [{ end: '2026-12-07T12:00:04.000Z', clientAddress: '198.51.100.2', clientPort: 41000, source: '198.51.100.2/32', cache: 'mc', targetKey: 'node/mc/0001', bytesFromClient: 10, bytesToClient: 20 }]);
  t.same(s.gaps, [{ cause: 'overrun', at: '2026-12-07T12:00:02.500Z', since: null, lost: 577 }], 'the gap in the window, not the start before it');
  const text = renderSummaryText(s);
  t.match(text, /^2026-12-07T12:00:00.000Z to 2026-12-07T13:00:00.000Z \(1h\): 5 connections ended, 1\.2 kB from clients, 2\.4 kB to clients$/m);
  t.match(text, /^how they ended: 4 closed, 0 timed-out, 0 target-moved, 1 revoked, 0 deleted$/m);
  t.match(text, /^orders\s+3\s+1\.2 kB\s+2\.4 kB\s+primary\/orders reader\/orders$/m);
  t.match(text, /^ {2}198\.51\.100\.1\s+2\s+200 B\s+400 B$/m);
  t.match(text, /^cut by a revocation \(1\):$/m);
  t.match(text, /2026-12-07T12:00:04.000Z\s+198\.51\.100\.2:41000\s+198\.51\.100\.2\/32\s+mc\s+node\/mc\/0001/);
  t.match(text, /2026-12-07T12:00:02.500Z overrun: 577 flow ends dropped by the kernel/);
});

t.test('top clients: the rest are counted, not listed', async (t) => {
  const records = [...Array(13).keys()].map((i) => flow(`198.51.100.${i + 1}`, 'mc', T0 + 1000 + i, 10 + i));
  const s = summarise(records, { fromMs: T0, toMs: T0 + 60_000 }, 10);
  t.equal(s.caches[0]!.clients.length, 10);
  t.equal(s.caches[0]!.otherClients, 3);
  t.equal(s.caches[0]!.clients[0]!.client, '198.51.100.13', 'equal connections: more bytes first');
  t.match(renderSummaryText(s), /\(3 more clients\)/);
});

t.test('window bounds: a time ago or an ISO 8601 time', async (t) => {
  const now = Date.parse('2026-12-07T13:00:00Z');
  t.equal(parseWindowBound('90m', now), now - 90 * 60_000);
  t.equal(parseWindowBound('24h', now), now - 86_400_000);
  t.equal(parseWindowBound('7d', now), now - 7 * 86_400_000);
  t.equal(parseWindowBound('2026-12-07T12:00:00Z', now), Date.parse('2026-12-07T12:00:00Z'));
  t.equal(parseWindowBound('2026-12-07', now), Date.parse('2026-12-07'));
  for (const bad of ['', 'yesterday', '-1h', '1y', '2026-13-01', '12:00']) t.equal(parseWindowBound(bad, now), undefined, JSON.stringify(bad));
});

t.test(`totals add up (${RUNS} random logs, seed ${SEED})`, async (t) => {
  let logs = 0;
  const record = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.constantFrom(...(Object.keys(CACHES) as (keyof typeof CACHES)[])), fc.integer({ min: -10_000, max: 70_000 }), fc.nat(1_000_000), fc.constantFrom<EndReason>('closed', 'revoked', 'target-moved', 'timed-out'));
  const result = fc.check(
    fc.property(fc.array(record, { maxLength: 60 }), fc.integer({ min: 1, max: 8 }), (rows, top) => {
      logs++;
      const records = rows.map(([c, cache, dt, bytes, reason]) => flow(`198.51.100.${c}`, cache, T0 + dt, bytes, reason));
      const s = summarise(records, { fromMs: T0, toMs: T0 + 60_000 }, top);
      const inWindow = rows.filter(([, , dt]) => dt >= 0 && dt < 60_000);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      return (
        s.flows === inWindow.length &&
        sum(s.caches.map((c) => c.flows)) === s.flows &&
        sum(s.caches.map((c) => c.bytesFromClient)) === s.totals.bytesFromClient &&
        sum(Object.values(s.reasons)) === s.flows &&
        s.revoked.length === s.reasons.revoked &&
        s.caches.every((c) => c.clients.length <= top && c.clients.length + c.otherClients === new Set(inWindow.filter(([, k]) => (CACHES[k]?.cache ?? UNKNOWN_CACHE) === c.cache).map(([cl]) => cl)).size) &&
        s.caches.every((c) => c.clients.every((x, i, a) => i === 0 || a[i - 1]!.flows >= x.flows))
      );
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\nreplay: AUDIT_SEED=${SEED} npx tap ${import.meta.filename}` : 'totals add up');
  t.equal(logs, RUNS, `${logs} logs`);
});
