// The HA lease as pure decisions (docs/design/ha.md). One item in DynamoDB
// names the leader: its instance id, a random `version` it replaces at every
// renewal, and a `term` number, one higher at every acquisition and fixed for
// the tenure (the fencing token of its map writes).
//
// A standby reads the item every watch period and calls decideLease; the
// leader does not read at all: it renews on its own schedule with a write
// conditional on the version(s) it may have written last (renewal), so a slow
// read can never delay a renewal. The shell performs the write a decision
// asks for and feeds the outcome to afterLeaseWrite.
//
// Time is only ever this instance's own monotonic clock, and only differences
// of it are used: a standby calls the lease free when the version it saw has
// not changed for one whole lease measured from its own first sight of it;
// a leader calls its hold confirmed for 90% of a lease from the moment it
// *sent* the write that was accepted. The write lands after it was sent and
// the standby sees it after it landed, so the two windows never overlap
// (the 10% absorbs clocks that tick at slightly different rates). The wall
// clock is read only to notice a suspend: it runs on while the monotonic
// clock stands still, and a hold across a suspend is not confirmed. No clock
// is compared across instances.

import { CLOCK_JUMP_SHARE, CONFIRMED_SHARE, renewEveryMs, renewRetryMs, watchEveryMs } from './timing.js';

export { CONFIRMED_SHARE, renewEveryMs } from './timing.js';

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
  /**
   * false: this instance's HA-relevant config differs from a running peer's
   * and the peer is the one to take a free lease (the shared map was written
   * under the peer's config, or by neither and the peer's instance id is the
   * lower), so it takes no free lease (nor its own back after a restart). It still takes over a lease
   * its holder stopped renewing: a failing peer is replaced whatever its
   * config.
   */
  mayTakeFree?: boolean;
}

/** Both of this instance's clocks, read together. */
export interface Clocks {
  /** Monotonic ms (CLOCK_MONOTONIC: stands still while the host is suspended). */
  monotonic: number;
  /** Epoch ms (runs on through a suspend). */
  wall: number;
}

/** A write of the lease, as this instance sent it. */
interface Sent {
  version: string;
  term: number;
  /** Both clocks just before the write was sent. */
  sentAt: number;
  wallAt: number;
}

/** The lease this instance holds: its last accepted write, and the versions it may have written since (answers lost). */
export interface Hold extends Sent {
  maybe: string[];
}

/** What one instance remembers between steps. */
export interface LeaseMemory {
  /** The lease item as last read (null: no item), and when (monotonic) this instance first saw that version. */
  seen?: { item: LeaseItem | null; since: number };
  held?: Hold;
  /** An acquisition whose outcome is not known (the store did not answer): a later read tells whether it landed. */
  pending?: Sent;
  /** The highest term seen on the lease or the map item: a new term is always above it. */
  highestTerm?: number;
  /** After a planned handover: this instance takes no lease until then (the peer's turn). */
  yieldUntil?: number;
  /** When the last lease call (read or write) was sent: the schedule of the next. */
  lastStepAt?: number;
  /** A handover has begun: the hold is no longer asserted, in-flight fenced calls are finishing. */
  releasing?: true;
}

export const initialLeaseMemory = (): LeaseMemory => ({});

/** The write a decision asks for. `expect` is the version the condition requires (null: no item may exist). */
export type LeaseWrite =
  /** Why: no item (never taken, or released), its version stood still for a lease, or it is this instance's own from before a restart. */
  | { kind: 'acquire'; expect: string | null; item: LeaseItem & { holder: string }; reason: 'free' | 'expired' | 'restarted' }
  /** Any of the versions this holder may have written last: one of them is the item's, unless someone else took it. */
  | { kind: 'renew'; expect: string[]; item: LeaseItem & { holder: string } };

export type Role = 'leader' | 'standby';

export interface LeaseDecision {
  memory: LeaseMemory;
  /** The one write to perform now, if any. */
  write?: LeaseWrite;
  role: Role;
  /** Set on the step a leader finds that someone else holds the lease, or that it was deleted. */
  steppedDown?: true;
  /** The store did not answer: whatever the role, nothing new is decided (fail-static). */
  unavailable?: string;
}

/** The most unanswered renewals a holder keeps track of; past that its hold has long lapsed anyway. */
const MAX_MAYBE = 4;

/**
 * The monotonic time until which this instance's hold is confirmed, or
 * undefined when it is not confirmed at `now`: no hold, a handover begun,
 * 90% of a lease since the send of the last accepted write, or a wall clock
 * that ran on further than the monotonic one (a suspend).
 */
export function confirmedUntil(memory: LeaseMemory, now: Clocks, leaseMs: number): number | undefined {
  const held = memory.held;
  if (held === undefined || memory.releasing) return undefined;
  const elapsed = now.monotonic - held.sentAt;
  const until = held.sentAt + leaseMs * CONFIRMED_SHARE;
  if (now.monotonic >= until) return undefined;
  if (now.wall - held.wallAt - elapsed >= leaseMs * CLOCK_JUMP_SHARE) return undefined;
  return until;
}

/** Whether this instance's hold is confirmed at `now` on its own clocks. */
export const holdConfirmed = (memory: LeaseMemory, now: Clocks, leaseMs: number): boolean => confirmedUntil(memory, now, leaseMs) !== undefined;

/**
 * A standby's step (or anyone's, after a read): what this instance knew,
 * this read of the lease item, its clocks, and a fresh random token (used
 * only when the decision writes) → the next memory, its role and the write
 * to make.
 */
export function decideLease(memory: LeaseMemory, read: LeaseRead, now: Clocks, settings: LeaseSettings, freshToken: string): LeaseDecision {
  const { self, leaseMs } = settings;
  const mono = now.monotonic;
  const wasLeader = memory.held !== undefined;

  if (read.kind === 'unavailable') {
    // Fail-static: a leader keeps what it held (its renewals decide); a standby forgets how
    // long it has watched, so an outage never counts towards a takeover.
    const { seen: _dropped, ...rest } = memory;
    return { memory: rest, role: wasLeader ? 'leader' : 'standby', unavailable: read.error };
  }

  const item = read.kind === 'item' ? read.item : null;
  let next: LeaseMemory = { ...memory };

  // An acquisition whose answer was lost: the read says whether it landed.
  if (next.pending) {
    if (item && item.holder === self && item.version === next.pending.version) next.held = { ...next.pending, maybe: [] };
    delete next.pending;
  }

  // The time this version (or the absence of an item) was first seen: kept while unchanged.
  const sameAsSeen = next.seen !== undefined && (next.seen.item?.version ?? null) === (item?.version ?? null);
  next.seen = { item, since: sameAsSeen ? next.seen!.since : mono };
  if (item) next.highestTerm = Math.max(next.highestTerm ?? 0, item.term);
  // The peer took the lease this instance handed over: the courtesy wait is over (it may be handed back at once).
  if (item && item.holder !== null && item.holder !== self) delete next.yieldUntil;

  if (next.held) {
    const mine = item !== null && item.holder === self && (item.version === next.held.version || next.held.maybe.includes(item.version));
    if (mine) {
      if (item.version !== next.held.version) next.held = { ...next.held, version: item.version, maybe: [] };
      return { memory: next, role: 'leader' };
    }
    // Someone else wrote the lease, or it was deleted: this instance no longer holds it.
    delete next.held;
    delete next.releasing;
    return { memory: next, role: 'standby', steppedDown: true };
  }

  if (next.yieldUntil !== undefined && mono >= next.yieldUntil) delete next.yieldUntil;
  const acquire = (expect: string | null, reason: 'free' | 'expired' | 'restarted'): LeaseDecision => ({
    memory: next,
    write: { kind: 'acquire', expect, reason, item: { holder: self, version: freshToken, term: (next.highestTerm ?? 0) + 1, leaseMs } },
    role: 'standby',
  });
  const standby: LeaseDecision = { memory: next, role: 'standby' };
  // During a courtesy wait after a handover nothing is taken; a config that differs from a running peer's takes nothing free.
  const mayTakeFree = next.yieldUntil === undefined && settings.mayTakeFree !== false;

  // Never taken, or released by its holder: free at once.
  if (item === null || item.holder === null) return mayTakeFree ? acquire(item?.version ?? null, 'free') : standby;
  // This instance's previous daemon (the pid lock in state.dir says it is gone) held it: take it back at once.
  if (item.holder === self) return mayTakeFree ? acquire(item.version, 'restarted') : standby;
  // Another holder: free once its version has stood still for a whole lease (the longer of its and ours).
  if (mono - next.seen.since >= Math.max(item.leaseMs, leaseMs) && next.yieldUntil === undefined) return acquire(item.version, 'expired');
  return standby;
}

/**
 * The holder's renewal: a fresh version, the same term, conditional on any
 * of the versions it may have written last. No read first, so nothing slow
 * stands between the schedule and the write.
 */
export function renewal(memory: LeaseMemory, self: string, leaseMs: number, freshToken: string): LeaseWrite | undefined {
  const held = memory.held;
  if (held === undefined || memory.releasing) return undefined;
  return { kind: 'renew', expect: [held.version, ...held.maybe], item: { holder: self, version: freshToken, term: held.term, leaseMs } };
}

/** How the store answered a lease write. */
export type LeaseWriteOutcome = { kind: 'accepted' } | { kind: 'conflict' } | { kind: 'unavailable'; error: string };

/**
 * The memory after the store answered `write`, which was sent at `sent`
 * (both clocks, read just before sending). Accepted: this instance holds the
 * written version from then. Refused: someone else holds it. No answer: the
 * write may or may not have landed; a renewal adds its version to those the
 * next renewal may expect, an acquisition waits for the next read.
 */
export function afterLeaseWrite(memory: LeaseMemory, write: LeaseWrite, outcome: LeaseWriteOutcome, sent: Clocks): LeaseMemory {
  const next: LeaseMemory = { ...memory, lastStepAt: sent.monotonic };
  const mine: Sent = { version: write.item.version, term: write.item.term, sentAt: sent.monotonic, wallAt: sent.wall };
  if (outcome.kind === 'accepted') {
    next.held = { ...mine, maybe: [] };
    next.highestTerm = Math.max(next.highestTerm ?? 0, write.item.term);
    delete next.pending;
    delete next.yieldUntil;
    return next;
  }
  if (outcome.kind === 'conflict') {
    delete next.held;
    delete next.pending;
    return next;
  }
  if (write.kind === 'renew' && next.held) next.held = { ...next.held, maybe: [...next.held.maybe, mine.version].slice(-MAX_MAYBE) };
  if (write.kind === 'acquire') next.pending = mine;
  return next;
}

/** When (monotonic) the lease loop's next step is due: a renewal lease/3 after the last accepted one (sooner after a failed attempt), or the standby's next look. */
export function nextLeaseStepAt(memory: LeaseMemory, leaseMs: number): number {
  const last = memory.lastStepAt ?? -Infinity;
  if (memory.held) return Math.max(memory.held.sentAt + renewEveryMs(leaseMs), last + renewRetryMs(leaseMs));
  return last + watchEveryMs(leaseMs);
}

/** A standby's read was sent at `sentAt`: the schedule of the next. */
export const noteLeaseRead = (memory: LeaseMemory, sentAt: number): LeaseMemory => ({ ...memory, lastStepAt: sentAt });

/**
 * A planned handover (`systemctl stop`, `cachenat ha handover`), first half:
 * the hold stops being asserted at once (no Elastic IP call, no map write is
 * sent from here on); the release is written once the calls in flight have
 * ended. Undefined when this instance holds nothing.
 */
export const beginRelease = (memory: LeaseMemory): LeaseMemory | undefined => (memory.held ? { ...memory, releasing: true } : undefined);

/**
 * The release write: clears the holder (keeping the term, so terms keep
 * rising) only if the version is still one this instance may have written.
 */
export function releaseWrite(memory: LeaseMemory, leaseMs: number, freshToken: string): { expect: string[]; item: LeaseItem } | undefined {
  const held = memory.held;
  if (!held) return undefined;
  return { expect: [held.version, ...held.maybe], item: { holder: null, version: freshToken, term: held.term, leaseMs } };
}

/**
 * After the release write, whatever its outcome: this instance holds
 * nothing. Accepted, or no answer (it may have landed): it leaves the lease
 * to its peer for one lease (the courtesy wait), then takes it (back) if
 * nobody did. Refused: someone else holds it already.
 */
export function afterRelease(memory: LeaseMemory, outcome: LeaseWriteOutcome, now: number, leaseMs: number): LeaseMemory {
  const { held: _held, releasing: _releasing, pending: _pending, ...rest } = memory;
  return outcome.kind === 'conflict' ? rest : { ...rest, yieldUntil: now + leaseMs };
}

/** A map item's term, once read: the next acquisition goes above it too (a table restored from a backup cannot fence out the new leader). */
export const noteTerm = (memory: LeaseMemory, term: number): LeaseMemory =>
  term > (memory.highestTerm ?? 0) ? { ...memory, highestTerm: term } : memory;
