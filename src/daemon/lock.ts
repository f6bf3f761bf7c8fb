// One writer at a time: the daemon, `apply` and `flush` take a lock file next
// to state.statusFile, in /run/cachenat by default (RuntimeDirectory=), which
// a reboot clears. The file names its owner by pid, boot and the process's
// start time, so a pid reused by another process (after a kill -9, or on a
// state dir that outlived an unclean reboot) never passes for the owner.

import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LOCK_FILE } from '../core/config/validate.js';
import { isProcessAlive } from '../util/process-alive.js';

export class LockHeldError extends Error {
  constructor(readonly pid: number, path: string) {
    super(`another cachenat process (pid ${pid}) holds ${path}; when the daemon runs it applies changes itself: use "cachenat status", or stop it first`);
    this.name = 'LockHeldError';
  }
}

/** Where the lock lives: beside the status snapshot (state.statusFile). */
export const lockPathFor = (statusFile: string): string => join(dirname(statusFile), LOCK_FILE);

/** Who a process is, beyond its pid: this boot, and when the process started. */
export interface ProcessIdentity {
  /** /proc/sys/kernel/random/boot_id: a new one every boot. */
  bootId(): Promise<string | undefined>;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), or undefined when there is no such process. */
  startTime(pid: number): Promise<string | undefined>;
  isAlive(pid: number): boolean;
}

const readTrimmed = (path: string): Promise<string | undefined> => readFile(path, 'utf8').then((t) => t.trim(), () => undefined);

export const procIdentity: ProcessIdentity = {
  bootId: () => readTrimmed('/proc/sys/kernel/random/boot_id'),
  startTime: async (pid) => {
    const stat = await readTrimmed(`/proc/${pid}/stat`);
    // The name in parentheses may hold spaces: count fields after the last ")" (field 3 is the first).
    return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  },
  isAlive: isProcessAlive,
};

/** The owner line: "pid boot-id start-time". */
const ownerLine = async (identity: ProcessIdentity): Promise<string> =>
  [process.pid, (await identity.bootId()) ?? '-', (await identity.startTime(process.pid)) ?? '-'].join(' ');

/**
 * Whether the owner a lock file names is alive: same boot, the pid alive, and
 * the same start time. A lock written before this format (a bare pid) is
 * judged by the pid alone.
 */
async function ownerAlive(text: string, identity: ProcessIdentity): Promise<number | undefined> {
  const [pidText, boot, started] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !identity.isAlive(pid)) return undefined;
  if (boot !== undefined && boot !== '-' && boot !== (await identity.bootId())) return undefined;
  if (started !== undefined && started !== '-' && started !== (await identity.startTime(pid))) return undefined;
  return pid;
}

export async function acquireLock(path: string, identity: ProcessIdentity = procIdentity): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const owner = await ownerLine(identity);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(path, 'wx', 0o644);
      try {
        await file.writeFile(`${owner}\n`);
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
      const holder = await ownerAlive(await readFile(path, 'utf8').catch(() => ''), identity);
      if (holder !== undefined) throw new LockHeldError(holder, path);
      await rm(path, { force: true }); // stale: its owner is gone (kill -9, reboot) or its pid now belongs to another process
    }
  }
  throw new Error(`cannot take the lock ${path}`);
}
