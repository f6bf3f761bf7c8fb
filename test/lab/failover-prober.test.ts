// The failover prober's summary: pure arithmetic over attempts, no namespaces.

import t from 'tap';
import { errorKind, summarizeAttempts, type Attempt } from '../../lab/failover-prober.js';

const ok = (start: number, end: number, value = 'redis-11'): Attempt => ({ start, end, ok: true, value });
const fail = (start: number, end: number, error = 'connect timeout'): Attempt => ({ start, end, ok: false, error });

t.test('no attempts at all', async (t) => {
  t.same(summarizeAttempts([]), {
    attempts: 0,
    failures: 0,
    answeredBy: {},
    changes: [],
    firstAttemptAt: null,
    lastSuccessAt: null,
    firstFailureAt: null,
    firstSuccessAfterOutageAt: null,
    outageMs: null,
    longestGapMs: null,
    longestGap: null,
    errors: {},
  });
});

t.test('all successes: the longest gap is between successive ends, whatever order the attempts come in', async (t) => {
  const s = summarizeAttempts([ok(20, 23), ok(0, 2), ok(10, 40), ok(30, 31)]);
  t.equal(s.attempts, 4);
  t.equal(s.failures, 0);
  // ends sorted: 2, 23, 31, 40 → gaps 21, 8, 9
  t.equal(s.longestGapMs, 21);
  t.same(s.longestGap, { from: 2, to: 23 });
  t.equal(s.firstAttemptAt, 0);
  t.equal(s.lastSuccessAt, 40);
  t.equal(s.firstFailureAt, null);
  t.equal(s.firstSuccessAfterOutageAt, null);
  t.equal(s.outageMs, null);
  t.same(s.answeredBy, { 'redis-11': 4 });
  t.same(s.changes, [{ at: 2, value: 'redis-11' }]);
});

t.test('an outage: first failure, first success started after it, the gap across it', async (t) => {
  const attempts = [
    ok(0, 1),
    ok(10, 11),
    fail(20, 270),
    // Started before the first failure, answered late: not a recovery.
    ok(15, 300),
    fail(30, 280, 'refused'),
    fail(40, 290),
    ok(50, 400, 'redis-11'),
    ok(60, 410, 'redis-12'),
    ok(70, 415, 'redis-12'),
  ];
  const s = summarizeAttempts(attempts);
  t.equal(s.attempts, 9);
  t.equal(s.failures, 3);
  t.equal(s.firstFailureAt, 20);
  t.equal(s.firstSuccessAfterOutageAt, 400, 'the attempt started at 15 ended at 300 but began before the outage');
  t.equal(s.outageMs, 380);
  t.equal(s.lastSuccessAt, 415);
  t.equal(s.longestGapMs, 289, 'ends 11 → 300');
  t.same(s.longestGap, { from: 11, to: 300 });
  t.same(s.errors, { 'connect timeout': 2, refused: 1 });
  t.same(s.answeredBy, { 'redis-11': 4, 'redis-12': 2 });
  t.same(s.changes, [
    { at: 1, value: 'redis-11' },
    { at: 410, value: 'redis-12' },
  ]);
});

t.test('never recovers', async (t) => {
  const s = summarizeAttempts([ok(0, 1), fail(10, 260), fail(20, 270)]);
  t.equal(s.firstFailureAt, 10);
  t.equal(s.firstSuccessAfterOutageAt, null);
  t.equal(s.outageMs, null);
  t.equal(s.longestGapMs, null, 'one success has no gap');
});

t.test('at most five failure reasons, the most frequent first', async (t) => {
  const reasons = ['a', 'b', 'b', 'c', 'd', 'e', 'f', 'f', 'f'];
  const s = summarizeAttempts(reasons.map((r, i) => fail(i, i + 1, r)));
  t.same(Object.keys(s.errors), ['f', 'b', 'a', 'c', 'd']);
  t.same(s.errors, { f: 3, b: 2, a: 1, c: 1, d: 1 });
});

t.test('probe errors reduce to a kind', async (t) => {
  t.equal(errorKind('timed out after 250 ms connecting to 198.18.0.100:30001 (no answer to SYN: …)'), 'connect timeout');
  t.equal(errorKind('198.18.0.100:30001 accepted the connection but did not answer within 250 ms'), 'answer timeout');
  t.equal(errorKind('connection to 198.18.0.100:30001 refused (nothing listening, or a REJECT rule)'), 'refused');
  t.equal(errorKind('198.18.0.100:30001 is unreachable (EHOSTUNREACH): no route from this namespace'), 'unreachable');
  t.equal(errorKind('198.18.0.100:30001 reset the connection'), 'reset');
  t.equal(errorKind('198.18.0.100:30001 closed the connection before answering'), 'closed');
  t.equal(errorKind('x'.repeat(100)), 'x'.repeat(80));
});
