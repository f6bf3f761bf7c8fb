// The connection audit in the daemon: the event reader's lines become audit
// records (attributed to a forward and an allowedSources entry, given an end
// reason), go to the sink, and are counted for metrics and health. The
// reconciler tells it about its own flow flushes (flushStarting/flushed), so
// a flow cachenat deleted says why. Every way the log can miss flows (an
// overrun, the reader down) is written into the log itself as a gap record,
// counted, and shown by health.

import { emptyAttribution, forwardOf, rememberForwards, sourceOf, withSources, type AttributionTable } from '../core/audit/attribution.js';
import { auditFamilies, countRecord, emptyAuditCounts } from '../core/audit/audit-metrics.js';
import type { AuditStatus } from '../core/audit/audit-health.js';
import { FlushLedger } from '../core/audit/flush-ledger.js';
import type { FlowEvent, ReaderLine } from '../core/audit/reader-lines.js';
import { endReasonOf, endRecordOf, gapRecordOf, startRecordOf, type AuditRecord, type FlushReason } from '../core/audit/record.js';
import type { Config } from '../core/config/schema.js';
import type { MetricFamily } from '../core/metrics/exposition.js';
import type { Forward } from '../core/model.js';
import { parseConntrackEntries } from '../core/netfilter/conntrack-entry.js';
import type { Logger } from '../log/logger.js';
import type { SysctlResult } from './conntrack-sysctl.js';
import { EventReader, startPythonReader, type ReaderSettings, type StartReader } from './event-reader.js';
import type { AuditSink, SinkProblems } from './sinks.js';
import type { AuditControl } from './audit-control.js';

export interface AuditEdges {
  /** The sink for a config: the file, or the journal. */
  openSink(audit: NonNullable<Config['audit']>, problems: SinkProblems): AuditSink;
  ensureSysctls(): Promise<SysctlResult>;
  startReader?: StartReader;
  logger: Logger;
  now(): number;
}

interface Settings {
  reader: ReaderSettings;
  audit: NonNullable<Config['audit']>;
}

function settingsOf(config: Config): Settings {
  if (!config.audit) throw new Error('audit: built for a config without an audit section');
  return { reader: { mark: config.forward.connmark, starts: config.audit.starts, bufferBytes: config.audit.receiveBuffer }, audit: config.audit };
}

export class AuditService implements AuditControl {
  private settings: Settings;
  private table: AttributionTable = emptyAttribution();
  private readonly ledger = new FlushLedger();
  private readonly counts = emptyAuditCounts();
  private sink: AuditSink;
  private reader: EventReader;
  private listening = false;
  private everListened = false;
  private downSince: number | undefined;
  private readerError: string | undefined;
  private ready: Extract<ReaderLine, { type: 'ready' }> | undefined;
  private flowsLogged = 0;
  private lastLossAt: number | undefined;
  private lastRestartAt: number | undefined;
  private writeError: string | undefined;
  private sysctlError: string | undefined;
  private sysctlsSet = false;
  private warnedInvalid = false;
  private passed = false;
  /** The reader was restarted on purpose (a reload changed its settings). */
  private restartAsked = false;

  constructor(
    config: Config,
    private readonly edges: AuditEdges,
  ) {
    this.settings = settingsOf(config);
    this.table = withSources(this.table, config.forward.allowedSources);
    // Until the first pass says which forward listens where, end events wait.
    this.ledger.begin();
    this.sink = edges.openSink(this.settings.audit, this.sinkProblems());
    this.reader = this.newReader();
  }

  /** Starts listening; the first pass's forwards arrive through afterPass. */
  start(): void {
    this.downSince = this.edges.now();
    this.reader.start();
  }

  /** After every pass: who listens where now, the kernel settings (set once, then checked). */
  async afterPass(forwards: readonly Forward[], allowedSources: readonly string[]): Promise<void> {
    this.table = rememberForwards(this.table, forwards, allowedSources);
    if (!this.passed) {
      this.passed = true;
      for (const released of this.ledger.release()) this.writeEnd(released.event, released.flushed);
    }
    this.ledger.expire(this.edges.now());
    await this.checkSysctls();
  }

  /** SIGHUP: a changed connmark or `starts` restarts the reader, a changed file swaps the sink, and the file is reopened either way. */
  async reconfigure(config: Config): Promise<void> {
    const next = settingsOf(config);
    const readerChanged = JSON.stringify(next.reader) !== JSON.stringify(this.settings.reader);
    const fileChanged = next.audit.file !== this.settings.audit.file;
    this.settings = next;
    this.table = withSources(this.table, config.forward.allowedSources);
    if (fileChanged) {
      const old = this.sink;
      this.sink = this.edges.openSink(next.audit, this.sinkProblems());
      await old.close();
      this.edges.logger.info({ sink: this.sink.where }, 'audit: lines now go to the new audit.file');
    } else {
      await this.sink.reopen();
    }
    if (readerChanged) {
      await this.reader.stop();
      this.listening = false;
      this.restartAsked = true;
      this.downSince = this.edges.now();
      this.reader = this.newReader();
      this.reader.start();
    }
  }

  async reopen(): Promise<void> {
    await this.sink.reopen();
  }

  flushStarting(): void {
    this.ledger.begin();
  }

  flushed(reason: FlushReason, deletedListing: string): void {
    const deleted = parseConntrackEntries(deletedListing).map((e) => e.orig);
    for (const released of this.ledger.end(reason, deleted, this.edges.now())) this.writeEnd(released.event, released.flushed);
  }

  status(): AuditStatus {
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    const s: AuditStatus = { sink: this.sink.where, listening: this.listening, flowsLogged: this.flowsLogged, eventsLost: this.counts.eventsLost, readerRestarts: this.counts.readerRestarts };
    const optional: Partial<AuditStatus> = {
      readerError: this.readerError,
      downSince: this.listening ? undefined : iso(this.downSince),
      filter: this.ready?.filter,
      bufferBytes: this.ready?.buffer,
      lastLossAt: iso(this.lastLossAt),
      lastRestartAt: iso(this.lastRestartAt),
      writeError: this.writeError,
      sysctlError: this.sysctlError,
    };
    for (const [key, value] of Object.entries(optional)) if (value !== undefined) Object.assign(s, { [key]: value });
    return s;
  }

  families(): MetricFamily[] {
    return auditFamilies(this.counts, { listening: this.listening });
  }

  async stop(): Promise<void> {
    await this.reader.stop();
    await this.sink.close();
  }

  private newReader(): EventReader {
    return new EventReader(
      this.settings.reader,
      {
        line: (line) => this.onLine(line),
        down: (reason, atMs) => this.onDown(reason, atMs),
        invalid: (text) => {
          if (this.warnedInvalid) return;
          this.warnedInvalid = true;
          this.edges.logger.warn({ line: text.slice(0, 200) }, 'audit: the event reader printed a line cachenat does not understand; dropped (further ones are dropped silently)');
        },
      },
      this.edges.startReader ?? startPythonReader,
      this.edges.now,
    );
  }

  private onLine(line: ReaderLine): void {
    switch (line.type) {
      case 'ready': {
        const now = this.edges.now();
        this.ready = line;
        this.listening = true;
        if (this.everListened) {
          // The log says so either way; only a reader that died is a loss for health and the restart counter.
          this.write(gapRecordOf('reader-restarted', now, this.downSince === undefined ? {} : { sinceMs: this.downSince }));
          if (this.restartAsked) {
            this.edges.logger.info({ bufferBytes: line.buffer, starts: this.settings.reader.starts }, 'audit: the event reader listens with the reloaded settings');
          } else {
            this.lastRestartAt = now;
            this.counts.readerRestarts++;
            this.edges.logger.warn({ since: new Date(this.downSince ?? now).toISOString() }, 'audit: the event reader listens again; flows that ended while it was down are not in the log');
          }
        } else {
          this.write(gapRecordOf('started', now));
          const filter = line.filter === 'kernel' ? 'in the kernel' : 'in the reader (the kernel refused the socket filter)';
          this.edges.logger.info({ sink: this.sink.where, bufferBytes: line.buffer, starts: this.settings.reader.starts }, `audit: logging every forwarded connection to ${this.sink.where}; connmark filter ${filter}`);
        }
        this.everListened = true;
        this.restartAsked = false;
        this.downSince = undefined;
        return;
      }
      case 'overrun': {
        const at = line.receivedMs;
        this.lastLossAt = at;
        this.write(gapRecordOf('overrun', at, line.lost === undefined ? {} : { lost: line.lost }));
        this.edges.logger.warn({ lost: line.lost ?? 'unknown' }, 'audit: the kernel dropped conntrack events (the reader fell behind, ENOBUFS): those flows are missing from the audit log');
        return;
      }
      case 'event':
        if (line.event.kind === 'start') {
          if (this.settings.reader.starts) this.write(startRecordOf(line.event, forwardOf(this.table, line.event.orig), sourceOf(this.table, line.event.orig.src)));
          return;
        }
        {
          const flushed = this.ledger.ended(line.event);
          if (flushed !== 'held') this.writeEnd(line.event, flushed);
        }
    }
  }

  private onDown(reason: string, atMs: number): void {
    const wasListening = this.listening;
    this.listening = false;
    this.readerError = reason;
    this.downSince = atMs;
    if (wasListening || !this.everListened) this.edges.logger.error({ err: reason }, 'audit: the conntrack event reader stopped; flows that end now are not logged. Restarting it');
  }

  private writeEnd(event: FlowEvent, flushed: FlushReason | undefined): void {
    this.write(endRecordOf(event, forwardOf(this.table, event.orig), sourceOf(this.table, event.orig.src), endReasonOf(event, flushed)));
  }

  private write(record: AuditRecord): void {
    this.sink.write(record);
    countRecord(this.counts, record);
    if (record.event === 'end') this.flowsLogged++;
  }

  private sinkProblems(): SinkProblems {
    return {
      failed: (lines, error) => {
        this.counts.writeErrors += lines;
        if (this.writeError === undefined) this.edges.logger.error({ err: error, file: this.sink.where }, `audit: cannot write the audit file; ${lines} line(s) lost. Check audit.file's directory, its permissions and the disk`);
        this.writeError = error;
      },
      recovered: () => {
        this.writeError = undefined;
        this.edges.logger.info({ file: this.sink.where }, 'audit: writing the audit file works again');
      },
    };
  }

  private async checkSysctls(): Promise<void> {
    try {
      const result = await this.edges.ensureSysctls();
      if (result.setNow.length > 0) {
        const which = result.setNow.map((key) => `${key}=1`).join(' and ');
        const why = this.sysctlsSet ? 'they had been set back to 0' : 'the audit needs byte counts and timestamps';
        this.edges.logger.warn({ persistedIn: result.persistedIn }, `audit: set ${which} (${why}); connections already open have none`);
      } else if (result.persistedIn !== undefined) {
        this.edges.logger.info({ file: result.persistedIn }, 'audit: persisted nf_conntrack_acct=1 and nf_conntrack_timestamp=1 for reboots');
      }
      this.sysctlsSet = true;
      this.sysctlError = undefined;
    } catch (err) {
      if (this.sysctlError === undefined) this.edges.logger.error({ err: (err as Error).message }, 'audit: cannot set the conntrack byte counters and timestamps; audit lines will lack bytes and start times. Retrying every pass');
      this.sysctlError = (err as Error).message;
    }
  }
}
