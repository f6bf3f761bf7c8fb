import { loadConfigFile } from '../../config/load.js';
import { acquireLock } from '../../daemon/lock.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { writeSnapshotFile } from '../../daemon/snapshot-file.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { checkHostFor, configPathOf } from './shared.js';

export async function runCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = configPathOf(options, io);
  const loaded = checkHostFor(await loadConfigFile(path), path, io); // a bad config exits 78 before anything is touched
  const logger = io.logger(loaded.config.log.level, 'stdout');
  const machine = await io.machine();
  const release = await acquireLock(loaded.config.state.dir).catch((err: NodeJS.ErrnoException) => {
    // A full or read-only state.dir must not stop the daemon from following the topology: run without the
    // lock (systemd runs one instance; `apply` and `flush` still need it and will refuse) and say so.
    if (!['EROFS', 'ENOSPC', 'EDQUOT'].includes(err.code ?? '')) throw err;
    logger.error({ err: err.message, dir: loaded.config.state.dir }, 'cannot take the lock in state.dir; running without it. Ports stay in memory and are rebuilt from the installed rules on restart: free space on, or remount read-write, state.dir');
    return async () => undefined;
  });
  // Rules in the other iptables backend run too, unseen by cachenat: say so once at start.
  const backend = await machine.detectBackend().catch(() => undefined);
  if (backend?.warning) logger.warn({ backend: backend.backend }, backend.warning);
  let statusFile = loaded.config.state.statusFile;
  try {
    return await runDaemon({
      loaded,
      reloadConfig: async () => {
        const next = checkHostFor(await loadConfigFile(path), path, io);
        statusFile = next.config.state.statusFile;
        return next;
      },
      // One factory for the daemon's life: a reload reuses the SDK client, or destroys it when aws.* changed.
      buildEdges: machine.edgeFactory(logger),
      notifier: machine.notifier(logger),
      logger,
      ipForward: machine.ipForward(logger),
      writeSnapshot: (snapshot) => writeSnapshotFile(statusFile, snapshot),
      ...machine.daemon,
      metrics: machine.metrics(logger),
      ...(loaded.config.ha ? { ha: machine.haNode(loaded.config, logger) } : {}),
      ...(machine.audit ? { audit: machine.audit(logger) } : {}),
    });
  } finally {
    await release();
  }
}
