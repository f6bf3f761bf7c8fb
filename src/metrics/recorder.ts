// The daemon's metrics after each pass: folds the pass into the counters,
// reads open connections from conntrack (on the passes that ask the API), and (when metrics.textfile is set)
// replaces the Prometheus textfile atomically for node_exporter to pick up.

import type { Config } from '../core/config/schema.js';
import { renderExposition, type MetricFamily } from '../core/metrics/exposition.js';
import { BUILD_INFO } from '../version.js';
import { forwardConnections, initialMetrics, metricFamilies, observePass, type DaemonMetrics, type ForwardConnections, type PassObservation } from '../core/metrics/daemon-metrics.js';
import type { Logger } from '../log/logger.js';
import type { HaStatus } from '../core/daemon/status-snapshot.js';
import type { PassReport } from '../daemon/reconciler.js';
import { ConntrackConnectionReader } from './conntrack-reader.js';
import { replaceTextfile } from './textfile.js';
import type { OpenConnections } from '../core/metrics/conntrack-listing.js';

export interface MetricsEdges {
  activeByDestination(connmark: number): Promise<OpenConnections>;
  writeTextfile(path: string, text: string): Promise<void>;
  now(): number;
  logger: Logger;
}

export interface PassOutcomeInput {
  config: Config;
  /** This pass's report; absent when the pass threw. */
  report: PassReport | undefined;
  /** The last pass that reported: what is forwarded is still what it planned when this one threw. */
  latest?: PassReport | undefined;
  lastSyncAt: number | undefined;
  /** HA pair: this instance's view of it. */
  ha?: HaStatus | undefined;
  /** Connection audit: its metric families, appended to the file. */
  audit?: MetricFamily[] | undefined;
}

export class MetricsRecorder {
  private metrics: DaemonMetrics;
  /** Problems already logged, so a steady fault is reported once, not every pass. */
  private readonly warned = new Set<string>();
  /** The last count of open connections (undefined inside: conntrack could not be read). */
  private open: { counts: OpenConnections | undefined } | undefined;

  constructor(private readonly edges: MetricsEdges) {
    this.metrics = initialMetrics(edges.now());
  }

  /** Records one pass; returns each forward's connections for the status snapshot. */
  async afterPass({ config, report, latest, lastSyncAt, ha, audit }: PassOutcomeInput): Promise<ForwardConnections[]> {
    this.metrics = observePass(this.metrics, observationOf(report, lastSyncAt));
    const plan = (report ?? latest)?.plan;
    const forwards = plan?.forwards ?? [];
    const active = await this.openConnections(config, report);
    const connections = forwardConnections(forwards, this.metrics, active);
    const path = config.metrics.textfile;
    if (path !== 'none') {
      const text = renderExposition([
        ...metricFamilies(this.metrics, {
          forwards,
          connections,
          quarantinedPorts: (plan?.state.released.length ?? 0) + (plan?.state.releasedAddresses?.length ?? 0),
          withoutPort: plan?.withoutPort.length ?? 0,
          now: this.edges.now(),
          build: BUILD_INFO,
          ...(ha ? { ha } : {}),
        }),
        ...(audit ?? []),
      ]);
      await this.edges.writeTextfile(path, text).then(
        () => this.warned.delete('textfile'),
        (err: Error) => this.warnOnce('textfile', { err: err.message, path }, 'cannot write the metrics file (metrics.textfile); check that its directory exists and is writable (node_exporter --collector.textfile.directory)'),
      );
    }
    return connections;
  }

  /**
   * Open connections per listener. `conntrack -L` costs about as much as a
   * whole no-op pass at 1000 forwards, so it runs on the passes that ask the
   * API (every discovery.interval) and on the first; the passes between reuse
   * that count.
   */
  private async openConnections(config: Config, report: PassReport | undefined): Promise<OpenConnections | undefined> {
    const due = this.open === undefined || (report !== undefined && report.discovery.status !== 'skipped');
    if (!due) return this.open?.counts;
    const counts = await this.edges.activeByDestination(config.forward.connmark).then(
      (counts) => (this.warned.delete('conntrack'), counts),
      (err: Error & { exitCode?: number }) => {
        const advice = err.exitCode === 127 ? 'install conntrack (conntrack-tools on Amazon Linux)' : 'check that the daemon runs as root or with CAP_NET_ADMIN';
        this.warnOnce('conntrack', { err: err.message }, `cannot read open connections per forward; they show as unknown. To fix: ${advice}`);
        return undefined;
      },
    );
    this.open = { counts };
    return counts;
  }

  private warnOnce(what: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(what)) return;
    this.warned.add(what);
    this.edges.logger.warn(fields, message);
  }
}

function observationOf(report: PassReport | undefined, lastSyncAt: number | undefined): PassObservation {
  const observation: PassObservation = { outcome: 'failed', durationSeconds: undefined, dnatChainRewritten: false, events: [] };
  if (lastSyncAt !== undefined) observation.lastSyncAt = lastSyncAt;
  if (!report) return observation;
  observation.durationSeconds = report.durationMs / 1000;
  observation.events = report.plan.events;
  observation.outcome = report.kernelError ? 'kernel_error' : report.discovery.status === 'failed' ? 'api_error' : 'ok';
  if (report.discovery.status === 'failed') observation.apiErrorCode = report.discovery.error.code;
  if (report.kernelError) observation.kernelWrite = 'error';
  else if (report.applied) observation.kernelWrite = 'ok';
  observation.dnatChainRewritten = report.applied && report.plan.changes.chainsWritten.includes('CACHENAT-DNAT');
  if (report.dnatPackets) observation.dnatPackets = report.dnatPackets;
  observation.flowsForgotten = report.flowsForgotten;
  return observation;
}

/** The real edges: conntrack on this host, the textfile replaced by rename. */
export function hostMetricsEdges(logger: Logger): MetricsEdges {
  const reader = new ConntrackConnectionReader();
  return {
    activeByDestination: (connmark) => reader.activeByDestination(connmark),
    writeTextfile: replaceTextfile,
    now: () => Date.now(),
    logger,
  };
}
