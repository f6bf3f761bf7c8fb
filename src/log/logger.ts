// Logging: pino JSON lines on stdout, shaped for where stdout goes.
//   journal: under systemd (JOURNAL_STREAM set) every line starts with its
//            sd-daemon priority, so `journalctl -p warning` filters by level.
//   pretty:  on a terminal, one readable line per entry.
//   json:    anywhere else (pipes, files, tests).
// The journal and pretty streams read the level and fields pino already has
// in hand (its metadata hook) instead of parsing each JSON line back.

import { pino, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'json' | 'journal' | 'pretty';

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout by default. */
  destination?: { write(line: string): void };
  /** Defaults to what suits stdout (see logFormatFor); plain JSON when a destination is given. */
  format?: LogFormat;
}

/** Pino's numeric levels mapped to sd-daemon(3) priorities. */
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };
const LABEL: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

export function logFormatFor(env: NodeJS.ProcessEnv, stdoutIsTTY: boolean): LogFormat {
  if (env.JOURNAL_STREAM) return 'journal';
  return stdoutIsTTY ? 'pretty' : 'json';
}

export function createLogger(options: LoggerOptions): Logger {
  const out = options.destination ?? pino.destination({ fd: 1, sync: true });
  const format = options.format ?? (options.destination ? 'json' : logFormatFor(process.env, process.stdout.isTTY === true));
  const stream = format === 'journal' ? journalStream(out) : format === 'pretty' ? prettyStream(out) : out;
  return pino({ level: options.level, base: undefined }, stream);
}

/** What pino fills in on a stream that asks for metadata, just before each write. */
interface MetadataStream {
  [key: symbol]: boolean;
  lastLevel: number;
  lastObj: Record<string, unknown>;
  lastMsg: string | undefined;
  lastTime: string;
  lastLogger: Logger;
  write(line: string): void;
}

const NEEDS_METADATA = Symbol.for('pino.metadata');

function journalStream(out: { write(line: string): void }): MetadataStream {
  const stream = {
    [NEEDS_METADATA]: true,
    write(line: string) {
      out.write(`<${PRIORITY[stream.lastLevel] ?? 6}>${line}`);
    },
  } as unknown as MetadataStream;
  return stream;
}

function prettyStream(out: { write(line: string): void }): MetadataStream {
  const stream = {
    [NEEDS_METADATA]: true,
    write() {
      const fields = { ...stream.lastLogger.bindings(), ...stream.lastObj };
      out.write(formatPretty(stream.lastLevel, Number(stream.lastTime), stream.lastMsg, fields) + '\n');
    },
  } as unknown as MetadataStream;
  return stream;
}

/** `12:34:56.789 WARN  msg key=value …`, local time. Exported for tests. */
export function formatPretty(level: number, epochMs: number, msg: string | undefined, fields: Record<string, unknown>): string {
  const d = new Date(Number.isFinite(epochMs) ? epochMs : Date.now());
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const parts = [time, (LABEL[level] ?? String(level)).padEnd(5)];
  if (msg !== undefined) parts.push(msg);
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.join(' ');
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
