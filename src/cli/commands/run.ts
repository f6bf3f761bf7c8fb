// `cachenat run`: the daemon, in the foreground.

import { loadConfigFile } from '../../config/load.js';
import { acquireLock, lockPathFor } from '../../daemon/lock.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { writeSnapshotFile } from '../../daemon/snapshot-file.js';
import type { CliIo } from '../io.js';
import type { CommandModule, CommandOptions } from '../command.js';
import { checkHostFor, configPathOf } from './shared.js';

export const command: CommandModule = {
  flags: [],
  details: `Runs the reconcile loop until SIGTERM or SIGINT, which stop it after the current pass and leave the
rules in place. systemd starts it (Type=notify: READY=1 after the first pass, WATCHDOG=1 after each).
SIGHUP re-reads the config: an invalid one is logged and the running one kept. With an ha section,
SIGUSR2 hands the lease to the standby without stopping.

Exit codes: 0 stopped by a signal, 1 could not start (lock held, kernel unusable), 78 bad config
(or a config this host cannot serve, such as a missing forward.inboundInterface).`,
  run: runCommand,
};

async function runCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = configPathOf(options, io);
  const loaded = await checkHostFor(await loadConfigFile(path), path, io); // a bad config exits 78 before anything is touched
  const logger = io.logger(loaded.config.log.level, 'stdout');
  const machine = await io.machine();
  const lockPath = lockPathFor(loaded.config.state.statusFile);
  const release = await acquireLock(lockPath).catch((err: NodeJS.ErrnoException) => {
    // A full or read-only file system must not stop the daemon from following the topology: run without the
    // lock (systemd runs one instance; `apply` and `flush` still need it and will refuse) and say so.
    if (!['EROFS', 'ENOSPC', 'EDQUOT'].includes(err.code ?? '')) throw err;
    logger.error({ err: err.message, path: lockPath }, 'cannot take the lock next to state.statusFile; running without it: free space on, or remount read-write, its directory');
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
        const next = await checkHostFor(await loadConfigFile(path), path, io);
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
      ...(loaded.config.ha ? { ha: await machine.haNode(loaded.config, logger) } : {}),
      ...(machine.audit ? { audit: machine.audit(logger) } : {}),
    });
  } finally {
    await release();
  }
}
