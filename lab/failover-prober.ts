// What a failover costs a client: a fresh TCP connection every few
// milliseconds to one address, each asking Redis (or Memcached) for its
// `whoami`, attempts overlapping when answers are slow. Runs inside a lab
// client namespace:
//
//   node dist/lab/failover-prober.js HOST PORT redis|memcached
//        [--every MS (10)] [--timeout MS (250)] [--duration MS (600000)]
//
// Prints one line "failover-prober started <epoch ms>" once the first attempt
// is out, then nothing until SIGTERM (or --duration) ends it: it waits for the
// attempts in flight and prints one JSON line, {"summary": …} (see
// summarizeAttempts), and exits 0. Times are epoch milliseconds, comparable
// with the clock of any other process on the machine.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { probe, type CacheProtocol } from './probe.js';

/** One connection attempt: when it started and ended, and what it got. */
export interface Attempt {
  start: number;
  end: number;
  ok: boolean;
  /** The `whoami` value that answered (ok only): which cache server, e.g. redis-11. */
  value?: string;
  /** Why it failed (not ok only). */
  error?: string;
}

/** Where the answering server changed: the first success with a new `whoami` value. */
export interface ValueChange {
  at: number;
  value: string;
}

export interface AttemptSummary {
  attempts: number;
  failures: number;
  /** Successful attempts per `whoami` value. */
  answeredBy: Record<string, number>;
  /** Every change of the answering value, by success end time (the first success counts as one). */
  changes: ValueChange[];
  firstAttemptAt: number | null;
  /** End of the last successful attempt (null: none succeeded). */
  lastSuccessAt: number | null;
  /** Start of the first failed attempt, null when none failed. */
  firstFailureAt: number | null;
  /**
   * End of the first successful attempt started after the first failure
   * started: the client is served again (null: never, or nothing failed).
   */
  firstSuccessAfterOutageAt: number | null;
  /** firstSuccessAfterOutageAt − firstFailureAt (null when either is). */
  outageMs: number | null;
  /** The longest time between the ends of two successive successful attempts (null with fewer than two). */
  longestGapMs: number | null;
  /** The two success ends around longestGapMs. */
  longestGap: { from: number; to: number } | null;
  /** The most frequent failure reasons, with counts (at most five). */
  errors: Record<string, number>;
}

const byNumber = (a: number, b: number): number => a - b;

/** Pure summary of a run's attempts, in any order. */
export function summarizeAttempts(attempts: readonly Attempt[]): AttemptSummary {
  const successes = attempts.filter((a) => a.ok).sort((a, b) => a.end - b.end || a.start - b.start);
  const failures = attempts.filter((a) => !a.ok);

  const answeredBy: Record<string, number> = {};
  const changes: ValueChange[] = [];
  for (const s of successes) {
    const value = s.value ?? '';
    answeredBy[value] = (answeredBy[value] ?? 0) + 1;
    if (changes.at(-1)?.value !== value) changes.push({ at: s.end, value });
  }

  let longestGap: { from: number; to: number } | null = null;
  for (let i = 1; i < successes.length; i++) {
    const from = (successes[i - 1] as Attempt).end;
    const to = (successes[i] as Attempt).end;
    if (longestGap === null || to - from > longestGap.to - longestGap.from) longestGap = { from, to };
  }

  const firstFailureAt = failures.length === 0 ? null : Math.min(...failures.map((f) => f.start));
  const recovered = firstFailureAt === null ? undefined : successes.find((s) => s.start > firstFailureAt);
  const firstSuccessAfterOutageAt = recovered?.end ?? null;

  const reasons = new Map<string, number>();
  for (const f of failures) reasons.set(f.error ?? 'unknown', (reasons.get(f.error ?? 'unknown') ?? 0) + 1);
  const errors = Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 5));

  return {
    attempts: attempts.length,
    failures: failures.length,
    answeredBy,
    changes,
    firstAttemptAt: attempts.length === 0 ? null : (attempts.map((a) => a.start).sort(byNumber)[0] as number),
    lastSuccessAt: successes.at(-1)?.end ?? null,
    firstFailureAt,
    firstSuccessAfterOutageAt,
    outageMs: firstFailureAt === null || firstSuccessAfterOutageAt === null ? null : firstSuccessAfterOutageAt - firstFailureAt,
    longestGapMs: longestGap === null ? null : longestGap.to - longestGap.from,
    longestGap,
    errors,
  };
}

/** A probe error reduced to its kind, so the summary counts alike failures together. */
export function errorKind(error: string): string {
  if (/timed out .*connecting/.test(error)) return 'connect timeout';
  if (/did not answer within/.test(error)) return 'answer timeout';
  if (/refused/.test(error)) return 'refused';
  if (/unreachable/.test(error)) return 'unreachable';
  if (/reset/.test(error)) return 'reset';
  if (/closed the connection/.test(error)) return 'closed';
  return error.slice(0, 80);
}

// Over ten minutes at 10 ms this is 60 000 attempts: small enough to keep.
const MAX_DURATION_MS = 600_000;

const USAGE = 'usage: failover-prober HOST PORT redis|memcached [--every MS] [--timeout MS] [--duration MS]';

function positive(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number of milliseconds, got "${text}"`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let host: string;
  let port: number;
  let protocol: CacheProtocol;
  let everyMs: number;
  let timeoutMs: number;
  let durationMs: number;
  try {
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { every: { type: 'string' }, timeout: { type: 'string' }, duration: { type: 'string' } },
    });
    const [h, portText, proto, ...extra] = positionals;
    port = Number(portText);
    if (h === undefined || extra.length > 0) throw new Error('expected exactly HOST PORT PROTOCOL');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`PORT must be 1-65535, got "${portText}"`);
    if (proto !== 'redis' && proto !== 'memcached') throw new Error(`PROTOCOL must be redis or memcached, got "${proto}"`);
    host = h;
    protocol = proto;
    everyMs = positive(values.every, '--every', 10);
    timeoutMs = positive(values.timeout, '--timeout', 250);
    durationMs = Math.min(positive(values.duration, '--duration', MAX_DURATION_MS), MAX_DURATION_MS);
  } catch (error) {
    process.stderr.write(`failover-prober: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const attempts: Attempt[] = [];
  const inFlight = new Set<Promise<void>>();
  const attempt = (): void => {
    const start = Date.now();
    const done = probe(host, port, protocol, { timeoutMs }).then((result) => {
      const end = Date.now();
      attempts.push(result.ok ? { start, end, ok: true, value: result.value } : { start, end, ok: false, error: errorKind(result.error) });
      inFlight.delete(done);
    });
    inFlight.add(done);
  };

  const started = Date.now();
  attempt();
  process.stdout.write(`failover-prober started ${started}\n`);
  // A fixed schedule (not "10 ms after the last one ended"), so a slow answer never thins the probes out.
  const ticker = setInterval(attempt, everyMs);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      clearInterval(ticker);
      clearTimeout(limit);
      resolve();
    };
    const limit = setTimeout(stop, durationMs);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await Promise.all([...inFlight]);
  process.stdout.write(`${JSON.stringify({ summary: summarizeAttempts(attempts) })}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
