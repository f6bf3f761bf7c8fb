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
}

/**
 * A notifier for the service manager named in env.NOTIFY_SOCKET, or the silent
 * one when there is none.
 *
 * At most one helper runs at a time. What arrives meanwhile is merged into the
 * next message (the latest STATUS wins, a repeated WATCHDOG=1 is sent once), so
 * messages never reorder and a slow helper never lets them pile up.
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, send?: SendNotify, options: NotifierOptions = {}): Notifier {
  if (!env.NOTIFY_SOCKET) return silentNotifier;
  const pid = options.pid ?? process.pid;
  const deliver = send ?? systemdNotify(pid);

  let pending = new Map<string, string>(); // insertion order is send order
  let inFlight: Promise<void> | undefined;

  const pump = (): Promise<void> => {
    if (inFlight) return inFlight;
    if (pending.size === 0) return Promise.resolve();
    const message = [...pending].map(([key, value]) => `${key}=${value}`);
    pending = new Map();
    inFlight = deliver(message, env)
      .catch((err: unknown) => options.onError?.(err))
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
    void pump();
  };

  return {
    ready: (status) => queue([['READY', '1'], ['STATUS', oneLine(status)]]),
    status: (status) => queue([['STATUS', oneLine(status)]]),
    watchdog: () => queue([['WATCHDOG', '1']]),
    stopping: () => queue([['STOPPING', '1']]),
    watchdogIntervalMs: watchdogIntervalOf(env, pid),
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
