// The HA lease as pure decisions (docs/design/ha.md). One item in DynamoDB
// names the leader: its instance id, a random `version` it replaces at every
// renewal, and a `term` number, one higher at every acquisition and fixed for
// the tenure (the fencing token of its map writes). Every instance reads it each beat and calls
// decideLease; the shell performs the one write the decision asks for and
// feeds the outcome to afterLeaseWrite.
//
// Time is only ever this instance's own monotonic clock, and only differences
// of it are used: a standby calls the lease free when the version it saw has
// not changed for one whole lease measured from its own first sight of it;
// a leader calls its hold confirmed for 90% of a lease from the moment it
// *sent* the write that was accepted. The write lands after it was sent and
// the standby sees it after it landed, so the two windows never overlap
// (the 10% absorbs clocks that tick at slightly different rates). No clock
// is compared across instances.

/** The lease item, as read back (and validated) from the store. */
export interface LeaseItem {
  /** null: released by its last holder (a planned handover), free at once. */
  holder: string | null;
  /** Fresh on every accepted write (acquire and renew): standbys watch it change. */
  version: string;
  /** One above every term before it, fixed from acquire through its renewals: the map item's fencing token. */
  term: number;
  /** The holder's `ha.lease`: how long a standby waits on an unchanged version. */
  leaseMs: number;
}

/** One read of the lease item: the item, no item (never taken, or released), or no answer from the store. */
export type LeaseRead = { kind: 'item'; item: LeaseItem } | { kind: 'absent' } | { kind: 'unavailable'; error: string };

export interface LeaseSettings {
  /** This instance's id (the holder name it writes). */
  self: string;
  leaseMs: number;
}

/** What one instance remembers between beats. */
export interface LeaseMemory {
  /** The lease item as last read (null: no item), and when (monotonic) this instance first saw that version. */
  seen?: { item: LeaseItem | null; since: number };
  /** The lease this instance holds: the last write of it that the store accepted, and when that write was sent. */
  held?: { version: string; term: number; sentAt: number };
  /** A lease write whose outcome is not known (the store did not answer): a later read tells whether it landed. */
  pending?: { version: string; term: number; sentAt: number };
  /** The highest term seen on the lease or the map item: a new term is always above it. */
  highestTerm?: number;
  /** After a planned handover: this instance leaves a free lease to the peer until then. */
  yieldUntil?: number;
}

export const initialLeaseMemory = (): LeaseMemory => ({});

/** The write a decision asks for. `expect` is the version the condition requires (null: no item may exist). */
export type LeaseWrite =
  /** Why: no item (never taken, or released), its version stood still for a lease, or it is this instance's own from before a restart. */
  | { kind: 'acquire'; expect: string | null; item: LeaseItem & { holder: string }; reason: 'free' | 'expired' | 'restarted' }
  | { kind: 'renew'; expect: string; item: LeaseItem & { holder: string } };

export type Role = 'leader' | 'standby';

export interface LeaseDecision {
  memory: LeaseMemory;
  /** The one write to perform now, if any. */
  write?: LeaseWrite;
  role: Role;
  /**
   * Leader only: the hold is confirmed on this instance's clock, so it may
   * allocate and write the map (the map write is fenced on its term anyway).
   * False while the store is unreachable or a renewal is overdue: fail-static.
   */
  mayWriteMap: boolean;
  /** Set on the beat a leader finds that someone else holds the lease, or that it was deleted. */
  steppedDown?: true;
  /** The store did not answer: whatever the role, nothing new is decided (fail-static). */
  unavailable?: string;
}

/** The holder renews every third of a lease, so two renewals can fail before a standby may take over. */
export const renewEveryMs = (leaseMs: number): number => Math.floor(leaseMs / 3);

/**
 * A hold counts as confirmed for this share of a lease from the send of its
 * last accepted write, while a standby waits a whole lease: the two hosts'
 * monotonic clocks may tick at slightly different rates (parts per million in
 * practice; the margin covers a 10% difference).
 */
export const CONFIRMED_SHARE = 0.9;

/** Whether this instance's hold is still confirmed at `now` on its own clock. */
export const holdConfirmed = (memory: LeaseMemory, now: number, leaseMs: number): boolean =>
  memory.held !== undefined && now - memory.held.sentAt < leaseMs * CONFIRMED_SHARE;

/**
 * One beat: what this instance last knew, this beat's read of the lease item,
 * its monotonic `now`, and a fresh random token (used only when the decision
 * writes) → the next memory, its role and the write to make.
 */
export function decideLease(memory: LeaseMemory, read: LeaseRead, now: number, settings: LeaseSettings, freshToken: string): LeaseDecision {
  const { self, leaseMs } = settings;
  const wasLeader = memory.held !== undefined;

  if (read.kind === 'unavailable') {
    // Fail-static: a leader stays leader (it keeps the Elastic IP and the forwards) but may not
    // allocate; a standby forgets how long it has watched, so an outage never counts towards a takeover.
    const { seen: _dropped, ...rest } = memory;
    return { memory: rest, role: wasLeader ? 'leader' : 'standby', mayWriteMap: false, unavailable: read.error };
  }

  const item = read.kind === 'item' ? read.item : null;
  let next: LeaseMemory = { ...memory };

  // A write whose answer was lost: the read says whether it landed.
  if (next.pending) {
    if (item && item.holder === self && item.version === next.pending.version) next.held = { ...next.pending };
    delete next.pending;
  }

  // The time this version (or the absence of an item) was first seen: kept while unchanged.
  const sameAsSeen = next.seen !== undefined && (next.seen.item?.version ?? null) === (item?.version ?? null);
  next.seen = { item, since: sameAsSeen ? next.seen!.since : now };
  if (item) next.highestTerm = Math.max(next.highestTerm ?? 0, item.term);
  // The peer took the lease this instance handed over: the courtesy wait is over (it may be handed back at once).
  if (item && item.holder !== null && item.holder !== self) delete next.yieldUntil;

  if (next.held) {
    if (item && item.holder === self && item.version === next.held.version) {
      const mayWriteMap = holdConfirmed(next, now, leaseMs);
      if (now - next.held.sentAt >= renewEveryMs(leaseMs)) {
        const write: LeaseWrite = { kind: 'renew', expect: item.version, item: { holder: self, version: freshToken, term: next.held.term, leaseMs } };
        return { memory: next, write, role: 'leader', mayWriteMap };
      }
      return { memory: next, role: 'leader', mayWriteMap };
    }
    // Someone else wrote the lease, or it was deleted: this instance no longer holds it.
    delete next.held;
    return { memory: next, role: 'standby', mayWriteMap: false, steppedDown: true };
  }

  if (next.yieldUntil !== undefined && now >= next.yieldUntil) delete next.yieldUntil;
  const acquire = (expect: string | null, reason: 'free' | 'expired' | 'restarted'): LeaseDecision => ({
    memory: next,
    write: { kind: 'acquire', expect, reason, item: { holder: self, version: freshToken, term: (next.highestTerm ?? 0) + 1, leaseMs } },
    role: 'standby',
    mayWriteMap: false,
  });

  if (item === null || item.holder === null) {
    // Never taken, or released by its holder: free at once, unless this instance just handed it over.
    return next.yieldUntil === undefined ? acquire(item?.version ?? null, 'free') : { memory: next, role: 'standby', mayWriteMap: false };
  }
  // This instance's previous daemon (the pid lock in state.dir says it is gone) held it: take it back at once.
  if (item.holder === self) return acquire(item.version, 'restarted');
  // Another holder: free once its version has stood still for a whole lease (the longer of its and ours).
  if (now - next.seen.since >= Math.max(item.leaseMs, leaseMs)) return acquire(item.version, 'expired');
  return { memory: next, role: 'standby', mayWriteMap: false };
}

/** How the store answered a lease write. */
export type LeaseWriteOutcome = { kind: 'accepted' } | { kind: 'conflict' } | { kind: 'unavailable'; error: string };

/**
 * The memory after the store answered `write`, which was sent at `sentAt`
 * (monotonic, taken just before sending). Accepted: this instance holds the
 * written version from `sentAt`. Refused: someone else holds it. No answer:
 * the write may or may not have landed; the next read tells.
 */
export function afterLeaseWrite(memory: LeaseMemory, write: LeaseWrite, outcome: LeaseWriteOutcome, sentAt: number): LeaseMemory {
  const next: LeaseMemory = { ...memory };
  const mine = { version: write.item.version, term: write.item.term, sentAt };
  if (outcome.kind === 'accepted') {
    next.held = mine;
    delete next.pending;
    delete next.yieldUntil;
    return next;
  }
  if (outcome.kind === 'conflict') {
    delete next.held;
    delete next.pending;
    return next;
  }
  // Unknown: a leader keeps what it held (a renewal that did not land leaves the old version valid).
  next.pending = mine;
  return next;
}

/**
 * A planned handover (`systemctl stop`, `cachenat ha handover`): the release
 * clears the holder (keeping the term, so terms keep rising) only if the
 * version is still this instance's, or undefined when it holds nothing. After
 * it, this instance leaves a free lease to the peer for one lease.
 */
export function releaseLease(memory: LeaseMemory, now: number, leaseMs: number, freshToken: string): { expect: string; item: LeaseItem; memory: LeaseMemory } | undefined {
  if (!memory.held) return undefined;
  const { held, pending: _pending, ...rest } = memory;
  return { expect: held.version, item: { holder: null, version: freshToken, term: held.term, leaseMs }, memory: { ...rest, yieldUntil: now + leaseMs } };
}

/** A map item's term, once read: the next acquisition goes above it too (a table restored from a backup cannot fence out the new leader). */
export const noteTerm = (memory: LeaseMemory, term: number): LeaseMemory =>
  term > (memory.highestTerm ?? 0) ? { ...memory, highestTerm: term } : memory;
