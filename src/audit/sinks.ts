// Where audit lines go: appended to audit.file, or into the journal through
// the daemon's logger (each line marked "audit": true). The file is held
// open and written in batches (one write per turn of the event loop, however
// many flows ended); SIGHUP reopens it, so logrotate can move it away.

import { mkdir, open, type FileHandle } from 'node:fs/promises';
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

export class FileSink implements AuditSink {
  private handle: FileHandle | undefined;
  private queue: string[] = [];
  private flushing: Promise<void> | undefined;
  private failing = false;

  constructor(
    readonly where: string,
    private readonly problems: SinkProblems,
  ) {}

  write(record: AuditRecord): void {
    this.queue.push(auditLineOf(record));
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  async reopen(): Promise<void> {
    await this.flushing;
    const old = this.handle;
    this.handle = undefined;
    await old?.close().catch(() => {});
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.reopen();
  }

  /** Writes batches until the queue is empty; the next write starts a new drain. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        this.handle ??= await openForAppend(this.where);
        await this.handle.appendFile(`${batch.join('\n')}\n`);
        if (this.failing) this.problems.recovered();
        this.failing = false;
      } catch (err) {
        // The next batch tries to open the file again: a full disk or a removed directory may come back.
        await this.handle?.close().catch(() => {});
        this.handle = undefined;
        this.failing = true;
        this.problems.failed(batch.length, (err as Error).message);
      }
    }
    this.flushing = undefined;
  }
}

async function openForAppend(path: string): Promise<FileHandle> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  return open(path, 'a', FILE_MODE);
}
