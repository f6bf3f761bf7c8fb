import t from 'tap';
import {
  CONFIRMED_SHARE,
  afterLeaseWrite,
  afterRelease,
  beginRelease,
  confirmedUntil,
  decideLease,
  holdConfirmed,
  initialLeaseMemory,
  nextLeaseStepAt,
  noteLeaseRead,
  noteTerm,
  releaseWrite,
  renewal,
  renewEveryMs,
  type Clocks,
  type LeaseItem,
  type LeaseMemory,
  type LeaseRead,
  type LeaseWrite,
} from '../../../src/core/ha/lease.js';
import { CLOCK_JUMP_SHARE, renewRetryMs, watchEveryMs } from '../../../src/core/ha/timing.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const LEASE = 9000;
const WALL = 1_800_000_000_000;
const settings = (self: string, mayTakeFree?: boolean) => ({ self, leaseMs: LEASE, ...(mayTakeFree === undefined ? {} : { mayTakeFree }) });
const item = (holder: string | null, version: string, term = 1, leaseMs = LEASE): LeaseRead => ({ kind: 'item', item: { holder, version, term, leaseMs } });
const absent: LeaseRead = { kind: 'absent' };
const down: LeaseRead = { kind: 'unavailable', error: 'ECONNREFUSED' };
/** Both clocks at monotonic `ms`, the wall clock in step (no suspend). */
const at = (ms: number, wallOffset = 0): Clocks => ({ monotonic: ms, wall: WALL + ms + wallOffset });
const held = (version: string, term: number, sentAt: number, maybe: string[] = []): LeaseMemory => ({ held: { version, term, sentAt, wallAt: WALL + sentAt, maybe } });
const renewWrite = (expect: string[], version: string, term: number): LeaseWrite => ({ kind: 'renew', expect, item: { holder: A, version, term, leaseMs: LEASE } });

t.test('an empty table: acquire at once, on condition that no item exists, with term 1', async (t) => {
  const d = decideLease(initialLeaseMemory(), absent, at(100), settings(A), 'tok-0001');
  t.same(d.write, { kind: 'acquire', expect: null, reason: 'free', item: { holder: A, version: 'tok-0001', term: 1, leaseMs: LEASE } });
  t.equal(d.role, 'standby', 'not leader before the store accepts');
  const after = afterLeaseWrite(d.memory, d.write!, { kind: 'accepted' }, at(100));
  t.same(after.held, { version: 'tok-0001', term: 1, sentAt: 100, wallAt: WALL + 100, maybe: [] });
  t.equal(after.highestTerm, 1);
});

t.test('the holder renews lease/3 after its last accepted renewal, without reading, on condition of its own version, keeping its term', async (t) => {
  let memory: LeaseMemory = { ...held('v1-aaaaaa', 4, 0), lastStepAt: 0 };
  t.equal(nextLeaseStepAt(memory, LEASE), renewEveryMs(LEASE), 'due a third of a lease after the send');
  const write = renewal(memory, A, LEASE, 'v2-bbbbbb');
  t.same(write, renewWrite(['v1-aaaaaa'], 'v2-bbbbbb', 4));
  memory = afterLeaseWrite(memory, write!, { kind: 'accepted' }, at(3000));
  t.same(memory.held, { version: 'v2-bbbbbb', term: 4, sentAt: 3000, wallAt: WALL + 3000, maybe: [] });
  t.equal(nextLeaseStepAt(memory, LEASE), 3000 + renewEveryMs(LEASE));
  t.equal(CONFIRMED_SHARE, 0.9);
  t.ok(holdConfirmed(memory, at(3000 + LEASE * 0.9 - 1), LEASE));
  t.equal(confirmedUntil(memory, at(3000), LEASE), 3000 + LEASE * 0.9);
  t.notOk(holdConfirmed(memory, at(3000 + LEASE * 0.9), LEASE), 'a hold is confirmed for 90% of a lease from the send of its last accepted write');
});

t.test('a renewal without an answer: retried soon, and the next one may find either version', async (t) => {
  let memory: LeaseMemory = held('v1-aaaaaa', 2, 0);
  const first = renewal(memory, A, LEASE, 'v2-aaaaaa')!;
  memory = afterLeaseWrite(memory, first, { kind: 'unavailable', error: 'timeout' }, at(3000));
  t.same(memory.held, { ...held('v1-aaaaaa', 2, 0).held, maybe: ['v2-aaaaaa'] }, 'the accepted version still counts; the unanswered one may have landed');
  t.equal(nextLeaseStepAt(memory, LEASE), 3000 + renewRetryMs(LEASE), 'the next attempt right after the retry spacing, not a third of a lease later');
  const second = renewal(memory, A, LEASE, 'v3-aaaaaa')!;
  t.same(second.expect, ['v1-aaaaaa', 'v2-aaaaaa'], 'conditional on either');
  memory = afterLeaseWrite(memory, second, { kind: 'accepted' }, at(3600));
  t.same(memory.held, { version: 'v3-aaaaaa', term: 2, sentAt: 3600, wallAt: WALL + 3600, maybe: [] });
  let many: LeaseMemory = held('v1-aaaaaa', 2, 0);
  for (let i = 0; i < 9; i++) many = afterLeaseWrite(many, renewal(many, A, LEASE, `u${i}-aaaaaa`)!, { kind: 'unavailable', error: 'timeout' }, at(3000 + i));
  t.equal(many.held?.maybe.length, 4, 'at most four unanswered versions are remembered');
});

t.test('a suspend: the wall clock ran on while the monotonic clock stood still, so the hold is not confirmed', async (t) => {
  const memory = held('v1-aaaaaa', 2, 1000);
  t.ok(holdConfirmed(memory, at(2000), LEASE));
  t.ok(holdConfirmed(memory, at(2000, LEASE * CLOCK_JUMP_SHARE - 1), LEASE), 'a wall clock a little ahead (slewing, rates 1% apart) is fine');
  t.notOk(holdConfirmed(memory, at(2000, LEASE * CLOCK_JUMP_SHARE), LEASE), 'a jump of 5% of a lease or more beyond the monotonic clock is a suspend');
  t.ok(holdConfirmed(memory, at(2000, -60_000), LEASE), 'a wall clock set back (NTP) says nothing about the hold');
  t.notOk(holdConfirmed({ ...memory, releasing: true }, at(2000), LEASE), 'a handover under way: nothing asserted');
  t.equal(renewal({ ...memory, releasing: true }, A, LEASE, 'x-0000000'), undefined, 'nor renewed');
});

t.test('a standby reads every watch period and takes over only after the version stood still for a whole lease on its own clock', async (t) => {
  let memory = noteLeaseRead(initialLeaseMemory(), 5_000_000);
  t.equal(nextLeaseStepAt(memory, LEASE), 5_000_000 + watchEveryMs(LEASE));
  // Its clock reads 5,000,000 where the leader's read anything else: only differences count.
  let d = decideLease(memory, item(A, 'v1-aaaaaa', 3), at(5_000_000), settings(B), 'x-0000000');
  t.same([d.role, d.write], ['standby', undefined]);
  memory = d.memory;
  d = decideLease(memory, item(A, 'v1-aaaaaa', 3), at(5_000_000 + LEASE - 1), settings(B), 'x-0000001');
  t.equal(d.write, undefined, 'one ms short of a lease');
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), at(5_000_000 + LEASE + 5), settings(B), 'x-0000002');
  t.equal(d.write, undefined, 'a renewal restarts the wait');
  memory = d.memory;
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), at(5_000_000 + 2 * LEASE + 4), settings(B), 'x-0000003');
  t.equal(d.write, undefined);
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), at(5_000_000 + 2 * LEASE + 5), settings(B), 'x-0000004');
  t.same(d.write, { kind: 'acquire', expect: 'v2-aaaaaa', reason: 'expired', item: { holder: B, version: 'x-0000004', term: 4, leaseMs: LEASE } }, 'the next term, on condition of the version it watched');
});

t.test("the longer of the holder's lease and its own is waited", async (t) => {
  const first = decideLease(initialLeaseMemory(), item(A, 'v1-aaaaaa', 1, 20_000), at(0), settings(B), 'x-0000000');
  t.equal(decideLease(first.memory, item(A, 'v1-aaaaaa', 1, 20_000), at(LEASE), settings(B), 'x-0000001').write, undefined);
  t.equal(decideLease(first.memory, item(A, 'v1-aaaaaa', 1, 20_000), at(20_000), settings(B), 'x-0000002').write?.kind, 'acquire');
});

t.test('an outage never counts towards a takeover: the standby watches a whole lease again', async (t) => {
  let d = decideLease(initialLeaseMemory(), item(A, 'v1-aaaaaa'), at(0), settings(B), 'x-0000000');
  d = decideLease(d.memory, down, at(5000), settings(B), 'x-0000001');
  t.same([d.role, d.unavailable, d.write], ['standby', 'ECONNREFUSED', undefined]);
  d = decideLease(d.memory, item(A, 'v1-aaaaaa'), at(60_000), settings(B), 'x-0000002');
  t.equal(d.write, undefined, 'back after a minute: the same version is watched from now');
  t.equal(decideLease(d.memory, item(A, 'v1-aaaaaa'), at(60_000 + LEASE), settings(B), 'x-0000003').write?.kind, 'acquire');
});

t.test('a holder that reads another version or holder steps down at once; a refused renewal too', async (t) => {
  const memory = held('v1-aaaaaa', 2, 0);
  for (const [name, read] of [['taken', item(B, 'x-0000009', 3)], ['released by hand', item(null, 'x-0000009', 2)], ['deleted', absent]] as const) {
    const d = decideLease(memory, read, at(100), settings(A), 'v2-aaaaaa');
    t.same([d.role, d.steppedDown, d.memory.held], ['standby', true, undefined], name);
  }
  const mine = decideLease(held('v1-aaaaaa', 2, 0, ['v2-aaaaaa']), item(A, 'v2-aaaaaa', 2), at(100), settings(A), 'v3-aaaaaa');
  t.same([mine.role, mine.memory.held?.version, mine.memory.held?.maybe], ['leader', 'v2-aaaaaa', []], 'an unanswered renewal that landed is its own');
  const refused = afterLeaseWrite(memory, renewWrite(['v1-aaaaaa'], 'v2-aaaaaa', 2), { kind: 'conflict' }, at(3000));
  t.equal(refused.held, undefined, 'a refused renewal: no longer the holder');
});

t.test('an acquisition without an answer: the next read says whether it landed', async (t) => {
  const d = decideLease({}, absent, at(0), settings(A), 'v1-aaaaaa');
  const unknown = afterLeaseWrite(d.memory, d.write!, { kind: 'unavailable', error: 'timeout' }, at(10));
  t.equal(unknown.held, undefined);
  t.match(unknown.pending, { version: 'v1-aaaaaa', sentAt: 10 });
  const landed = decideLease(unknown, item(A, 'v1-aaaaaa', 1), at(600), settings(A), 'v2-aaaaaa');
  t.same([landed.role, landed.memory.held], ['leader', { version: 'v1-aaaaaa', term: 1, sentAt: 10, wallAt: WALL + 10, maybe: [] }], 'held from the send of the write that landed');
  const lost = decideLease(unknown, item(B, 'b-aaaaaa', 1), at(600), settings(A), 'v2-aaaaaa');
  t.same([lost.role, lost.memory.held, lost.memory.pending], ['standby', undefined, undefined]);
});

t.test("this instance's own lease from before a restart is taken back at once, in a new term", async (t) => {
  const d = decideLease(initialLeaseMemory(), item(A, 'v7-aaaaaa', 7), at(0), settings(A), 'n-0000001');
  t.same(d.write, { kind: 'acquire', expect: 'v7-aaaaaa', reason: 'restarted', item: { holder: A, version: 'n-0000001', term: 8, leaseMs: LEASE } });
});

t.test('a config that differs from a running peer takes nothing free, but still replaces a holder that stopped renewing', async (t) => {
  t.equal(decideLease({}, absent, at(0), settings(A, false), 'n-0000001').write, undefined, 'no free lease');
  t.equal(decideLease({}, item(null, 'r-0000001'), at(0), settings(A, false), 'n-0000001').write, undefined, 'no released lease');
  t.equal(decideLease({}, item(A, 'v7-aaaaaa', 7), at(0), settings(A, false), 'n-0000001').write, undefined, 'not even its own after a restart');
  const watching = decideLease({}, item(B, 'v1-aaaaaa'), at(0), settings(A, false), 'n-0000001');
  t.match(decideLease(watching.memory, item(B, 'v1-aaaaaa'), at(LEASE), settings(A, false), 'n-0000002').write, { kind: 'acquire', reason: 'expired' }, 'a failing peer is replaced whatever its config');
});

t.test('a handover: nothing asserted from its start, the release conditional on any version the holder may have written, then a courtesy wait', async (t) => {
  const memory = held('v1-aaaaaa', 2, 0, ['v2-aaaaaa']);
  const releasing = beginRelease(memory)!;
  t.equal(beginRelease({}), undefined, 'nothing held, nothing to release');
  t.notOk(holdConfirmed(releasing, at(10), LEASE));
  const write = releaseWrite(releasing, LEASE, 'r-0000001')!;
  t.same(write, { expect: ['v1-aaaaaa', 'v2-aaaaaa'], item: { holder: null, version: 'r-0000001', term: 2, leaseMs: LEASE } });
  for (const [name, outcome] of [['accepted', { kind: 'accepted' }], ['no answer (it may have landed)', { kind: 'unavailable', error: 'timeout' }]] as const) {
    const after = afterRelease(releasing, outcome, 1000, LEASE);
    t.same([after.held, after.releasing, after.yieldUntil], [undefined, undefined, 1000 + LEASE], `${name}: nothing held, the courtesy wait set`);
    t.equal(decideLease(after, item(null, 'r-0000001', 2), at(1100), settings(A), 'a-0000001').write, undefined, `${name}: the releaser leaves a free lease to the peer`);
    t.equal(decideLease(after, item(A, 'v1-aaaaaa', 2), at(1100), settings(A), 'a-0000001').write, undefined, `${name}: and its own, when the release did not land`);
    t.equal(decideLease(after, item(null, 'r-0000001', 2), at(1000 + LEASE), settings(A), 'a-0000002').write?.kind, 'acquire', `${name}: nobody took it within a lease: it takes it back`);
  }
  const refused = afterRelease(releasing, { kind: 'conflict' }, 1000, LEASE);
  t.same([refused.held, refused.yieldUntil], [undefined, undefined], 'refused: someone else holds it already');
  t.same(decideLease({}, item(null, 'r-0000001', 2), at(1100), settings(B), 'b-0000001').write, { kind: 'acquire', expect: 'r-0000001', reason: 'free', item: { holder: B, version: 'b-0000001', term: 3, leaseMs: LEASE } }, 'the peer takes a released lease at once');
});

t.test('handed straight back: once the peer took the lease, the releaser may take it again at once when the peer releases it', async (t) => {
  const released = afterRelease(beginRelease(held('v1-aaaaaa', 2, 0))!, { kind: 'accepted' }, 1000, LEASE);
  const peerHolds = decideLease(released, item(B, 'b-0000001', 3), at(1500), settings(A), 'a-0000001');
  t.equal(peerHolds.memory.yieldUntil, undefined, 'the courtesy wait ends when the peer holds the lease');
  const backAgain = decideLease(peerHolds.memory, item(null, 'b-0000002', 3), at(2000), settings(A), 'a-0000002');
  t.match(backAgain.write, { kind: 'acquire', reason: 'free', expect: 'b-0000002' }, 'the lease the peer released is taken at once, well within a lease of the first release');
});

t.test('a new term is above every term seen on the lease or the map', async (t) => {
  const memory = noteTerm(noteTerm({}, 41), 12);
  t.equal(memory.highestTerm, 41);
  const d = decideLease(memory, absent, at(0), settings(A), 'n-0000001');
  t.equal((d.write?.item as LeaseItem).term, 42, 'a table emptied by hand cannot fence the new leader out of the map');
});

t.test("clocks 4% apart: the leader's confirmed window closes before the standby may take over", async (t) => {
  // Global time g: the leader's clock reads 0.96 g, the standby's 1.04 g. The leader's write is sent at g = 0 and seen by the standby at once.
  const leader = afterLeaseWrite({}, { kind: 'acquire', expect: null, reason: 'free', item: { holder: A, version: 'v1-aaaaaa', term: 1, leaseMs: LEASE } }, { kind: 'accepted' }, { monotonic: 0, wall: WALL });
  let standby = decideLease({}, item(A, 'v1-aaaaaa'), at(0), settings(B), 'x-0000000').memory;
  let g = 0;
  for (; g < 2 * LEASE; g++) {
    const d = decideLease(standby, item(A, 'v1-aaaaaa'), at(1.04 * g), settings(B), 'x-0000001');
    standby = d.memory;
    if (d.write?.kind === 'acquire') break;
  }
  t.equal(g, Math.ceil(LEASE / 1.04), 'the standby takes over after one lease on its own (fast) clock');
  t.notOk(holdConfirmed(leader, { monotonic: 0.96 * g, wall: WALL + g }, LEASE), 'by then the (slow) leader no longer counts its hold as confirmed');
});
