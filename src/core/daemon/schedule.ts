// The daemon loop's timing as pure functions: what to do next (stop, reload,
// run a pass, sleep) from the loop's state and the clock, and how a pass's
// outcome moves the schedule (the steady beat, the API's own beat, backoff
// after failures, whether the watchdog may be fed). run-daemon.ts only
// performs the steps.

import { discoveryRetryDelay } from './backoff.js';

/** A timer may wake a hair early: a pass due within this much is run now. */
export const TIMER_SLACK_MS = 50;

export interface ScheduleSettings {
  discoveryIntervalMs: number;
  dnsIntervalMs: number;
  /** Half of systemd's WatchdogSec, when a watchdog is armed. */
  watchdogIntervalMs?: number | undefined;
}

export interface LoopState {
  stopRequested: boolean;
  reloadRequested: boolean;
  /** The next pass runs at or after this time (0: at once). */
  nextPassAt: number;
  /** The first pass at or after this time asks the API (0: the next pass). */
  nextDiscoveryAt: number;
  /** Consecutive passes whose API call failed. */
  apiFailures: number;
  /** Consecutive passes that threw before producing a report. */
  passFailures: number;
}

export const initialLoopState = (): LoopState => ({
  stopRequested: false,
  reloadRequested: false,
  nextPassAt: 0,
  nextDiscoveryAt: 0,
  apiFailures: 0,
  passFailures: 0,
});

export type Step = { kind: 'stop' } | { kind: 'reload' } | { kind: 'pass'; discover: boolean } | { kind: 'sleep'; ms: number };

/** What the loop does now. A stop wins over everything; a reload runs before the next pass. */
export function nextStep(state: LoopState, now: number): Step {
  if (state.stopRequested) return { kind: 'stop' };
  if (state.reloadRequested) return { kind: 'reload' };
  if (now < state.nextPassAt - TIMER_SLACK_MS) return { kind: 'sleep', ms: state.nextPassAt - now };
  return { kind: 'pass', discover: now >= state.nextDiscoveryAt - TIMER_SLACK_MS };
}

/** How a pass ended: it threw, or it produced a report (whose API call may have failed, and whose kernel write may have). */
export type PassOutcome =
  | { kind: 'threw'; discovered: boolean }
  | { kind: 'completed'; discovery: 'ok' | 'failed' | 'skipped'; kernelOk: boolean };

export interface AfterPass {
  state: LoopState;
  /** Only a pass that really completed proves the loop is alive. */
  feedWatchdog: boolean;
  /** Set when the API call failed: how long until it is asked again. */
  apiRetryInMs?: number;
}

/**
 * The schedule after a pass that started at `startedAt` and ended at `now`.
 * Passes keep a steady beat of dns.interval (or the watchdog's, if shorter)
 * from each pass's start; the API is asked on the first beat at or after
 * discovery.interval, or after a backoff that doubles with each failure. A
 * pass that threw waits longer each time instead of retrying in a tight loop.
 */
export function afterPass(state: LoopState, outcome: PassOutcome, times: { startedAt: number; now: number }, settings: ScheduleSettings, random: () => number): AfterPass {
  const beat = Math.min(settings.dnsIntervalMs, settings.watchdogIntervalMs ?? Infinity);
  const { startedAt, now } = times;
  if (outcome.kind === 'threw') {
    const passFailures = state.passFailures + 1;
    return {
      state: {
        ...state,
        passFailures,
        nextPassAt: now + discoveryRetryDelay(passFailures, beat, random()),
        // Whatever failed after it, the API is asked at most once per interval (never sooner than its backoff).
        nextDiscoveryAt: outcome.discovered ? Math.max(state.nextDiscoveryAt, now + settings.discoveryIntervalMs) : state.nextDiscoveryAt,
      },
      feedWatchdog: false,
    };
  }
  const next: LoopState = { ...state, passFailures: 0, nextPassAt: startedAt + beat };
  let apiRetryInMs: number | undefined;
  if (outcome.discovery === 'ok') {
    next.apiFailures = 0;
    next.nextDiscoveryAt = startedAt + settings.discoveryIntervalMs;
  } else if (outcome.discovery === 'failed') {
    next.apiFailures = state.apiFailures + 1;
    apiRetryInMs = discoveryRetryDelay(next.apiFailures, settings.discoveryIntervalMs, random());
    next.nextDiscoveryAt = now + apiRetryInMs;
  }
  return apiRetryInMs === undefined ? { state: next, feedWatchdog: outcome.kernelOk } : { state: next, feedWatchdog: outcome.kernelOk, apiRetryInMs };
}

export const requestStop = (state: LoopState): LoopState => ({ ...state, stopRequested: true });
export const requestReload = (state: LoopState): LoopState => ({ ...state, reloadRequested: true });
/** A pass at once, without asking the API (HA: the role changed, the map is to be claimed or followed). */
export const requestPass = (state: LoopState): LoopState => ({ ...state, nextPassAt: 0 });

/**
 * After a reload: a new configuration is applied on a pass at once, and that
 * pass asks the API (filters or the region may have changed, so the last
 * answer no longer counts). The failure count stays, so a reload during an
 * outage does not restart the backoff from its shortest step. A refused
 * reload changes nothing.
 */
export function reloaded(state: LoopState, applied: boolean): LoopState {
  const next = { ...state, reloadRequested: false };
  return applied ? { ...next, nextPassAt: 0, nextDiscoveryAt: 0 } : next;
}
