// `cachenat audit`: who reached which cache in a time window, from the audit
// log's records. Pure: records and a window in, figures and text out. A flow
// belongs to the window its end falls in; the window's gaps (overruns, the
// reader restarting, the audit starting) are part of the answer, because a
// summary that leaves them out would claim a completeness it does not have.

import { formatDuration, parseDuration } from '../config/duration.js';
import { END_REASONS, type AuditRecord, type EndReason, type FlowEndRecord, type GapRecord } from './record.js';

export interface SummaryWindow {
  fromMs: number;
  toMs: number;
}

export interface Traffic {
  flows: number;
  bytesFromClient: number;
  bytesToClient: number;
}

export interface ClientFigures extends Traffic {
  client: string;
}

export interface CacheFigures extends Traffic {
  /** The cluster, replication group or Serverless cache; "(unknown)" for flows on a listener no forward was remembered for. */
  cache: string;
  /** Its targets the flows went through (primary/orders, reader/orders, …). */
  targets: string[];
  /** The busiest clients, most connections first. */
  clients: ClientFigures[];
  /** How many more clients there were. */
  otherClients: number;
}

export interface CutFlow {
  end: string;
  clientAddress: string;
  clientPort: number;
  source: string;
  cache: string;
  targetKey: string | null;
  bytesFromClient: number | null;
  bytesToClient: number | null;
}

export interface AuditSummary {
  from: string;
  to: string;
  totals: Traffic;
  flows: number;
  reasons: Record<EndReason, number>;
  /** Most connections first. */
  caches: CacheFigures[];
  /** Flows cut because the config no longer admitted them. */
  revoked: CutFlow[];
  /** Times the log says it may be missing flows. */
  gaps: Pick<GapRecord, 'cause' | 'at' | 'since' | 'lost'>[];
}

export const UNKNOWN_CACHE = '(unknown)';

const emptyTraffic = (): Traffic => ({ flows: 0, bytesFromClient: 0, bytesToClient: 0 });
const addFlow = (t: Traffic, r: FlowEndRecord): void => {
  t.flows++;
  t.bytesFromClient += r.bytesFromClient ?? 0;
  t.bytesToClient += r.bytesToClient ?? 0;
};
const busiestFirst = <T extends Traffic & { name: string }>(a: T, b: T): number => b.flows - a.flows || b.bytesFromClient + b.bytesToClient - (a.bytesFromClient + a.bytesToClient) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Folds records in one at a time (a month of log is never held), then gives the summary. */
export class SummaryBuilder {
  private readonly totals = emptyTraffic();
  private readonly reasons = Object.fromEntries(END_REASONS.map((r) => [r, 0])) as Record<EndReason, number>;
  private readonly caches = new Map<string, { traffic: Traffic; targets: Set<string>; clients: Map<string, Traffic> }>();
  private readonly revoked: CutFlow[] = [];
  private readonly gaps: AuditSummary['gaps'] = [];

  constructor(
    private readonly window: SummaryWindow,
    private readonly topClients = 10,
  ) {}

  private inWindow(iso: string): boolean {
    const ms = Date.parse(iso);
    return ms >= this.window.fromMs && ms < this.window.toMs;
  }

  add(r: AuditRecord): void {
    if (r.event === 'gap') {
      if (this.inWindow(r.at)) this.gaps.push({ cause: r.cause, at: r.at, since: r.since, lost: r.lost });
      return;
    }
    if (r.event !== 'end' || !this.inWindow(r.end)) return;
    addFlow(this.totals, r);
    this.reasons[r.reason]++;
    const name = r.cache ?? UNKNOWN_CACHE;
    const cache = this.caches.get(name) ?? { traffic: emptyTraffic(), targets: new Set<string>(), clients: new Map<string, Traffic>() };
    this.caches.set(name, cache);
    addFlow(cache.traffic, r);
    if (r.targetKey !== null) cache.targets.add(r.targetKey);
    const client = cache.clients.get(r.clientAddress) ?? emptyTraffic();
    cache.clients.set(r.clientAddress, client);
    addFlow(client, r);
    if (r.reason === 'revoked') {
      this.revoked.push({ end: r.end, clientAddress: r.clientAddress, clientPort: r.clientPort, source: r.source, cache: name, targetKey: r.targetKey, bytesFromClient: r.bytesFromClient, bytesToClient: r.bytesToClient });
    }
  }

  finish(): AuditSummary {
    const byTime = <T>(time: (x: T) => string) => (a: T, b: T) => (time(a) < time(b) ? -1 : time(a) > time(b) ? 1 : 0);
    const caches = [...this.caches].map(([cache, c]) => {
      const clients = [...c.clients].map(([client, t]) => ({ name: client, ...t })).sort(busiestFirst);
      return {
        name: cache,
        cache,
        targets: [...c.targets].sort(),
        ...c.traffic,
        clients: clients.slice(0, this.topClients).map(({ name, ...t }) => ({ client: name, ...t })),
        otherClients: Math.max(0, clients.length - this.topClients),
      };
    });
    return {
      from: new Date(this.window.fromMs).toISOString(),
      to: new Date(this.window.toMs).toISOString(),
      totals: { ...this.totals },
      flows: this.totals.flows,
      reasons: { ...this.reasons },
      caches: caches.sort(busiestFirst).map(({ name: _name, ...c }) => c),
      revoked: [...this.revoked].sort(byTime((r) => r.end)),
      gaps: [...this.gaps].sort(byTime((g) => g.at)),
    };
  }
}

export function summarise(records: Iterable<AuditRecord>, window: SummaryWindow, topClients = 10): AuditSummary {
  const builder = new SummaryBuilder(window, topClients);
  for (const r of records) builder.add(r);
  return builder.finish();
}

/**
 * A bound of the window: a duration ago ("90m", "24h", "7d" counts days too)
 * or an ISO 8601 time. Undefined when the text is neither.
 */
export function parseWindowBound(text: string, nowMs: number): number | undefined {
  const days = /^\s*(\d+)\s*d\s*$/.exec(text);
  if (days) return nowMs - Number(days[1]) * 86_400_000;
  if (/^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$/.test(text)) {
    const ms = parseDuration(text);
    return ms === undefined ? undefined : nowMs - ms;
  }
  if (!/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(text.trim())) return undefined;
  const ms = Date.parse(text.trim());
  return Number.isNaN(ms) ? undefined : ms;
}

const bytes = (n: number): string => {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
};

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The summary for people: totals, each cache with its top clients, the revoked flows, the gaps. */
export function renderSummaryText(s: AuditSummary): string {
  const span = formatDuration(Date.parse(s.to) - Date.parse(s.from));
  const out = [`${s.from} to ${s.to} (${span}): ${s.flows} connection${s.flows === 1 ? '' : 's'} ended, ${bytes(s.totals.bytesFromClient)} from clients, ${bytes(s.totals.bytesToClient)} to clients`];
  out.push(`how they ended: ${END_REASONS.map((r) => `${s.reasons[r]} ${r}`).join(', ')}`);
  if (s.caches.length > 0) {
    const rows: string[][] = [];
    for (const c of s.caches) {
      rows.push([c.cache, String(c.flows), bytes(c.bytesFromClient), bytes(c.bytesToClient), c.targets.join(' ')]);
      for (const client of c.clients) rows.push([`  ${client.client}`, String(client.flows), bytes(client.bytesFromClient), bytes(client.bytesToClient), '']);
      if (c.otherClients > 0) rows.push([`  (${c.otherClients} more client${c.otherClients === 1 ? '' : 's'})`, '', '', '', '']);
    }
    out.push('', ...table(['CACHE / CLIENT', 'CONNS', 'FROM CLIENTS', 'TO CLIENTS', 'TARGETS'], rows));
  }
  if (s.revoked.length > 0) {
    out.push('', `cut by a revocation (${s.revoked.length}):`);
    out.push(...table(['ENDED', 'CLIENT', 'SOURCE', 'CACHE', 'TARGET'], s.revoked.map((r) => [r.end, `${r.clientAddress}:${r.clientPort}`, r.source, r.cache, r.targetKey ?? '-'])).map((l) => `  ${l}`));
  }
  if (s.gaps.some((g) => g.cause !== 'started')) {
    out.push('', 'the log may miss flows here:');
    for (const g of s.gaps) {
      if (g.cause === 'overrun') out.push(`  ${g.at} overrun: ${g.lost === null ? 'an unknown number of' : g.lost} flow end${g.lost === 1 ? '' : 's'} dropped by the kernel (the reader fell behind)`);
      if (g.cause === 'reader-restarted') out.push(`  ${g.since ?? '?'} to ${g.at}: the event reader was not listening`);
    }
  }
  const started = s.gaps.filter((g) => g.cause === 'started');
  if (started.length > 0) out.push('', `the audit (re)started at ${started.map((g) => g.at).join(', ')}: flows that ended while it was stopped are not in the log`);
  return `${out.join('\n')}\n`;
}
