// One lab at a time on this machine. A lab runs a dozen processes (servers,
// the fake API, the daemon, a node process per probe); two of them on two
// cores starve each other until timers fire seconds late and a 4 s grace
// period is over before a test can look at it. tap may run test files in
// parallel: unit files still do, and lab files queue here.
//
// The lock is flock(2) on a file, held by a `flock … cat` child whose stdin
// is our pipe: when this process ends, however it ends, the pipe closes, cat
// exits and the kernel drops the lock. No stale lock file is ever left.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Override with CACHENAT_LAB_LOCK (e.g. to give a second checkout its own queue). */
export const LAB_LOCK_FILE = process.env.CACHENAT_LAB_LOCK ?? '/tmp/cachenat-lab.lock';

let holder: { child: ChildProcess; held: Promise<void>; users: number } | undefined;

/**
 * Waits until this process holds the machine's lab lock. Labs of the same
 * process share it; the lock goes when the last one calls the returned release.
 */
export async function acquireLabSlot(): Promise<() => void> {
  if (holder === undefined) {
    const child = spawn('flock', ['--exclusive', LAB_LOCK_FILE, 'cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const started = Date.now();
    const announced = setTimeout(() => process.stderr.write(`lab: waiting for another lab on this machine to finish (lock ${LAB_LOCK_FILE})\n`), 2_000);
    // cat starts only once flock holds the lock: the echo of our line is the proof.
    const echoed = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', () => resolve());
      child.once('error', (err) => reject(new Error(`lab: cannot run flock to serialise labs (${err.message}); apt-get install -y util-linux`)));
      child.once('exit', (code) => reject(new Error(`lab: flock ${LAB_LOCK_FILE} exited (${code}) before taking the lock`)));
    });
    child.stdin!.write('held\n');
    const held = echoed.finally(() => {
      clearTimeout(announced);
      // Held: the lock must not keep this process alive once its work is done.
      child.unref();
      for (const pipe of [child.stdin, child.stdout] as unknown as { unref?: () => void }[]) pipe.unref?.();
      const waited = Date.now() - started;
      if (waited >= 2_000) process.stderr.write(`lab: took the lab lock after ${Math.round(waited / 1000)} s\n`);
    });
    holder = { child, held, users: 0 };
  }
  const mine = holder;
  mine.users++;
  try {
    await mine.held;
  } catch (err) {
    if (holder === mine) holder = undefined;
    throw err;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    mine.users--;
    if (mine.users > 0 || holder !== mine) return;
    holder = undefined;
    mine.child.stdin!.end(); // cat sees EOF and exits; flock lets go
    mine.child.stdout!.resume();
  };
}
