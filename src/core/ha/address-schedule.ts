// The Elastic IP keeper's schedule, pure (like src/core/daemon/schedule.ts):
// what the leader does next about its Elastic IP(s) from what it remembers,
// its hold, and the clock. The keeper (src/ha/elastic-ip-keeper.ts) only
// performs the steps.
//
// Every AssociateAddress is made under a confirmed hold, with a deadline no
// later than the end of that hold: a call EC2 applies late is still applied
// before any standby can have taken over. A new term starts afresh: each
// address is associated at once, checked (DescribeAddresses) one lease
// later, then every VERIFY_EVERY_LEASES. A failed association is retried
// with the daemon's one backoff rule.

import { retryDelay } from '../daemon/backoff.js';
import { ASSOCIATE_RETRY, EC2_TIMEOUT_MS, firstVerifyMs, MIN_ASSOCIATE_BUDGET_MS, VERIFY_EVERY_LEASES } from './timing.js';

export interface KeptAddress {
  allocationId: string;
  /** The private address of this instance it belongs on. */
  privateIp: string;
  state: 'held' | 'associating' | 'failed';
  error?: string;
  /** Failures in a row. */
  attempts: number;
  /** Monotonic: no attempt before this. */
  retryAt: number;
  /** Monotonic: when it was last seen (or made) to point here. */
  heldAt?: number;
}

export interface KeeperMemory {
  /** The term these addresses are kept for. */
  term: number;
  addresses: KeptAddress[];
  /** Monotonic: the next check of where each points. */
  verifyAt: number;
}

/** A confirmed hold, as the keeper sees it: its term, and until when (monotonic) it stays confirmed. */
export interface HoldView {
  term: number;
  until: number;
}

export type KeeperStep =
  | { kind: 'associate'; allocationId: string; deadline: number }
  | { kind: 'verify'; deadline: number }
  /** Nothing to do before `until`, or (undefined) before the hold changes. */
  | { kind: 'wait'; until?: number };

/** The memory for `hold`: unchanged within a term; afresh (every address to associate now) for a new one. */
export function keeperFor(memory: KeeperMemory | undefined, hold: HoldView | undefined, wanted: readonly { allocationId: string; privateIp: string }[], now: number, leaseMs: number): KeeperMemory | undefined {
  if (hold === undefined || memory?.term === hold.term) return memory;
  return {
    term: hold.term,
    addresses: wanted.map((w) => ({ allocationId: w.allocationId, privateIp: w.privateIp, state: 'associating', attempts: 0, retryAt: now })),
    verifyAt: now + firstVerifyMs(leaseMs),
  };
}

/** The next step. An association needs a confirmed hold of this term with at least MIN_ASSOCIATE_BUDGET_MS left. */
export function nextKeeperStep(memory: KeeperMemory | undefined, hold: HoldView | undefined, now: number): KeeperStep {
  if (memory === undefined || hold === undefined || hold.term !== memory.term) return { kind: 'wait' };
  const pending = memory.addresses.filter((a) => a.state !== 'held');
  const due = pending.find((a) => now >= a.retryAt);
  if (due) {
    if (hold.until - now < MIN_ASSOCIATE_BUDGET_MS) return { kind: 'wait' };
    return { kind: 'associate', allocationId: due.allocationId, deadline: Math.min(now + EC2_TIMEOUT_MS, hold.until) };
  }
  if (memory.addresses.length > 0 && now >= memory.verifyAt) return { kind: 'verify', deadline: now + EC2_TIMEOUT_MS };
  const until = Math.min(memory.verifyAt, ...pending.map((a) => a.retryAt));
  return { kind: 'wait', until: memory.addresses.length === 0 ? undefined : until };
}

const updated = (memory: KeeperMemory, allocationId: string, change: (a: KeptAddress) => KeptAddress): KeeperMemory => ({
  ...memory,
  addresses: memory.addresses.map((a) => (a.allocationId === allocationId ? change(a) : a)),
});

/** After an AssociateAddress: held, or failed and due again after the backoff. `random` in [0, 1) jitters it. */
export function afterAssociate(memory: KeeperMemory, allocationId: string, outcome: { ok: true } | { error: string }, now: number, random: number): KeeperMemory {
  return updated(memory, allocationId, (a) => {
    if ('ok' in outcome) {
      const { error: _error, ...rest } = a;
      return { ...rest, state: 'held', attempts: 0, heldAt: now };
    }
    const attempts = a.attempts + 1;
    return { ...a, state: 'failed', error: outcome.error, attempts, retryAt: now + retryDelay(attempts, ASSOCIATE_RETRY.firstMs, ASSOCIATE_RETRY.capMs, random) };
  });
}

/** The backoff before the next attempt at this address (for the log). */
export const retryInMs = (memory: KeeperMemory, allocationId: string, now: number): number => Math.max(0, (memory.addresses.find((a) => a.allocationId === allocationId)?.retryAt ?? now) - now);

/**
 * After a DescribeAddresses: each address seen elsewhere (or nowhere) is
 * associated again, under the same rule as the first time; the next check
 * comes VERIFY_EVERY_LEASES later. `seen` undefined: the call failed (the
 * next check comes as scheduled, nothing changes).
 */
export function afterVerify(memory: KeeperMemory, seen: readonly { allocationId: string; networkInterfaceId?: string; privateIp?: string }[] | undefined, networkInterfaceId: string, now: number, leaseMs: number): { memory: KeeperMemory; elsewhere: { allocationId: string; networkInterfaceId?: string; privateIp?: string }[] } {
  const next = { ...memory, verifyAt: now + VERIFY_EVERY_LEASES * leaseMs };
  if (seen === undefined) return { memory: next, elsewhere: [] };
  const elsewhere: { allocationId: string; networkInterfaceId?: string; privateIp?: string }[] = [];
  next.addresses = next.addresses.map((a) => {
    const at = seen.find((s) => s.allocationId === a.allocationId);
    if (at?.networkInterfaceId === networkInterfaceId && at.privateIp === a.privateIp) return a.state === 'held' ? a : { ...a, state: 'held', attempts: 0, heldAt: now };
    if (a.state === 'held') elsewhere.push({ allocationId: a.allocationId, ...(at?.networkInterfaceId ? { networkInterfaceId: at.networkInterfaceId } : {}), ...(at?.privateIp ? { privateIp: at.privateIp } : {}) });
    return a.state === 'held' ? { ...a, state: 'associating', retryAt: now } : a;
  });
  return { memory: next, elsewhere };
}
