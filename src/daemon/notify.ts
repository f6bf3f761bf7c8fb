// Telling the service manager what the daemon is doing (sd_notify protocol).
//
// Node cannot open Unix datagram sockets, so messages go through the
// `systemd-notify` helper. It runs without --no-block: it then waits until
// systemd has read the message, so systemd can still tell which unit the
// helper belonged to. Without CAP_SYS_ADMIN the helper cannot send on our
// behalf (--pid is only a hint), which is why the unit says NotifyAccess=all.

import { execa } from 'execa';

export interface Notifier {
  /** READY=1 plus a STATUS= line. */
  ready(status: string): void;
  /** STATUS= line, sent each pass. */
  status(status: string): void;
  /** WATCHDOG=1: only called when the reconcile loop really made progress. */
  watchdog(): void;
  /** STOPPING=1 on shutdown. */
  stopping(): void;
  /** Interval at which watchdog() must be called, or undefined when no watchdog is armed. */
  readonly watchdogIntervalMs: number | undefined;
  /** Resolves once everything sent so far has been handed to the service manager (await before exiting). */
  flush?(): Promise<void>;
}

/** For runs outside systemd (NOTIFY_SOCKET unset). */
export const silentNotifier: Notifier = {
  ready: () => undefined,
  status: () => undefined,
  watchdog: () => undefined,
  stopping: () => undefined,
  watchdogIntervalMs: undefined,
  flush: () => Promise.resolve(),
};

/** Sends one message: KEY=VALUE assignments, in order. */
export type SendNotify = (assignments: string[], env: NodeJS.ProcessEnv) => Promise<void>;

export interface NotifierOptions {
  /** Called when a message could not be delivered; the daemon goes on regardless. */
  onError?: (err: unknown) => void;
  pid?: number;
  /** Monotonic milliseconds (tests); performance.now by default. */
  now?: () => number;
}

/**
 * A notifier for the service manager named in env.NOTIFY_SOCKET, or the silent
 * one when there is none.
 *
 * At most one helper runs at a time. What arrives meanwhile is merged into the
 * next message (the latest STATUS wins, a repeated WATCHDOG=1 is sent once), so
 * messages never reorder and a slow helper never lets them pile up.
 *
 * Each message costs a process, and a quiet daemon passes every few seconds:
 * a STATUS equal to the one last sent is not sent again, and with the watchdog
 * armed WATCHDOG=1 goes at most once per third of its timeout (10 s of
 * WatchdogSec=30s), which still leaves two chances before systemd gives up.
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, send?: SendNotify, options: NotifierOptions = {}): Notifier {
  if (!env.NOTIFY_SOCKET) return silentNotifier;
  const pid = options.pid ?? process.pid;
  const deliver = send ?? systemdNotify(pid);
  const now = options.now ?? (() => performance.now());
  const watchdogIntervalMs = watchdogIntervalOf(env, pid);
  // watchdogIntervalMs is half the timeout: a third of the timeout is two thirds of it.
  const watchdogGapMs = watchdogIntervalMs === undefined ? 0 : (watchdogIntervalMs * 2) / 3;

  let pending = new Map<string, string>(); // insertion order is send order
  let inFlight: Promise<void> | undefined;
  let sentStatus: string | undefined;
  let watchdogSentAt = -Infinity;

  const pump = (): Promise<void> => {
    if (inFlight) return inFlight;
    if (pending.size === 0) return Promise.resolve();
    const message = [...pending].map(([key, value]) => `${key}=${value}`);
    if (pending.has('STATUS')) sentStatus = pending.get('STATUS');
    if (pending.has('WATCHDOG')) watchdogSentAt = now();
    pending = new Map();
    inFlight = deliver(message, env)
      .catch((err: unknown) => {
        // Not delivered: the next STATUS and WATCHDOG=1 go whatever they say.
        sentStatus = undefined;
        watchdogSentAt = -Infinity;
        options.onError?.(err);
      })
      .finally(() => {
        inFlight = undefined;
      })
      .then(pump);
    return inFlight;
  };

  const queue = (entries: [string, string][]) => {
    for (const [key, value] of entries) {
      pending.delete(key); // re-insert so the newest value keeps its place after earlier keys
      pending.set(key, value);
    }
    // After this turn: what a pass says at its end (STATUS, WATCHDOG=1) goes as one message, one process.
    queueMicrotask(() => void pump());
  };

  return {
    ready: (status) => queue([['READY', '1'], ['STATUS', oneLine(status)]]),
    status: (status) => {
      const line = oneLine(status);
      if (line !== sentStatus) return queue([['STATUS', line]]);
      pending.delete('STATUS'); // back to what the manager already shows
    },
    watchdog: () => {
      if (now() - watchdogSentAt >= watchdogGapMs) queue([['WATCHDOG', '1']]);
    },
    stopping: () => queue([['STOPPING', '1']]),
    watchdogIntervalMs,
    flush: async () => {
      while (inFlight || pending.size > 0) await pump();
    },
  };
}

/** Half of WATCHDOG_USEC, when the watchdog is armed for this process. */
export function watchdogIntervalOf(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

// A newline would end the STATUS= assignment and start a bogus one.
const oneLine = (text: string): string => text.replace(/[\r\n]+/g, ' ').slice(0, 1024);

function systemdNotify(pid: number): SendNotify {
  return async (assignments, env) => {
    await execa('systemd-notify', [`--pid=${pid}`, ...assignments], { env, timeout: 10_000, stdin: 'ignore' });
  };
}
