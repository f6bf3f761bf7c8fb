// The simulation's world clock and event queue: virtual milliseconds, one
// event at a time in (time, insertion) order, and a seeded random source.
// Between two events every microtask the last one set off runs to its end
// (a macrotask turn drains V8's microtask queue), so the nodes' async code
// runs exactly as it would, and a seed replays bit for bit: no real timer,
// socket or clock is ever touched.

/** A small, fast, seedable PRNG (sfc32 seeded through splitmix32): the same seed gives the same sequence on every machine. */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = split();
    this.#b = split();
    this.#c = split();
    this.#d = split();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A number in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t / 4294967296;
  }

  /** A whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A number in [min, max). */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A fresh seed for a sub-stream (so one part's draws do not shift another's). */
  fork(): Random {
    return new Random(Math.floor(this.next() * 4294967296));
  }
}

interface Event {
  at: number;
  seq: number;
  run: () => void;
  cancelled: boolean;
}

/** A binary heap of events by (at, seq). */
class EventQueue {
  #items: Event[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(event: Event): void {
    const items = this.#items;
    items.push(event);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && before(items[l]!, items[m]!)) m = l;
        if (r < items.length && before(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

const before = (x: Event, y: Event): boolean => x.at < y.at || (x.at === y.at && x.seq < y.seq);

/** Lets every microtask queued so far (and those they queue) run. */
const drainMicrotasks = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Scheduler {
  /** Virtual time, ms since the start of the run. */
  now = 0;
  /** Events run so far. */
  events = 0;
  #seq = 0;
  #queue = new EventQueue();

  /** Runs `run` at virtual time `at` (never before now). Returns a cancel function. */
  at(at: number, run: () => void): () => void {
    const event: Event = { at: Math.max(at, this.now), seq: this.#seq++, run, cancelled: false };
    this.#queue.push(event);
    return () => {
      event.cancelled = true;
    };
  }

  after(ms: number, run: () => void): () => void {
    return this.at(this.now + ms, run);
  }

  /**
   * Runs events in order until virtual time `until` (or the queue empties),
   * calling `check` after each one once its microtasks have settled. A
   * throw from `check` (a broken invariant) ends the run.
   */
  async run(until: number, check: () => void): Promise<void> {
    await drainMicrotasks();
    check();
    for (;;) {
      const event = this.#queue.pop();
      if (event === undefined) break;
      if (event.cancelled) continue;
      if (event.at > until) {
        this.#queue.push(event);
        this.now = until;
        break;
      }
      this.now = event.at;
      this.events++;
      event.run();
      await drainMicrotasks();
      check();
    }
  }
}
