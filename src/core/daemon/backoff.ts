// When to try again after a failure: exponential from a first delay, capped,
// jittered (±20%). One rule for the whole daemon: the ElastiCache API, a
// pass that threw, and the HA pair's Elastic IP calls all back off with it.

/** The wait before attempt `failures + 1`, after `failures` (≥ 1) in a row. `random` in [0, 1). */
export function retryDelay(failures: number, firstMs: number, capMs: number, random: number): number {
  const base = Math.min(firstMs * 2 ** Math.max(0, failures - 1), capMs);
  return Math.round(base * (0.8 + 0.4 * random));
}

/** The API: never sooner than the normal interval (a broken API is not hammered), at most five minutes (or the interval). */
export const discoveryRetryDelay = (failures: number, intervalMs: number, random: number): number =>
  retryDelay(failures, intervalMs, Math.max(intervalMs, 5 * 60_000), random);
