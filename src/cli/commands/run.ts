import { setTimeout as delay } from 'node:timers/promises';
import { configPathFrom, loadConfigFile } from '../../config/load.js';
import { acquireLock } from '../../daemon/lock.js';
import { createNotifier } from '../../daemon/notify.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { writeSnapshotFile } from '../../daemon/snapshot-file.js';
import { createLogger } from '../../log/logger.js';
import { detectBackend } from '../../netfilter/backend.js';
import { buildEdges, ipForwardControl } from '../edges.js';
import type { CommandOptions } from './index.js';
import { MetricsRecorder, hostMetricsEdges } from '../../metrics/recorder.js';

export async function runCommand(options: CommandOptions): Promise<number> {
  const path = configPathFrom(options.configFlag, process.env);
  const loaded = await loadConfigFile(path); // a bad config exits 78 before anything is touched
  const logger = createLogger({ level: loaded.config.log.level });
  const release = await acquireLock(loaded.config.state.dir).catch((err: NodeJS.ErrnoException) => {
    // A full or read-only state.dir must not stop the daemon from following the topology: run without the
    // lock (systemd runs one instance; `apply` and `flush` still need it and will refuse) and say so.
    if (!['EROFS', 'ENOSPC', 'EDQUOT'].includes(err.code ?? '')) throw err;
    logger.error({ err: err.message, dir: loaded.config.state.dir }, 'cannot take the lock in state.dir; running without it. Ports stay in memory and are rebuilt from the installed rules on restart: free space on, or remount read-write, state.dir');
    return async () => undefined;
  });
  // Rules in the other iptables backend run too, unseen by cachenat: say so once at start.
  const backend = await detectBackend().catch(() => undefined);
  if (backend?.warning) logger.warn({ backend: backend.backend }, backend.warning);
  let statusFile = loaded.config.state.statusFile;
  try {
    return await runDaemon({
      loaded,
      reloadConfig: async () => {
        const next = await loadConfigFile(path);
        statusFile = next.config.state.statusFile;
        return next;
      },
      buildEdges: (config) => buildEdges(config, logger),
      notifier: createNotifier(process.env, undefined, {
        onError: (err) => logger.warn({ err: String(err) }, 'systemd-notify failed: systemd may not see READY or the watchdog; is NotifyAccess=all set in the unit?'),
      }),
      logger,
      ipForward: ipForwardControl(logger),
      writeSnapshot: (snapshot) => writeSnapshotFile(statusFile, snapshot),
      sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
      random: Math.random,
      signals: process,
      metrics: new MetricsRecorder(hostMetricsEdges(logger)),
    });
  } finally {
    await release();
  }
}
