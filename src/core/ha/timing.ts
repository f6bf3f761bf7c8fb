// Every period and budget of the HA pair, as functions of `ha.lease`, in one
// place (docs/design/ha.md, "Timing"). The lease's safety rests on a few
// inequalities between them, checked in test/core/ha/timing.test.ts for
// every lease the config accepts:
//   - a renewal is sent at most lease/3 after the last accepted one, and a
//     second attempt still lands before a standby could call the lease
//     expired (lease/3 + store timeout + retry spacing + store timeout < lease);
//   - a hold counts as confirmed for 90% of a lease from the send of its
//     last accepted write, while a standby waits a whole lease from its own
//     first sight of that write: clocks 1% apart and a suspend under the
//     jump tolerance still leave the two windows apart.

/** A hold is confirmed for this share of a lease from the send of its last accepted write. */
export const CONFIRMED_SHARE = 0.9;

/**
 * A wall clock that ran this share of a lease further than the monotonic
 * one since the last accepted write means the host was suspended (the
 * monotonic clock stops while suspended): the hold is not confirmed.
 */
export const CLOCK_JUMP_SHARE = 0.05;

/** The leader renews this long after the send of its last accepted renewal. */
export const renewEveryMs = (leaseMs: number): number => Math.floor(leaseMs / 3);

/** After a renewal that got no answer (or was not accepted for want of an answer), the next attempt comes this soon. */
export const renewRetryMs = (leaseMs: number): number => Math.min(500, Math.floor(leaseMs / 12));

/** A standby reads the lease this often, so it takes over within this much of the lease running out. */
export const watchEveryMs = (leaseMs: number): number => Math.min(500, renewEveryMs(leaseMs));

/** One DynamoDB call's budget: well within a renewal period, so a slow call is met as "no answer" in time for a second attempt. */
export const storeTimeoutMs = (leaseMs: number): number => Math.max(500, Math.min(2000, Math.floor(leaseMs / 4)));

/** Each instance writes its heartbeat (the members item) and reads its peers' this often, on a loop of its own. */
export const heartbeatEveryMs = renewEveryMs;

/** A peer whose heartbeat has not changed for this long (on this instance's clock) is not running. */
export const peerLiveMs = (leaseMs: number): number => leaseMs + heartbeatEveryMs(leaseMs);

/** One EC2 call's budget. An AssociateAddress is further bounded by the end of the confirmed hold. */
export const EC2_TIMEOUT_MS = 5000;

/** An AssociateAddress is sent only with at least this much of the confirmed hold left (else it waits for the next renewal). */
export const MIN_ASSOCIATE_BUDGET_MS = 300;

/** Retries of a failed association: from 0.5 s, doubling, up to 30 s (the daemon's one backoff rule). */
export const ASSOCIATE_RETRY = { firstMs: 500, capMs: 30_000 } as const;

/** A new leader checks where each Elastic IP points this long after taking over, then every VERIFY_EVERY_LEASES. */
export const firstVerifyMs = (leaseMs: number): number => leaseMs;
export const VERIFY_EVERY_LEASES = 3;

/** Without its identity (IMDSv2), an instance tries again this often. */
export const IDENTITY_RETRY_MS = 2000;
