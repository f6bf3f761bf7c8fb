// When to ask the API again after a failure: exponential, capped, jittered,
// and never sooner than the normal interval (so a broken API is not hammered).

export function discoveryRetryDelay(failures: number, intervalMs: number, random: number): number {
  const cap = Math.max(intervalMs, 5 * 60_000);
  const base = Math.min(intervalMs * 2 ** Math.max(0, failures - 1), cap);
  return Math.round(base * (0.8 + 0.4 * random));
}
