// One writer at a time: the daemon, `apply` and `flush` take a pid lock in
// state.dir. A lock left by a dead process is taken over.

import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../util/process-alive.js';

export class LockHeldError extends Error {
  constructor(readonly pid: number, path: string) {
    super(`another cachenat process (pid ${pid}) holds ${path}; when the daemon runs it applies changes itself: use "cachenat status", or stop it first`);
    this.name = 'LockHeldError';
  }
}

export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, 'lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(path, 'wx', 0o644);
      try {
        await file.writeFile(`${process.pid}\n`);
      } catch (err) {
        // A full disk lets the file be created but not written: leave no empty lock behind.
        await file.close().catch(() => undefined);
        await rm(path, { force: true }).catch(() => undefined);
        throw err;
      }
      await file.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) throw new LockHeldError(pid, path);
      await rm(path, { force: true }); // stale: its owner is gone (kill -9, reboot)
    }
  }
  throw new Error(`cannot take the lock ${path}`);
}
