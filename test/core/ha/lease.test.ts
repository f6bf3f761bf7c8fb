import t from 'tap';
import { CONFIRMED_SHARE, afterLeaseWrite, decideLease, holdConfirmed, initialLeaseMemory, noteTerm, releaseLease, renewEveryMs, type LeaseItem, type LeaseMemory, type LeaseRead } from '../../../src/core/ha/lease.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const LEASE = 9000;
const settings = (self: string) => ({ self, leaseMs: LEASE });
const item = (holder: string | null, version: string, term = 1, leaseMs = LEASE): LeaseRead => ({ kind: 'item', item: { holder, version, term, leaseMs } });
const absent: LeaseRead = { kind: 'absent' };
const down: LeaseRead = { kind: 'unavailable', error: 'ECONNREFUSED' };

t.test('an empty table: acquire at once, on condition that no item exists, with term 1', async (t) => {
  const d = decideLease(initialLeaseMemory(), absent, 100, settings(A), 'tok-0001');
  t.same(d.write, { kind: 'acquire', expect: null, reason: 'free', item: { holder: A, version: 'tok-0001', term: 1, leaseMs: LEASE } });
  t.equal(d.role, 'standby', 'not leader before the store accepts');
  const held = afterLeaseWrite(d.memory, d.write!, { kind: 'accepted' }, 100);
  t.same(held.held, { version: 'tok-0001', term: 1, sentAt: 100 });
});

t.test('a leader renews every third of a lease, on condition of its own version, keeping its term', async (t) => {
  let memory: LeaseMemory = { held: { version: 'v1-aaaaaa', term: 4, sentAt: 0 } };
  let d = decideLease(memory, item(A, 'v1-aaaaaa', 4), renewEveryMs(LEASE) - 1, settings(A), 'v2-bbbbbb');
  t.same([d.role, d.mayWriteMap, d.write], ['leader', true, undefined], 'not yet due');
  d = decideLease(memory, item(A, 'v1-aaaaaa', 4), renewEveryMs(LEASE), settings(A), 'v2-bbbbbb');
  t.same(d.write, { kind: 'renew', expect: 'v1-aaaaaa', item: { holder: A, version: 'v2-bbbbbb', term: 4, leaseMs: LEASE } });
  memory = afterLeaseWrite(d.memory, d.write!, { kind: 'accepted' }, 3000);
  t.same(memory.held, { version: 'v2-bbbbbb', term: 4, sentAt: 3000 });
  t.equal(CONFIRMED_SHARE, 0.9);
  t.ok(holdConfirmed(memory, 3000 + LEASE * 0.9 - 1, LEASE));
  t.notOk(holdConfirmed(memory, 3000 + LEASE * 0.9, LEASE), 'a hold is confirmed for 90% of a lease from the send of its last accepted write');
});

t.test('a standby takes over only after the version stood still for a whole lease on its own clock', async (t) => {
  let memory = initialLeaseMemory();
  // Its clock reads 5,000,000 where the leader's read anything else: only differences count.
  let d = decideLease(memory, item(A, 'v1-aaaaaa', 3), 5_000_000, settings(B), 'x-0000000');
  t.same([d.role, d.write], ['standby', undefined]);
  memory = d.memory;
  d = decideLease(memory, item(A, 'v1-aaaaaa', 3), 5_000_000 + LEASE - 1, settings(B), 'x-0000001');
  t.equal(d.write, undefined, 'one ms short of a lease');
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), 5_000_000 + LEASE + 5, settings(B), 'x-0000002');
  t.equal(d.write, undefined, 'a renewal restarts the wait');
  memory = d.memory;
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), 5_000_000 + 2 * LEASE + 4, settings(B), 'x-0000003');
  t.equal(d.write, undefined);
  d = decideLease(memory, item(A, 'v2-aaaaaa', 3), 5_000_000 + 2 * LEASE + 5, settings(B), 'x-0000004');
  t.same(d.write, { kind: 'acquire', expect: 'v2-aaaaaa', reason: 'expired', item: { holder: B, version: 'x-0000004', term: 4, leaseMs: LEASE } }, 'the next term, on condition of the version it watched');
});

t.test("the longer of the holder's lease and its own is waited", async (t) => {
  const first = decideLease(initialLeaseMemory(), item(A, 'v1-aaaaaa', 1, 20_000), 0, settings(B), 'x-0000000');
  t.equal(decideLease(first.memory, item(A, 'v1-aaaaaa', 1, 20_000), LEASE, settings(B), 'x-0000001').write, undefined);
  t.equal(decideLease(first.memory, item(A, 'v1-aaaaaa', 1, 20_000), 20_000, settings(B), 'x-0000002').write?.kind, 'acquire');
});

t.test('an outage never counts towards a takeover: the standby watches a whole lease again', async (t) => {
  let d = decideLease(initialLeaseMemory(), item(A, 'v1-aaaaaa'), 0, settings(B), 'x-0000000');
  d = decideLease(d.memory, down, 5000, settings(B), 'x-0000001');
  t.same([d.role, d.unavailable, d.write], ['standby', 'ECONNREFUSED', undefined]);
  d = decideLease(d.memory, item(A, 'v1-aaaaaa'), 60_000, settings(B), 'x-0000002');
  t.equal(d.write, undefined, 'back after a minute: the same version is watched from now');
  t.equal(decideLease(d.memory, item(A, 'v1-aaaaaa'), 60_000 + LEASE, settings(B), 'x-0000003').write?.kind, 'acquire');
});

t.test('fail-static: a leader whose store is down stays leader but may not write the map', async (t) => {
  const memory: LeaseMemory = { held: { version: 'v1-aaaaaa', term: 2, sentAt: 0 } };
  const d = decideLease(memory, down, 1000, settings(A), 'v2-aaaaaa');
  t.same([d.role, d.mayWriteMap, d.write, d.unavailable], ['leader', false, undefined, 'ECONNREFUSED']);
  t.same(d.memory.held, memory.held, 'it keeps what it holds (and with it the Elastic IP)');
  const back = decideLease(d.memory, item(A, 'v1-aaaaaa', 2), 60_000, settings(A), 'v2-aaaaaa');
  t.same([back.role, back.mayWriteMap, back.write?.kind], ['leader', false, 'renew'], 'back: an overdue renewal first, no map write until it is accepted');
});

t.test('a leader that finds another version or holder steps down at once', async (t) => {
  const memory: LeaseMemory = { held: { version: 'v1-aaaaaa', term: 2, sentAt: 0 } };
  for (const [name, read] of [['taken', item(B, 'x-0000009', 3)], ['released by hand', item(null, 'x-0000009', 2)], ['deleted', absent]] as const) {
    const d = decideLease(memory, read, 100, settings(A), 'v2-aaaaaa');
    t.same([d.role, d.mayWriteMap, d.steppedDown, d.memory.held], ['standby', false, true, undefined], name);
  }
  const refused = afterLeaseWrite(memory, { kind: 'renew', expect: 'v1-aaaaaa', item: { holder: A, version: 'v2-aaaaaa', term: 2, leaseMs: LEASE } }, { kind: 'conflict' }, 3000);
  t.equal(refused.held, undefined, 'a refused renewal: no longer the holder');
});

t.test('a write without an answer: the next read says whether it landed', async (t) => {
  const memory: LeaseMemory = { held: { version: 'v1-aaaaaa', term: 2, sentAt: 0 } };
  const write = { kind: 'renew' as const, expect: 'v1-aaaaaa', item: { holder: A, version: 'v2-aaaaaa', term: 2, leaseMs: LEASE } };
  const unknown = afterLeaseWrite(memory, write, { kind: 'unavailable', error: 'timeout' }, 3000);
  t.same(unknown.held, memory.held, 'the old version still counts');
  const landed = decideLease(unknown, item(A, 'v2-aaaaaa', 2), 3500, settings(A), 'v3-aaaaaa');
  t.same([landed.role, landed.memory.held], ['leader', { version: 'v2-aaaaaa', term: 2, sentAt: 3000 }]);
  const lost = decideLease(unknown, item(A, 'v1-aaaaaa', 2), 3500, settings(A), 'v3-aaaaaa');
  t.same([lost.role, lost.memory.held, lost.memory.pending], ['leader', memory.held, undefined], 'it did not land: renew again');
  t.equal(lost.write?.kind, 'renew');
});

t.test("this instance's own lease from before a restart is taken back at once, in a new term", async (t) => {
  const d = decideLease(initialLeaseMemory(), item(A, 'v7-aaaaaa', 7), 0, settings(A), 'n-0000001');
  t.same(d.write, { kind: 'acquire', expect: 'v7-aaaaaa', reason: 'restarted', item: { holder: A, version: 'n-0000001', term: 8, leaseMs: LEASE } });
});

t.test('a released lease is free at once, except for the instance that released it, for one lease', async (t) => {
  const memory: LeaseMemory = { held: { version: 'v1-aaaaaa', term: 2, sentAt: 0 } };
  const release = releaseLease(memory, 1000, LEASE, 'r-0000001')!;
  t.same([release.expect, release.item], ['v1-aaaaaa', { holder: null, version: 'r-0000001', term: 2, leaseMs: LEASE }]);
  t.equal(releaseLease({}, 0, LEASE, 'r-0000002'), undefined, 'nothing held, nothing to release');
  t.same(decideLease({}, item(null, 'r-0000001', 2), 1100, settings(B), 'b-0000001').write, { kind: 'acquire', expect: 'r-0000001', reason: 'free', item: { holder: B, version: 'b-0000001', term: 3, leaseMs: LEASE } });
  const self = decideLease(release.memory, item(null, 'r-0000001', 2), 1100, settings(A), 'a-0000001');
  t.same([self.role, self.write], ['standby', undefined], 'the releaser leaves it to the peer');
  t.equal(decideLease(self.memory, item(null, 'r-0000001', 2), 1000 + LEASE, settings(A), 'a-0000002').write?.kind, 'acquire', 'nobody took it within a lease: it takes it back');
});

t.test('handed straight back: once the peer took the lease, the releaser may take it again at once when the peer releases it', async (t) => {
  const release = releaseLease({ held: { version: 'v1-aaaaaa', term: 2, sentAt: 0 } }, 1000, LEASE, 'r-0000001')!;
  const peerHolds = decideLease(release.memory, item(B, 'b-0000001', 3), 1500, settings(A), 'a-0000001');
  t.equal(peerHolds.memory.yieldUntil, undefined, 'the courtesy wait ends when the peer holds the lease');
  const backAgain = decideLease(peerHolds.memory, item(null, 'b-0000002', 3), 2000, settings(A), 'a-0000002');
  t.match(backAgain.write, { kind: 'acquire', reason: 'free', expect: 'b-0000002' }, 'the lease the peer released is taken at once, well within a lease of the first release');
});

t.test('a new term is above every term seen on the lease or the map', async (t) => {
  const memory = noteTerm(noteTerm({}, 41), 12);
  t.equal(memory.highestTerm, 41);
  const d = decideLease(memory, absent, 0, settings(A), 'n-0000001');
  t.equal((d.write?.item as LeaseItem).term, 42, 'a table emptied by hand cannot fence the new leader out of the map');
});

t.test("clocks 4% apart: the leader's confirmed window closes before the standby may take over", async (t) => {
  // Global time g: the leader's clock reads 0.96 g, the standby's 1.04 g. The leader's renewal is sent at g = 0 and seen by the standby at once.
  const leader = afterLeaseWrite({}, { kind: 'acquire', expect: null, reason: 'free', item: { holder: A, version: 'v1-aaaaaa', term: 1, leaseMs: LEASE } }, { kind: 'accepted' }, 0);
  let standby = decideLease({}, item(A, 'v1-aaaaaa'), 0, settings(B), 'x-0000000').memory;
  // Find the first global ms at which the standby decides to take over.
  let g = 0;
  for (; g < 2 * LEASE; g++) {
    const d = decideLease(standby, item(A, 'v1-aaaaaa'), 1.04 * g, settings(B), 'x-0000001');
    standby = d.memory;
    if (d.write?.kind === 'acquire') break;
  }
  t.equal(g, Math.ceil(LEASE / 1.04), 'the standby takes over after one lease on its own (fast) clock');
  t.notOk(holdConfirmed(leader, 0.96 * g, LEASE), 'by then the (slow) leader no longer counts its hold as confirmed');
});
