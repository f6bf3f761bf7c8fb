// A long-running program inside a lab namespace, with its output kept line
// by line so tests can wait for "listening", "ready" or a log message.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { netnsExecArgs, signalPid } from './netns.js';

export interface SpawnOptions {
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  /** Short name used in error messages (default: the program's file name). */
  label?: string;
}

export interface ProcessExit {
  /** Undefined when the process died from a signal. */
  exitCode: number | undefined;
  signal: string | undefined;
}

export class LabProcess {
  /** `ip netns exec` execs the program in place, so this is the program's own pid. */
  readonly pid: number;
  readonly label: string;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Both streams interleaved in arrival order; indexes into it are the marks `waitForLine` takes. */
  readonly output: string[] = [];
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(ns: string, file: string, args: readonly string[], options: SpawnOptions = {}) {
    this.label = options.label ?? `${file.split('/').pop()} in ${ns}`;
    const child = execa('ip', netnsExecArgs(ns, file, args), {
      env: options.env ?? {},
      stdin: 'ignore',
      buffer: false,
      reject: false,
    });
    if (child.pid === undefined) throw new Error(`could not start ${this.label}`);
    this.pid = child.pid;
    this.#collect(child.stdout, this.stdout);
    this.#collect(child.stderr, this.stderr);
    this.exited = child.then(async (result) => {
      // Let readline hand over the last lines before anyone hears of the exit.
      await new Promise((resolve) => setImmediate(resolve));
      this.#exit = { exitCode: result.exitCode, signal: result.signal };
      this.#wake();
      return this.#exit;
    });
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Current end of `output`: pass it to `waitForLine` to wait only for lines printed after now. */
  mark(): number {
    return this.output.length;
  }

  /**
   * Resolves with the first line (stdout or stderr) at or after `from` that
   * matches; rejects on timeout or when the process exits first, quoting the
   * last lines it printed.
   */
  waitForLine(pattern: RegExp, timeoutMs = 5_000, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      let next = from;
      const check = (): void => {
        for (; next < this.output.length; next++) {
          const line = this.output[next] as string;
          if (pattern.test(line)) return finish(() => resolve(line));
        }
        if (this.#exit) {
          const how = this.#exit.signal ?? `code ${this.#exit.exitCode}`;
          finish(() => reject(new Error(`${this.label} exited (${how}) before printing ${pattern}${this.#tail()}`)));
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.label} printed nothing matching ${pattern} within ${timeoutMs} ms${this.#tail()}`))),
        timeoutMs,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        settle();
      };
      this.#waiters.add(check);
      check();
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) signalPid(this.pid, signal);
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 2_000): Promise<ProcessExit> {
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (first === 'timeout') this.kill('SIGKILL');
    return this.exited;
  }

  #collect(stream: Readable | null, into: string[]): void {
    if (!stream) return;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      into.push(line);
      this.output.push(line);
      this.#wake();
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #tail(): string {
    const last = this.output.slice(-10);
    return last.length === 0 ? ' (no output)' : `; last output:\n  ${last.join('\n  ')}`;
  }
}

/** Starts `file args…` inside namespace `ns`. */
export const spawnIn = (ns: string, file: string, args: readonly string[], options?: SpawnOptions): LabProcess =>
  new LabProcess(ns, file, args, options);
