import t from 'tap';
import {
  TIMER_SLACK_MS,
  afterPass,
  initialLoopState,
  nextStep,
  reloaded,
  requestReload,
  requestStop,
  type LoopState,
  type PassOutcome,
  type ScheduleSettings,
} from '../../../src/core/daemon/schedule.js';

const SETTINGS: ScheduleSettings = { discoveryIntervalMs: 30_000, dnsIntervalMs: 5_000 };
const T0 = 1_700_000_000_000;
const ok: PassOutcome = { kind: 'completed', discovery: 'ok', kernelOk: true };
const skipped: PassOutcome = { kind: 'completed', discovery: 'skipped', kernelOk: true };
const apiFailed: PassOutcome = { kind: 'completed', discovery: 'failed', kernelOk: true };
const middle = () => 0.5; // no jitter: 0.8 + 0.4 × 0.5 = 1

/**
 * Drives the schedule the way runDaemon does, on a simulated clock: each pass
 * takes `passMs`, its outcome comes from `outcomeOf`. Returns when passes started and which asked the API.
 */
function drive(untilMs: number, outcomeOf: (pass: number, discover: boolean) => PassOutcome, options: { passMs?: number; settings?: ScheduleSettings; random?: () => number } = {}) {
  let state = initialLoopState();
  let now = T0;
  const passes: { at: number; discover: boolean; fed: boolean }[] = [];
  while (now < T0 + untilMs) {
    const step = nextStep(state, now);
    if (step.kind === 'sleep') {
      now += step.ms;
      continue;
    }
    if (step.kind !== 'pass') throw new Error(`unexpected step ${step.kind}`);
    const startedAt = now;
    now += options.passMs ?? 20;
    const next = afterPass(state, outcomeOf(passes.length, step.discover), { startedAt, now }, options.settings ?? SETTINGS, options.random ?? middle);
    passes.push({ at: startedAt - T0, discover: step.discover, fed: next.feedWatchdog });
    state = next.state;
  }
  return passes;
}

t.test('the first step is a pass that asks the API', async (t) => {
  t.same(nextStep(initialLoopState(), T0), { kind: 'pass', discover: true });
});

t.test('steady state: a pass every dns.interval, the API on every 6th (30 s / 5 s)', async (t) => {
  const passes = drive(61_000, (_, discover) => (discover ? ok : skipped));
  t.same(
    passes.map((p) => p.at),
    Array.from({ length: 13 }, (_, i) => i * 5000),
    'the beat is measured from each pass start, so a 20 ms pass does not drift it',
  );
  t.same(
    passes.filter((p) => p.discover).map((p) => p.at),
    [0, 30_000, 60_000],
  );
  t.ok(passes.every((p) => p.fed), 'every completed pass feeds the watchdog');
});

t.test('a pass longer than the beat: the next one follows at once, without a sleep', async (t) => {
  const passes = drive(20_000, () => skipped, { passMs: 7000 });
  t.same(passes.map((p) => p.at).slice(0, 3), [0, 7000, 14_000]);
});

t.test('the watchdog sets the beat when it is shorter than dns.interval', async (t) => {
  const passes = drive(10_000, () => ok, { settings: { ...SETTINGS, watchdogIntervalMs: 2000 } });
  t.same(passes.map((p) => p.at), [0, 2000, 4000, 6000, 8000]);
});

t.test('API failures back off: interval × 2^(n-1), capped at 5 min, while passes keep the DNS beat', async (t) => {
  const passes = drive(20 * 60_000, (_, discover) => (discover ? apiFailed : skipped));
  const asked = passes.filter((p) => p.discover).map((p) => p.at);
  const gaps = asked.slice(1).map((at, i) => at - asked[i]!);
  // Each retry is on the first beat at or after its delay counted from the failed pass's end (20 ms later; the timer slack absorbs that).
  t.same(gaps.slice(0, 5), [30_000, 60_000, 120_000, 240_000, 300_000]);
  t.ok(gaps.slice(4).every((g) => g === 300_000), `capped at 5 min: ${gaps.slice(4).join(', ')}`);
  const beats = passes.slice(1).map((p, i) => p.at - passes[i]!.at);
  t.ok(beats.every((b) => b === 5000), 'forwards are still refreshed every dns.interval');
});

t.test('backoff jitter stays within ±20 %', async (t) => {
  for (const random of [0, 0.999]) {
    const { apiRetryInMs } = afterPass(initialLoopState(), apiFailed, { startedAt: T0, now: T0 }, SETTINGS, () => random);
    t.ok(apiRetryInMs! >= 24_000 && apiRetryInMs! <= 36_000, `random ${random}: retry in ${apiRetryInMs} ms`);
  }
});

t.test('a success after failures resets the backoff', async (t) => {
  const passes = drive(10 * 60_000, (n, discover) => (discover ? (n < 20 ? apiFailed : ok) : skipped));
  const asked = passes.filter((p) => p.discover).map((p) => p.at);
  const lastGaps = asked.slice(-3).map((at, i, a) => (i === 0 ? 0 : at - a[i - 1]!)).slice(1);
  t.same(lastGaps, [30_000, 30_000], 'back to the normal interval');
});

t.test('a pass that threw: growing waits, no watchdog, and the API is not asked again before its interval', async (t) => {
  const passes = drive(30 * 60_000, () => ({ kind: 'threw', discovered: true }));
  const waits = passes.slice(1).map((p, i) => p.at - passes[i]!.at);
  t.same(waits.slice(0, 4), [5020, 10_020, 20_020, 40_020], 'dns.interval × 2^(n-1) after each failure (plus the 20 ms pass)');
  t.ok(passes.every((p) => !p.fed), 'the watchdog is never fed by a pass that threw');
  const asked = passes.filter((p) => p.discover).map((p) => p.at);
  const gaps = asked.slice(1).map((at, i) => at - asked[i]!);
  t.ok(gaps.length > 3 && gaps.every((g) => g >= 30_000 - TIMER_SLACK_MS), `API gaps ${gaps.slice(0, 5).join(', ')} ms`);
});

t.test('a kernel write that failed: the pass completed but does not feed the watchdog', async (t) => {
  const { feedWatchdog, state } = afterPass(initialLoopState(), { kind: 'completed', discovery: 'ok', kernelOk: false }, { startedAt: T0, now: T0 + 10 }, SETTINGS, middle);
  t.equal(feedWatchdog, false);
  t.equal(state.passFailures, 0, 'not a thrown pass: the beat is kept');
  t.equal(state.nextPassAt, T0 + 5000);
});

t.test('a timer that fires a little early still starts the pass', async (t) => {
  const state: LoopState = { ...initialLoopState(), nextPassAt: T0 + 5000, nextDiscoveryAt: T0 + 30_000 };
  t.same(nextStep(state, T0 + 5000 - TIMER_SLACK_MS), { kind: 'pass', discover: false });
  t.same(nextStep(state, T0 + 5000 - TIMER_SLACK_MS - 1), { kind: 'sleep', ms: TIMER_SLACK_MS + 1 });
  t.same(nextStep(state, T0 + 30_000 - TIMER_SLACK_MS), { kind: 'pass', discover: true });
});

t.test('stop wins over a due pass and a reload; a reload runs before the next pass', async (t) => {
  const due = { ...initialLoopState(), nextPassAt: T0 };
  t.same(nextStep(requestStop(requestReload(due)), T0), { kind: 'stop' });
  t.same(nextStep(requestReload(due), T0), { kind: 'reload' });
  t.same(nextStep(requestStop({ ...due, nextPassAt: T0 + 60_000 }), T0), { kind: 'stop' }, 'a stop does not wait for the beat');
});

t.test('an applied reload asks the API on a pass at once, keeping the failure count; a refused one changes nothing', async (t) => {
  const backingOff: LoopState = { ...initialLoopState(), reloadRequested: true, apiFailures: 4, nextPassAt: T0 + 5000, nextDiscoveryAt: T0 + 240_000 };
  const applied = reloaded(backingOff, true);
  t.same(nextStep(applied, T0), { kind: 'pass', discover: true });
  t.equal(applied.apiFailures, 4, 'a reload during an outage does not restart the backoff from its shortest step');
  const { apiRetryInMs } = afterPass(applied, apiFailed, { startedAt: T0, now: T0 }, SETTINGS, middle);
  t.equal(apiRetryInMs, 300_000, 'the next failure waits as the fifth would');
  const refused = reloaded(backingOff, false);
  t.same(refused, { ...backingOff, reloadRequested: false });
  t.same(nextStep(refused, T0), { kind: 'sleep', ms: 5000 });
});
