// What the audit counts: connections and bytes per allowedSources entry and
// per target (label sets bounded by the config and the fleet, never a client
// address), how flows ended, and every way the log can miss flows. Pure: the
// daemon folds records and reader news in, the metrics file and the status
// snapshot read the result.

import type { MetricFamily, Sample } from '../metrics/exposition.js';
import { END_REASONS, type AuditRecord, type EndReason } from './record.js';

/** The target label of a flow no forward of this daemon's memory listened for. */
export const UNKNOWN_TARGET = 'unknown';

interface Totals {
  connections: number;
  bytesFromClient: number;
  bytesToClient: number;
}

export interface AuditCounts {
  bySource: Map<string, Totals>;
  byTarget: Map<string, Totals>;
  ends: Record<EndReason, number>;
  starts: number;
  /** Events the kernel dropped for the reader (exact when it said; one per overrun when it did not). */
  eventsLost: number;
  overruns: number;
  /** Restarts after the reader died (not those a reload asked for). */
  readerRestarts: number;
  /** Audit lines that could not be written (the sink's failures). */
  writeErrors: number;
}

export const emptyAuditCounts = (): AuditCounts => ({
  bySource: new Map(),
  byTarget: new Map(),
  ends: Object.fromEntries(END_REASONS.map((r) => [r, 0])) as Record<EndReason, number>,
  starts: 0,
  eventsLost: 0,
  overruns: 0,
  readerRestarts: 0,
  writeErrors: 0,
});

const add = (map: Map<string, Totals>, key: string, bytesFromClient: number, bytesToClient: number): void => {
  const t = map.get(key) ?? { connections: 0, bytesFromClient: 0, bytesToClient: 0 };
  t.connections++;
  t.bytesFromClient += bytesFromClient;
  t.bytesToClient += bytesToClient;
  map.set(key, t);
};

/** Folds one written record in (mutates: called per flow, at up to thousands a second). */
export function countRecord(counts: AuditCounts, record: AuditRecord): void {
  if (record.event === 'start') {
    counts.starts++;
    return;
  }
  if (record.event === 'gap') {
    if (record.cause === 'overrun') {
      counts.overruns++;
      counts.eventsLost += record.lost ?? 1;
    }
    return;
  }
  counts.ends[record.reason]++;
  const from = record.bytesFromClient ?? 0;
  const to = record.bytesToClient ?? 0;
  add(counts.bySource, record.source, from, to);
  add(counts.byTarget, record.targetKey ?? UNKNOWN_TARGET, from, to);
}

/** The reader's state, for metrics and health. */
export interface AuditReaderState {
  /** The reader is subscribed now. */
  listening: boolean;
  /** Why it is not (its last error), when it is not. */
  error?: string;
}

export function auditFamilies(counts: AuditCounts, reader: AuditReaderState): MetricFamily[] {
  const perKey = (map: Map<string, Totals>, label: 'source' | 'target', pick: (t: Totals) => number): Sample[] => [...map].map(([key, t]) => ({ labels: { [label]: key }, value: pick(t) }));
  const bytes = (map: Map<string, Totals>, label: 'source' | 'target'): Sample[] =>
    [...map].flatMap(([key, t]) => [
      { labels: { [label]: key, direction: 'from_client' }, value: t.bytesFromClient },
      { labels: { [label]: key, direction: 'to_client' }, value: t.bytesToClient },
    ]);
  return [
    { name: 'cachenat_audit_source_connections_total', help: 'Audited connections that ended, by the allowedSources entry that admitted the client ("unlisted": none did).', type: 'counter', samples: perKey(counts.bySource, 'source', (t) => t.connections) },
    { name: 'cachenat_audit_source_bytes_total', help: 'IP bytes of audited connections that ended, by allowedSources entry and direction.', type: 'counter', samples: bytes(counts.bySource, 'source') },
    { name: 'cachenat_audit_target_connections_total', help: 'Audited connections that ended, by target ("unknown": no forward listened there in this daemon\'s memory).', type: 'counter', samples: perKey(counts.byTarget, 'target', (t) => t.connections) },
    { name: 'cachenat_audit_target_bytes_total', help: 'IP bytes of audited connections that ended, by target and direction.', type: 'counter', samples: bytes(counts.byTarget, 'target') },
    { name: 'cachenat_audit_flow_ends_total', help: 'Audited connections that ended, by how they ended.', type: 'counter', samples: END_REASONS.map((reason) => ({ labels: { reason }, value: counts.ends[reason] })) },
    { name: 'cachenat_audit_flow_starts_total', help: 'Audited connections seen starting (audit.starts).', type: 'counter', samples: [{ value: counts.starts }] },
    { name: 'cachenat_audit_events_lost_total', help: 'Conntrack events the kernel dropped because the reader was behind (ENOBUFS): flows missing from the audit log.', type: 'counter', samples: [{ value: counts.eventsLost }] },
    { name: 'cachenat_audit_overruns_total', help: 'Times the reader\'s receive buffer overflowed (each lost one or more events).', type: 'counter', samples: [{ value: counts.overruns }] },
    { name: 'cachenat_audit_reader_restarts_total', help: 'Times the event reader was started again after it died (flows that ended meanwhile are missing).', type: 'counter', samples: [{ value: counts.readerRestarts }] },
    { name: 'cachenat_audit_write_errors_total', help: 'Audit lines that could not be written to audit.file.', type: 'counter', samples: [{ value: counts.writeErrors }] },
    { name: 'cachenat_audit_reader_up', help: 'The conntrack event reader is subscribed (1) or not (0).', type: 'gauge', samples: [{ value: reader.listening ? 1 : 0 }] },
  ];
}
