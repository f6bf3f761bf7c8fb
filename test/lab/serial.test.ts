// The machine-wide lab lock: a second process waits while the first holds
// it, gets it once released, and a holder that dies without releasing
// (SIGKILL) frees it too. Uses its own lock file, so real labs are not held up.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { compiledLabFile } from '../../lab/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'cachenat-lab-lock-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { CACHENAT_LAB_LOCK: join(dir, 'lab.lock'), NODE_OPTIONS: '' };

/** A process that takes the lock, says "held", and keeps it until its stdin closes ("release" releases first). */
function holder(): { child: ResultPromise; held: Promise<void> } {
  const script = `
    const { acquireLabSlot } = await import(process.argv[1]);
    const release = await acquireLabSlot();
    console.log('held');
    process.stdin.on('data', (d) => { if (String(d).includes('release')) { release(); console.log('released'); } });
    process.stdin.resume();`;
  const child = execa(process.execPath, ['--input-type=module', '-e', script, compiledLabFile('serial.js')], { env, stdin: 'pipe', reject: false, buffer: false });
  const held = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => String(d).includes('held') && resolve());
    void child.then((r) => reject(new Error(`holder exited (${r.exitCode}) before holding the lock: ${String(r.stderr)}`)));
  });
  return { child, held };
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'still waiting'> =>
  Promise.race([p, new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), ms))]);

t.test('one holder at a time; release and death both free the lock', async (t) => {
  const first = holder();
  await first.held;
  const second = holder();
  // Not a timing bound on the code under test: the lock must still be held after 1.5 s of the first doing nothing.
  t.equal(await within(second.held, 1500), 'still waiting', 'a second process waits while the first holds the lock');
  first.child.stdin!.write('release\n');
  // 30 s only bounds a hang: taking a free lock is a process start (slower under load).
  t.not(await within(second.held, 30_000), 'still waiting', 'the second got it once the first released it');
  const third = holder();
  t.equal(await within(third.held, 1500), 'still waiting', 'a third waits for the second');
  second.child.kill('SIGKILL');
  t.not(await within(third.held, 30_000), 'still waiting', 'the third got it once the second was killed without releasing');
  for (const p of [first, third]) p.child.kill('SIGKILL');
  await Promise.all([first.child, second.child, third.child]);
});
