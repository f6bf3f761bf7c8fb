// The audit's part of the status snapshot, and the health check read from it.
// Pure. A log that may be missing flows is a WARNING for an hour after the
// last loss (an overrun, or the reader down), and the counters keep every
// loss for alerting; a reader that is not listening is a WARNING until it is.

/** The audit as the daemon publishes it in status.json. */
export interface AuditStatus {
  /** "journal", or the audit file's path. */
  sink: string;
  /** The event reader is subscribed now. */
  listening: boolean;
  /** Why it is not listening (its last words), or why it last stopped. */
  readerError?: string;
  /** When it stopped listening (ISO 8601), while it is not. */
  downSince?: string;
  /** Where the connmark filter runs and the receive buffer the kernel granted, from the reader's start. */
  filter?: 'kernel' | 'user';
  bufferBytes?: number;
  /** End lines written since the daemon started. */
  flowsLogged: number;
  eventsLost: number;
  /** The last overrun (ISO 8601). */
  lastLossAt?: string;
  readerRestarts: number;
  /** The last time the reader was started again after dying (ISO 8601). */
  lastRestartAt?: string;
  /** The audit file cannot be written now. */
  writeError?: string;
  /** nf_conntrack_acct or nf_conntrack_timestamp could not be set. */
  sysctlError?: string;
}

/** How long a loss keeps health at WARNING. */
export const AUDIT_LOSS_WARN_MS = 60 * 60_000;

export interface AuditCheck {
  state: 'ok' | 'warning';
  message: string;
}

export function auditCheck(now: number, a: AuditStatus, formatAge: (ms: number) => string): AuditCheck {
  const recent = (iso: string | undefined): number | undefined => {
    if (iso === undefined) return undefined;
    const age = now - Date.parse(iso);
    return age <= AUDIT_LOSS_WARN_MS ? Math.max(0, age) : undefined;
  };
  const problems: string[] = [];
  if (!a.listening) {
    const since = a.downSince === undefined ? '' : ` for ${formatAge(Math.max(0, now - Date.parse(a.downSince)))}`;
    problems.push(`the audit's conntrack event reader is not listening${since} (${a.readerError ?? 'starting'}): flows that end now are not logged; it is restarted by itself`);
  }
  const lossAge = recent(a.lastLossAt);
  if (lossAge !== undefined) {
    problems.push(`${a.eventsLost} conntrack event${a.eventsLost === 1 ? '' : 's'} lost since start, the last ${formatAge(lossAge)} ago (the reader fell behind): the audit log misses those flows`);
  }
  const restartAge = recent(a.lastRestartAt);
  if (restartAge !== undefined && a.listening) {
    problems.push(`the audit's event reader was restarted ${formatAge(restartAge)} ago after it stopped${a.readerError ? ` (${a.readerError})` : ''}: flows that ended meanwhile are missing`);
  }
  if (a.writeError !== undefined) problems.push(`cannot write the audit log ${a.sink}: ${a.writeError}`);
  if (a.sysctlError !== undefined) problems.push(`audit lines may lack byte counts and start times: ${a.sysctlError}`);
  if (problems.length > 0) return { state: 'warning', message: problems.join('; ') };
  const filter = a.filter === undefined ? '' : `, connmark filter in the ${a.filter === 'kernel' ? 'kernel' : 'reader'}`;
  return { state: 'ok', message: `${a.flowsLogged} flow${a.flowsLogged === 1 ? '' : 's'} logged to ${a.sink}, none lost in the last hour${filter}` };
}
