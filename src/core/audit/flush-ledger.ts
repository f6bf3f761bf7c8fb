// Which ended flows cachenat itself deleted, and why. The reconciler deletes
// flows with `conntrack -D`, which prints each entry it deletes; the kernel
// also sends the reader a DESTROY event for each. The two race: an event can
// reach the daemon before the flush's output does, or long after it (the
// reader may be behind). So end events are held while a flush runs, and the
// flows a flush deleted are remembered, by their original tuple (unique among
// live entries), until their event comes. No timing is guessed. Pure.

import type { FlowEvent, FlowTuple } from './reader-lines.js';
import type { FlushReason } from './record.js';

/** How long a deleted flow waits for its event before it is forgotten (the reader lost it: an overrun says so). */
export const DELETED_FLOW_TTL_MS = 10 * 60_000;
/** At most this many deleted flows are remembered; the oldest go first. */
export const MAX_DELETED_FLOWS = 200_000;

export const tupleKey = (t: FlowTuple): string => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;

export interface ReleasedEvent {
  event: FlowEvent;
  /** Set when a cachenat flush deleted the flow. */
  flushed?: FlushReason;
}

export class FlushLedger {
  /** Flushes running now. */
  private running = 0;
  private held: FlowEvent[] = [];
  /** Deleted flows waiting for their event, in the order they were deleted (Map keeps insertion order). */
  private readonly deleted = new Map<string, { reason: FlushReason; atMs: number }>();

  /** A flush is about to run (or the first pass): hold end events until it is done. */
  begin(): void {
    this.running++;
  }

  /** A hold that deleted nothing is over (a failed flush, or the daemon's first pass, before which nothing can be attributed). */
  release(): ReleasedEvent[] {
    this.running = Math.max(0, this.running - 1);
    if (this.running > 0) return [];
    const held = this.held;
    this.held = [];
    return held.map((event) => this.match(event));
  }

  /** A flush is done: it deleted these flows (none when it failed) for this reason. Returns the events it releases. */
  end(reason: FlushReason, deleted: readonly FlowTuple[], nowMs: number): ReleasedEvent[] {
    for (const tuple of deleted) {
      const key = tupleKey(tuple);
      this.deleted.delete(key); // re-inserted at the end: the newest
      this.deleted.set(key, { reason, atMs: nowMs });
    }
    while (this.deleted.size > MAX_DELETED_FLOWS) this.deleted.delete(this.deleted.keys().next().value!);
    return this.release();
  }

  /**
   * An end event from the reader: "held" until the running flush is done, or
   * released now, with the reason of the flush that deleted it (undefined:
   * none did). Allocates nothing on the usual path, once per flow.
   */
  ended(event: FlowEvent): 'held' | FlushReason | undefined {
    if (this.running > 0) {
      this.held.push(event);
      return 'held';
    }
    return this.reasonOf(event);
  }

  /** Forgets deleted flows whose event never came. */
  expire(nowMs: number): void {
    for (const [key, { atMs }] of this.deleted) {
      if (nowMs - atMs < DELETED_FLOW_TTL_MS) break; // oldest first
      this.deleted.delete(key);
    }
  }

  get waiting(): number {
    return this.deleted.size;
  }

  private match(event: FlowEvent): ReleasedEvent {
    const flushed = this.reasonOf(event);
    return flushed === undefined ? { event } : { event, flushed };
  }

  private reasonOf(event: FlowEvent): FlushReason | undefined {
    if (this.deleted.size === 0) return undefined;
    const key = tupleKey(event.orig);
    const entry = this.deleted.get(key);
    if (entry === undefined) return undefined;
    this.deleted.delete(key);
    return entry.reason;
  }
}
