// Runs the conntrack event reader (reader-program.ts) as a child process and
// keeps it running: a reader that dies is started again after a pause that
// grows while it keeps dying, and every time it is not listening is reported,
// so the audit can say when its log has a gap. Lines are parsed by the pure
// protocol module; one that does not parse is reported, never used.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { parseReaderLine, type ReaderLine } from '../core/audit/reader-lines.js';
import { READER_BOOTSTRAP, READER_PROGRAM } from './reader-program.js';

/** The first pause after a reader died; it doubles up to the maximum while the reader keeps dying. */
export const RESTART_FIRST_MS = 1_000;
export const RESTART_MAX_MS = 60_000;
/** A reader that listened this long counts as healthy again: the next pause starts from the first. */
export const HEALTHY_AFTER_MS = 60_000;

export interface ReaderSettings {
  /** cachenat's connmark bit: only flows carrying it are reported. */
  mark: number;
  /** Also report flows starting. */
  starts: boolean;
  /** Receive buffer asked for (SO_RCVBUFFORCE; the kernel doubles it). */
  bufferBytes: number;
}

/** A started reader: its output, and how it ended. */
export interface ReaderChild {
  stdout: Readable;
  stderr: Readable;
  exited: Promise<{ code: number | null; signal: string | null; error?: string }>;
  /** Ends it (closing its stdin is enough: it exits when the daemon's end of the pipe goes). */
  stop(): void;
}

export type StartReader = (args: readonly string[]) => ReaderChild;

export interface ReaderEvents {
  /** Every line of the protocol, in order. */
  line(line: ReaderLine): void;
  /** The reader stopped listening (died, or could not start), with its last words. */
  down(reason: string, atMs: number): void;
  /** A line that does not follow the protocol (a bug: the line is dropped). */
  invalid(line: string): void;
}

/** The command line after `python3`: the bootstrap, then the reader's own arguments. */
export function readerArguments(settings: ReaderSettings): string[] {
  if (!Number.isInteger(settings.mark) || settings.mark < 1 || settings.mark > 0xffffffff) throw new Error(`audit: invalid connmark ${settings.mark}`);
  if (!Number.isInteger(settings.bufferBytes) || settings.bufferBytes < 0) throw new Error(`audit: invalid buffer size ${settings.bufferBytes}`);
  return ['-I', '-B', '-c', READER_BOOTSTRAP, '--mark', `0x${settings.mark.toString(16)}`, '--events', settings.starts ? 'new,destroy' : 'destroy', '--buffer', String(settings.bufferBytes)];
}

/** The real reader: python3 with the program on file descriptor 3. */
export const startPythonReader: StartReader = (args) => {
  const child = spawn('python3', [...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  const exited = new Promise<{ code: number | null; signal: string | null; error?: string }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve({ code: null, signal: null, error: err.code === 'ENOENT' ? 'python3 is not installed (apt-get install python3, or dnf install python3)' : err.message }),
    );
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const program = child.stdio[3] as Writable | null;
  program?.on('error', () => {}); // a reader that died at once: its exit says why
  program?.end(READER_PROGRAM);
  child.stdin?.on('error', () => {});
  return { stdout: child.stdout!, stderr: child.stderr!, exited, stop: () => child.stdin?.end() };
};

const waitOrStop = (ms: number, stop: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    stop.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

export class EventReader {
  private stopped = false;
  private child: ReaderChild | undefined;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly settings: ReaderSettings,
    private readonly events: ReaderEvents,
    private readonly startReader: StartReader = startPythonReader,
    private readonly now: () => number = Date.now,
    /** Waits between restarts; cut short when the reader is stopped. */
    private readonly wait: (ms: number, stop: AbortSignal) => Promise<void> = waitOrStop,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops the reader and waits for it to exit. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.child?.stop();
    this.stopping.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    let pauseMs = RESTART_FIRST_MS;
    while (!this.stopped) {
      const startedAt = this.now();
      const reason = await this.runOnce();
      if (this.stopped) return;
      this.events.down(reason, this.now());
      if (this.now() - startedAt >= HEALTHY_AFTER_MS) pauseMs = RESTART_FIRST_MS;
      await this.wait(pauseMs, this.stopping.signal);
      pauseMs = Math.min(RESTART_MAX_MS, pauseMs * 2);
    }
  }

  /** Runs one reader until it exits; resolves with why it stopped. */
  private async runOnce(): Promise<string> {
    let child: ReaderChild;
    try {
      child = this.startReader(readerArguments(this.settings));
    } catch (err) {
      return (err as Error).message;
    }
    this.child = child;
    const errors: string[] = [];
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (errors.length < 5) errors.push(line);
    });
    const closed = eachLine(child.stdout, (text) => {
      const parsed = parseReaderLine(text);
      if (parsed === undefined) this.events.invalid(text);
      else this.events.line(parsed);
    });
    const exit = await child.exited;
    await closed; // every line it printed is handled before it counts as down
    this.child = undefined;
    const how = exit.error ?? (exit.signal ? `killed by ${exit.signal}` : `exited ${exit.code}`);
    return errors.length > 0 ? `${how}: ${errors.join('; ')}` : how;
  }
}

/**
 * Calls `onLine` for each line of the stream; resolves once it ended. Split by
 * hand rather than with readline: the reader sends a flow a line, thousands a
 * second, in batches.
 */
function eachLine(stream: Readable, onLine: (line: string) => void): Promise<void> {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const text = rest === '' ? chunk : rest + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      onLine(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
  });
  return new Promise((resolve) => {
    const done = () => {
      if (rest !== '') onLine(rest);
      rest = '';
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}
