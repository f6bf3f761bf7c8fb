// Where audit lines go: appended to audit.file, or into the journal through
// the daemon's logger (each line marked "audit": true). The file is held
// open and written in batches (one write per turn of the event loop, however
// many flows ended); SIGHUP reopens it, so logrotate can move it away.

import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { auditLineOf, type AuditRecord } from '../core/audit/record.js';
import type { Logger } from '../log/logger.js';

export interface AuditSink {
  /** Queues a record; failures are counted and reported through `onError`, never thrown. */
  write(record: AuditRecord): void;
  /** Closes and opens the file again (after logrotate moved it). */
  reopen(): Promise<void>;
  /** Writes what is queued and closes. */
  close(): Promise<void>;
  /** "journal", or the file's path. */
  readonly where: string;
}

export interface SinkProblems {
  /** A batch of `lines` could not be written; `error` says why. */
  failed(lines: number, error: string): void;
  /** Writing works (again). */
  recovered(): void;
}

/** Audit lines in the journal: the logger's own line with the record's fields, so one schema serves both. */
export class JournalSink implements AuditSink {
  readonly where = 'journal';
  private readonly logger: Logger;

  /** Audit lines are written whatever log.level says: a child logger at info. */
  constructor(logger: Logger) {
    this.logger = logger.child({}, { level: 'info' });
  }

  write(record: AuditRecord): void {
    if (record.event === 'gap') this.logger.warn(record, `audit: flows may be missing (${record.cause})`);
    else this.logger.info(record, record.event === 'end' ? 'audit: flow ended' : 'audit: flow started');
  }

  async reopen(): Promise<void> {}
  async close(): Promise<void> {}
}

/** File mode of a new audit file: client addresses are not for every local user. */
const FILE_MODE = 0o640;
/** Bytes of lines held before a write at most (a few hundred lines). */
const BUFFER_BYTES = 256 * 1024;

/**
 * Lines are encoded straight into one reused buffer as they come, and the
 * buffer goes out in one synchronous write (to the page cache) at the end of
 * the event loop's turn, or when it fills. Nothing of a record outlives its
 * line: holding records for an asynchronous write let a burst outlive V8's
 * small young generation, and collecting them cost more than writing them.
 */
export class FileSink implements AuditSink {
  private fd: number | undefined;
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private lines = 0;
  private scheduled = false;
  private failing = false;

  constructor(
    readonly where: string,
    private readonly problems: SinkProblems,
  ) {}

  write(record: AuditRecord): void {
    const line = auditLineOf(record);
    // A line longer than the room left (records are well under 1 kB): write what is there first.
    if (this.used + Buffer.byteLength(line) + 1 > this.buffer.length) this.flush();
    if (Buffer.byteLength(line) + 1 > this.buffer.length) return this.writeOut(Buffer.from(`${line}\n`), 1);
    this.used += this.buffer.write(line, this.used);
    this.buffer[this.used++] = 10;
    this.lines++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  async reopen(): Promise<void> {
    this.flush();
    this.closeFile();
  }

  async close(): Promise<void> {
    await this.reopen();
  }

  private flush(): void {
    if (this.used === 0) return;
    const lines = this.lines;
    const used = this.used;
    this.used = 0;
    this.lines = 0;
    this.writeOut(this.buffer.subarray(0, used), lines);
  }

  private writeOut(bytes: Buffer, lines: number): void {
    try {
      if (this.fd === undefined) {
        mkdirSync(dirname(this.where), { recursive: true, mode: 0o750 });
        this.fd = openSync(this.where, 'a', FILE_MODE);
      }
      for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done);
      if (this.failing) this.problems.recovered();
      this.failing = false;
    } catch (err) {
      // The next batch opens the file again: a full disk or a removed directory may come back.
      this.closeFile();
      this.failing = true;
      this.problems.failed(lines, (err as Error).message);
    }
  }

  private closeFile(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already unusable: it is dropped either way
    }
    this.fd = undefined;
  }
}
