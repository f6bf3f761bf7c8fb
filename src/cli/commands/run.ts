import { setTimeout as delay } from 'node:timers/promises';
import { configPathFrom, loadConfigFile } from '../../config/load.js';
import { acquireLock } from '../../daemon/lock.js';
import { createNotifier } from '../../daemon/notify.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { writeSnapshotFile } from '../../daemon/snapshot-file.js';
import { createLogger } from '../../log/logger.js';
import { buildEdges, ipForwardControl } from '../edges.js';
import type { CommandOptions } from './index.js';

export async function runCommand(options: CommandOptions): Promise<number> {
  const path = configPathFrom(options.configFlag, process.env);
  const loaded = await loadConfigFile(path); // a bad config exits 78 before anything is touched
  const logger = createLogger({ level: loaded.config.log.level });
  const release = await acquireLock(loaded.config.state.dir);
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
      notifier: createNotifier(),
      logger,
      ipForward: ipForwardControl(logger),
      writeSnapshot: (snapshot) => writeSnapshotFile(statusFile, snapshot),
      sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
      random: Math.random,
      signals: process,
    });
  } finally {
    await release();
  }
}
