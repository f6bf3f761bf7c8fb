// `cachenat run`: the reconcile loop. It performs the steps of the pure
// schedule (src/core/daemon/schedule.ts): passes never overlap (a loop with an
// abortable sleep, not setInterval); SIGTERM lets the current pass finish and
// leaves every rule in place; SIGHUP re-reads the config.

import type { Config } from '../core/config/schema.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import type { Forward } from '../core/model.js';
import {
  afterPass,
  initialLoopState,
  nextStep,
  reloaded as afterReload,
  requestPass,
  requestReload,
  requestStop,
  type PassOutcome,
  type ScheduleSettings,
} from '../core/daemon/schedule.js';
import type { Notifier } from './notify.js';
import { Reconciler, type PassReport, type ReconcilerEdges } from './reconciler.js';
import type { StatusSnapshot } from '../core/daemon/status-snapshot.js';
import type { MetricsRecorder } from '../metrics/recorder.js';
import type { HaNode } from '../ha/ha-node.js';
import type { AuditControl } from '../audit/audit-control.js';
import { auditedConntrack } from '../audit/audited-conntrack.js';
import { BUILD_INFO } from '../version.js';
import { configFingerprint } from '../core/ha/fingerprint.js';

export interface IpForwardControl {
  /** Checks (and in `enable` mode sets) ip_forward; returns the value now in force. */
  ensure(mode: Config['ipForward']): Promise<0 | 1 | undefined>;
}

export interface DaemonDeps {
  /** The config decided for this host (src/core/config/host.ts): no "auto" left in it. */
  loaded: LoadedConfig;
  reloadConfig(): Promise<LoadedConfig>;
  buildEdges(config: Config): ReconcilerEdges;
  notifier: Notifier;
  logger: Logger;
  ipForward: IpForwardControl;
  writeSnapshot(snapshot: StatusSnapshot): Promise<void>;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
  signals: Pick<NodeJS.Process, 'on' | 'off'>;
  /** Counts passes and connections, writes metrics.textfile. */
  metrics?: MetricsRecorder;
  /** HA pair (config `ha`): the lease beat runs beside the loop; SIGUSR2 hands the lease over. */
  ha?: HaNode;
  /** Connection audit (config `audit`): builds it for a config that enables it. */
  audit?: (config: Config) => AuditControl;
}

export async function runDaemon(deps: DaemonDeps): Promise<number> {
  const { logger, notifier } = deps;
  let config = deps.loaded.config;
  const { ha } = deps;
  let audit = config.audit?.enabled ? deps.audit?.(config) : undefined;
  audit?.start();
  const withHa = (built: ReconcilerEdges): ReconcilerEdges => (ha ? { ...built, ha } : built);
  // The audit hears of every flow flush, so a flow cachenat deleted says why it ended.
  const withAudit = (built: ReconcilerEdges): ReconcilerEdges => (audit ? { ...built, conntrack: auditedConntrack(built.conntrack, audit) } : built);
  let edges = withAudit(withHa(deps.buildEdges(config)));
  const reconciler = new Reconciler(config, edges);
  const startedAt = new Date(edges.clock.now()).toISOString();

  // Signals only change the schedule's state and cut the current sleep short.
  let loop = initialLoopState();
  let wake = new AbortController();
  const onStop = (signal: string) => () => {
    if (!loop.stopRequested) logger.info({ signal }, 'stopping after the current pass; forwards stay installed');
    loop = requestStop(loop);
    wake.abort();
  };
  const onTerm = onStop('SIGTERM');
  const onInt = onStop('SIGINT');
  const onHup = () => {
    loop = requestReload(loop);
    wake.abort();
  };
  // `cachenat ha handover`: give the lease to the standby without stopping.
  const onUsr2 = () => {
    if (!ha) return;
    void ha.release('cachenat ha handover').catch((err: Error) => logger.error({ err: err.message }, 'ha: handover failed'));
  };
  deps.signals.on('SIGTERM', onTerm);
  deps.signals.on('SIGINT', onInt);
  deps.signals.on('SIGHUP', onHup);
  deps.signals.on('SIGUSR2', onUsr2);

  // The lease beat runs beside the passes; a change of role runs a pass at once (claim the map, or follow it).
  const haStop = new AbortController();
  let lastSnapshot: StatusSnapshot | undefined;
  let haLoop: Promise<void> | undefined;
  if (ha) {
    ha.onChange = (roleChanged) => {
      if (roleChanged) {
        loop = requestPass(loop);
        wake.abort();
      }
      if (lastSnapshot) void deps.writeSnapshot({ ...lastSnapshot, ha: ha.status() }).catch(() => {});
    };
    haLoop = ha.run(haStop.signal);
  }

  for (const warning of deps.loaded.warnings) logger.warn(warning);
  for (const note of deps.loaded.notes ?? []) logger.info(note);
  logger.info(
    { version: BUILD_INFO.version, node: BUILD_INFO.node, forwardsFrom: config.aws.endpoint ?? `ElastiCache ${config.aws.region}`, inboundInterface: config.forward.inboundInterface, interval: config.discovery.interval, dnsInterval: config.dns.interval },
    `cachenat ${BUILD_INFO.version} starting`,
  );

  const settings = (): ScheduleSettings => ({
    discoveryIntervalMs: config.discovery.interval,
    dnsIntervalMs: config.dns.interval,
    watchdogIntervalMs: notifier.watchdogIntervalMs,
  });
  let ready = false;
  let passes = 0;
  let ipForward: 0 | 1 | undefined;
  let lastReport: PassReport | undefined;

  try {
    for (;;) {
      const step = nextStep(loop, edges.clock.now());
      if (step.kind === 'stop') break;
      if (step.kind === 'reload') {
        const reloaded = await reload(deps, logger);
        if (reloaded && ha && haSettingsOf(reloaded) !== haSettingsOf(config)) {
          logger.warn('ha: the ha section and forward.listenAddresses as the pair sees them take effect at the next restart (systemctl restart cachenat hands the lease over first)');
        }
        if (reloaded && ha) ha.fingerprint = configFingerprint(reloaded);
        if (reloaded) {
          config = reloaded;
          audit = await reconfigureAudit(audit, config, deps);
          edges = withAudit(withHa(deps.buildEdges(config)));
          reconciler.reconfigure(config, edges);
        } else {
          await audit?.reopen(); // logrotate's SIGHUP: the file moved away even if the config is refused
        }
        loop = afterReload(loop, reloaded !== undefined);
        continue;
      }
      if (step.kind === 'sleep') {
        wake = new AbortController();
        await deps.sleep(step.ms, wake.signal);
        continue;
      }

      const passStartedAt = edges.clock.now();
      ipForward = await deps.ipForward.ensure(config.ipForward).catch((err: Error) => {
        logger.error({ err: err.message }, 'cannot read or set net.ipv4.ip_forward; forwarding needs it set to 1');
        return undefined;
      });
      let passError: string | undefined;
      const report = await reconciler.pass({ discover: step.discover, write: true }).catch((err: Error) => {
        passError = err.message;
        logger.error({ err: err.message }, 'reconcile pass failed; retrying next interval with a full resync');
        return undefined;
      });
      passes++;
      const outcome: PassOutcome = report
        ? { kind: 'completed', discovery: report.discovery.status, kernelOk: !report.kernelError }
        : { kind: 'threw', discovered: step.discover };
      // Read after the pass's awaits, so a signal that arrived during the pass is kept.
      const next = afterPass(loop, outcome, { startedAt: passStartedAt, now: edges.clock.now() }, settings(), deps.random);
      loop = next.state;
      if (report) {
        lastReport = report;
        if (report.discovery.status === 'failed') {
          const e = report.discovery.error;
          const failures = loop.apiFailures;
          logger[failures === 1 ? 'error' : 'warn'](
            { code: e.code, failures, retryInMs: next.apiRetryInMs },
            `ElastiCache API call failed: ${e.message}. Keeping all ${reconciler.forwardsKnown} forwards as they are (fail-static)${e.retryable ? '' : '; check the instance role and aws.region'}`,
          );
        }
        logPass(logger, report);
      }
      const snapshot = snapshotOf(config, reconciler, report ?? lastReport, { passes, startedAt, ipForward, now: edges.clock.now(), passOk: report !== undefined && !report.kernelError, passError });
      if (ha) snapshot.ha = ha.status();
      if (audit) {
        await audit.afterPass((report ?? lastReport)?.plan.forwards ?? [], config.forward.allowedSources);
        snapshot.audit = audit.status();
      }
      const connections = await deps.metrics?.afterPass({ config, report, latest: lastReport, lastSyncAt: reconciler.lastSyncAt, ha: snapshot.ha, audit: audit?.families() });
      if (connections) snapshot.connections = connections;
      lastSnapshot = snapshot;
      await deps.writeSnapshot(snapshot).catch((err: Error) => logger.warn({ err: err.message, path: config.state.statusFile }, 'cannot write the status snapshot; `cachenat health` for unprivileged users will be stale'));

      const statusLine = statusText(snapshot);
      if (!ready && next.feedWatchdog) {
        ready = true;
        notifier.ready(statusLine);
        logger.info({ forwards: snapshot.forwards.length }, snapshot.degraded ? `ready (degraded: ${snapshot.degradedReason})` : 'ready');
      } else {
        notifier.status(statusLine);
      }
      if (next.feedWatchdog) notifier.watchdog();
    }
  } finally {
    deps.signals.off('SIGTERM', onTerm);
    deps.signals.off('SIGINT', onInt);
    deps.signals.off('SIGHUP', onHup);
    deps.signals.off('SIGUSR2', onUsr2);
    haStop.abort();
    await haLoop;
    await audit?.stop();
  }
  if (ha) {
    // A planned stop hands the lease over at once; forwards stay installed (the standby has the same).
    await ha.release('stopping').catch((err: Error) => logger.error({ err: err.message }, 'ha: could not release the lease'));
    await ha.stopped();
    ha.close();
  }
  notifier.stopping();
  await notifier.flush?.(); // STOPPING=1 must reach systemd before the process exits
  logger.info('stopped; forwards left in place');
  return 0;
}

async function reload(deps: DaemonDeps, logger: Logger): Promise<Config | undefined> {
  try {
    const loaded = await deps.reloadConfig();
    for (const warning of loaded.warnings) logger.warn(warning);
    for (const note of loaded.notes ?? []) logger.info(note);
    logger.info('configuration reloaded');
    return loaded.config;
  } catch (err) {
    const detail = err instanceof ConfigError ? err.message : String(err);
    logger.error(`reload refused, keeping the running configuration: ${detail}`);
    return undefined;
  }
}

/** The audit after a reload: started, stopped, or told of the new config (which also reopens its file). */
async function reconfigureAudit(audit: AuditControl | undefined, config: Config, deps: DaemonDeps): Promise<AuditControl | undefined> {
  if (!config.audit?.enabled) {
    await audit?.stop();
    if (audit) deps.logger.info('audit: off (audit.enabled is false or the section is gone)');
    return undefined;
  }
  if (audit) {
    await audit.reconfigure(config);
    return audit;
  }
  const started = deps.audit?.(config);
  started?.start();
  return started;
}

/** What the HA node was built from: a reload that changes it needs a restart. */
const haSettingsOf = (config: Config): string => JSON.stringify([config.ha, config.forward.listenAddresses]);

function logPass(logger: Logger, report: PassReport): void {
  const counts: Record<string, number> = {};
  for (const e of report.plan.events) counts[e.type] = (counts[e.type] ?? 0) + 1;
  if (report.kernelError) {
    logger.error({ err: report.kernelError.message }, 'writing the rules failed; the kernel keeps its previous rules, next pass resyncs in full');
    return;
  }
  if (!report.applied && Object.keys(counts).length === 0) return;
  const c = report.plan.changes;
  logger.info(
    {
      forwards: report.plan.forwards.length,
      ...counts,
      chainsWritten: c.chainsWritten,
      jumpsRestored: c.jumpsAdded.length || undefined,
      ms: Math.round(report.durationMs * 10) / 10,
    },
    report.applied ? 'rules updated' : 'state updated',
  );
}

function snapshotOf(
  config: Config,
  reconciler: Reconciler,
  report: PassReport | undefined,
  meta: { passes: number; startedAt: string; ipForward: 0 | 1 | undefined; now: number; passOk: boolean; passError?: string | undefined },
): StatusSnapshot {
  const forwards: Forward[] = report?.plan.forwards ?? [];
  const syncError = reconciler.lastSyncError;
  // A pass that threw (e.g. iptables-save missing) left no report of its own: say so rather than show the last good one.
  const kernelError = meta.passError ?? report?.kernelError?.message;
  const degradedReason = syncError ? `ElastiCache API: ${syncError.message}` : kernelError ? `kernel: ${kernelError}` : undefined;
  const snapshot: StatusSnapshot = {
    version: 1,
    cachenatVersion: BUILD_INFO.version,
    pid: process.pid,
    startedAt: meta.startedAt,
    lastPassAt: new Date(meta.now).toISOString(),
    passes: meta.passes,
    lastPassOk: meta.passOk,
    discoveryIntervalMs: config.discovery.interval,
    dnsIntervalMs: config.dns.interval,
    syncWarnIntervals: config.health.syncWarnIntervals,
    syncCriticalIntervals: config.health.syncCriticalIntervals,
    degraded: degradedReason !== undefined,
    inboundInterface: config.forward.inboundInterface,
    forwards,
  };
  if (reconciler.lastSyncAt !== undefined) snapshot.lastSyncAt = new Date(reconciler.lastSyncAt).toISOString();
  if (syncError) snapshot.lastSyncError = `${syncError.code}: ${syncError.message}`;
  if (degradedReason) snapshot.degradedReason = degradedReason;
  if (meta.ipForward !== undefined) snapshot.ipForward = meta.ipForward;
  if (kernelError) snapshot.lastKernelError = kernelError;
  if (report) snapshot.rulesDigest = report.plan.rulesDigest;
  if (report && report.plan.withoutPort.length > 0) snapshot.withoutPort = report.plan.withoutPort;
  if (reconciler.diskErrors.size > 0) snapshot.diskErrors = [...reconciler.diskErrors.values()];
  if (reconciler.warnings.size > 0) snapshot.warnings = [...reconciler.warnings.values()];
  return snapshot;
}

function statusText(s: StatusSnapshot): string {
  const active = s.forwards.filter((f) => f.state === 'active').length;
  const base = `${s.forwards.length} forwards (${active} active)`;
  const sync = s.lastSyncAt ? `last sync ${s.lastSyncAt}` : 'no API sync yet';
  return s.degraded ? `degraded: ${s.degradedReason} — ${base}, ${sync}` : `${base}, ${sync}`;
}
