// `cachenat run`: the reconcile loop. Passes never overlap (a while loop with
// an abortable sleep, not setInterval); SIGTERM lets the current pass finish
// and leaves every rule in place; SIGHUP re-reads the config.

import type { Config } from '../core/config/schema.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import type { Forward } from '../core/model.js';
import { discoveryRetryDelay } from '../core/daemon/backoff.js';
import type { Notifier } from './notify.js';
import { Reconciler, type PassReport, type ReconcilerEdges } from './reconciler.js';
import type { StatusSnapshot } from '../core/daemon/status-snapshot.js';

const TIMER_SLACK_MS = 50;

export interface IpForwardControl {
  /** Checks (and in `enable` mode sets) ip_forward; returns the value now in force. */
  ensure(mode: Config['ipForward']): Promise<0 | 1 | undefined>;
}

export interface DaemonDeps {
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
}

export async function runDaemon(deps: DaemonDeps): Promise<number> {
  const { logger, notifier } = deps;
  let config = deps.loaded.config;
  let edges = deps.buildEdges(config);
  const reconciler = new Reconciler(config, edges);
  const startedAt = new Date(edges.clock.now()).toISOString();

  let stopping = false;
  let wake = new AbortController();
  let reloadRequested = false;
  const onStop = (signal: string) => () => {
    if (!stopping) logger.info({ signal }, 'stopping after the current pass; forwards stay installed');
    stopping = true;
    wake.abort();
  };
  const onTerm = onStop('SIGTERM');
  const onInt = onStop('SIGINT');
  const onHup = () => {
    reloadRequested = true;
    wake.abort();
  };
  deps.signals.on('SIGTERM', onTerm);
  deps.signals.on('SIGINT', onInt);
  deps.signals.on('SIGHUP', onHup);

  for (const warning of deps.loaded.warnings) logger.warn(warning);
  logger.info({ forwardsFrom: config.aws.endpoint ?? `ElastiCache ${config.aws.region}`, interval: config.discovery.interval, dnsInterval: config.dns.interval }, 'cachenat starting');

  let nextDiscoveryAt = 0;
  let failures = 0;
  let passFailures = 0;
  let ready = false;
  let passes = 0;
  let ipForward: 0 | 1 | undefined;
  let lastReport: PassReport | undefined;

  try {
    while (!stopping) {
      if (reloadRequested) {
        reloadRequested = false;
        const reloaded = await reload(deps, logger);
        if (reloaded) {
          config = reloaded;
          edges = deps.buildEdges(config);
          reconciler.reconfigure(config, edges);
          nextDiscoveryAt = 0;
        }
      }
      // Passes run on a steady beat of dns.interval measured from each pass's
      // start; the API is asked on the first beat at or after its interval is
      // up (a timer may wake a hair early, hence the slack).
      const now = edges.clock.now();
      const discover = now >= nextDiscoveryAt - TIMER_SLACK_MS;
      ipForward = await deps.ipForward.ensure(config.ipForward).catch((err: Error) => {
        logger.error({ err: err.message }, 'cannot read or set net.ipv4.ip_forward; forwarding needs it set to 1');
        return undefined;
      });
      let passError: string | undefined;
      const report = await reconciler.pass({ discover, write: true }).catch((err: Error) => {
        passError = err.message;
        logger.error({ err: err.message }, 'reconcile pass failed; retrying next interval with a full resync');
        return undefined;
      });
      passes++;
      if (report) {
        passFailures = 0;
        lastReport = report;
        if (report.discovery.status === 'ok') {
          failures = 0;
          nextDiscoveryAt = now + config.discovery.interval;
        } else if (report.discovery.status === 'failed') {
          failures++;
          const delay = discoveryRetryDelay(failures, config.discovery.interval, deps.random());
          nextDiscoveryAt = edges.clock.now() + delay;
          const e = report.discovery.error;
          logger[failures === 1 ? 'error' : 'warn'](
            { code: e.code, failures, retryInMs: delay },
            `ElastiCache API call failed: ${e.message}. Keeping all ${reconciler.forwardsKnown} forwards as they are (fail-static)${e.retryable ? '' : '; check the instance role and aws.region'}`,
          );
        }
        logPass(logger, report);
      } else {
        passFailures++;
        // A pass that threw must not spin: the API is asked at most once per interval whatever failed after it.
        if (discover) nextDiscoveryAt = edges.clock.now() + config.discovery.interval;
      }
      const snapshot = snapshotOf(config, reconciler, report ?? lastReport, { passes, startedAt, ipForward, now: edges.clock.now(), passOk: report !== undefined && !report.kernelError, passError });
      await deps.writeSnapshot(snapshot).catch((err: Error) => logger.warn({ err: err.message, path: config.state.statusFile }, 'cannot write the status snapshot; `cachenat health` for unprivileged users will be stale'));

      const statusLine = statusText(snapshot);
      const progressed = report !== undefined && !report.kernelError;
      if (!ready && progressed) {
        ready = true;
        notifier.ready(statusLine);
        logger.info({ forwards: snapshot.forwards.length }, snapshot.degraded ? `ready (degraded: ${snapshot.degradedReason})` : 'ready');
      } else {
        notifier.status(statusLine);
      }
      // The watchdog is fed only by passes that really completed.
      if (progressed) notifier.watchdog();

      if (stopping) break;
      const tick = Math.min(config.dns.interval, notifier.watchdogIntervalMs ?? Infinity);
      wake = new AbortController();
      // After failed passes, wait longer each time (with jitter) instead of retrying in a tight loop.
      const wait = passFailures > 0 ? discoveryRetryDelay(passFailures, tick, deps.random()) : Math.max(0, now + tick - edges.clock.now());
      if (!stopping && !reloadRequested) await deps.sleep(wait, wake.signal);
    }
  } finally {
    deps.signals.off('SIGTERM', onTerm);
    deps.signals.off('SIGINT', onInt);
    deps.signals.off('SIGHUP', onHup);
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
    logger.info('configuration reloaded');
    return loaded.config;
  } catch (err) {
    const detail = err instanceof ConfigError ? err.message : String(err);
    logger.error(`reload refused, keeping the running configuration: ${detail}`);
    return undefined;
  }
}

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
    forwards,
  };
  if (reconciler.lastSyncAt !== undefined) snapshot.lastSyncAt = new Date(reconciler.lastSyncAt).toISOString();
  if (syncError) snapshot.lastSyncError = `${syncError.code}: ${syncError.message}`;
  if (degradedReason) snapshot.degradedReason = degradedReason;
  if (meta.ipForward !== undefined) snapshot.ipForward = meta.ipForward;
  if (kernelError) snapshot.lastKernelError = kernelError;
  if (report) snapshot.rulesDigest = report.plan.rulesDigest;
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
