// What the daemon's loop needs of the connection audit (AuditService is the
// real one; tests of the loop pass fakes).

import type { AuditStatus } from '../core/audit/audit-health.js';
import type { Config } from '../core/config/schema.js';
import type { MetricFamily } from '../core/metrics/exposition.js';
import type { Forward } from '../core/model.js';
import type { FlushReason } from '../core/audit/record.js';

/** What the reconciler tells the audit about the flows it deletes. */
export interface FlowFlushNotes {
  /** A flush is about to run: end events wait until it is done, so none is written before its reason is known. */
  flushStarting(): void;
  /** The flush is done: `conntrack -D`'s output (each entry it deleted; empty when it failed) and why. */
  flushed(reason: FlushReason, deletedListing: string): void;
}

export interface AuditControl extends FlowFlushNotes {
  start(): void;
  /** After every pass: the forwards now planned (attribution) and the allowed sources. */
  afterPass(forwards: readonly Forward[], allowedSources: readonly string[]): Promise<void>;
  /** A reloaded config that still enables the audit; reopens the file. */
  reconfigure(config: Config): Promise<void>;
  /** SIGHUP with a config that was refused: only the file is reopened. */
  reopen(): Promise<void>;
  status(): AuditStatus;
  families(): MetricFamily[];
  stop(): Promise<void>;
}
