// Whether DynamoDB answers this instance, from the outcomes of its calls.
// Calls overlap (the lease loop, the heartbeat, the passes): a call sent
// before the last one that was answered, and failing only now (a timeout
// from an outage already over), is old news, not a new outage.

import type { Logger } from '../log/logger.js';

export class StoreOutage {
  #outage: { error: string; since: number } | undefined;
  /** When the latest call that DynamoDB answered was sent (monotonic). */
  #lastAnswerSentAt = -Infinity;

  constructor(
    private readonly logger: Logger,
    private readonly monotonic: () => number,
    /** What the first error line adds (the leader says what it stops doing). */
    private readonly consequence: () => string,
  ) {}

  /** The outage now: its last error and since when (monotonic), or undefined while DynamoDB answers. */
  get current(): { error: string; since: number } | undefined {
    return this.#outage;
  }

  /** A call sent at `sentAt` (monotonic) was answered (`error` undefined) or failed. */
  note(error: string | undefined, sentAt: number): void {
    const now = this.monotonic();
    if (error === undefined) {
      this.#lastAnswerSentAt = Math.max(this.#lastAnswerSentAt, sentAt);
      if (this.#outage) this.logger.info({ downMs: Math.round(now - this.#outage.since) }, 'ha: DynamoDB answers again');
      this.#outage = undefined;
      return;
    }
    if (sentAt < this.#lastAnswerSentAt) return;
    if (!this.#outage) {
      this.logger.error({ err: error }, `ha: DynamoDB does not answer; forwarding goes on with the last map, no new allocations${this.consequence()}`);
      this.#outage = { error, since: now };
    } else {
      this.#outage.error = error;
    }
  }
}
