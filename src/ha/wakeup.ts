// A loop's sleep that news can cut short: the loop waits for its next step,
// or until another part of the node pokes it (the hold changed, a handover
// was asked for). Built on the injected sleep, so tests and the simulation
// drive it on their own clocks.

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** The abort reason of a poke or a stop (a constant: no exception object is built for it). */
const WOKEN = Symbol('woken');

export class Wakeup {
  /** The wait in progress, if any. */
  #waiting: AbortController | undefined;
  /** A poke that came while nothing waited: the next wait ends at once. */
  #poked = false;

  constructor(
    private readonly sleep: Sleep,
    private readonly stop: AbortSignal,
  ) {
    stop.addEventListener('abort', () => this.#waiting?.abort(WOKEN), { once: true });
  }

  /** Ends the current wait now (or the next one at once, if none is running). */
  poke(): void {
    if (this.#waiting) this.#waiting.abort(WOKEN);
    else this.#poked = true;
  }

  /** Waits `ms`, or until poked or stopped. */
  async wait(ms: number): Promise<void> {
    if (this.#poked || this.stop.aborted || ms <= 0) {
      this.#poked = false;
      return;
    }
    const waiting = (this.#waiting = new AbortController());
    try {
      await this.sleep(ms, waiting.signal);
    } finally {
      this.#waiting = undefined;
    }
  }
}
