// The lock: taken and released; held against a second taker while its owner
// lives; taken over when the file names a process that is gone, a pid from
// another boot (pid 1 included: an unclean reboot with a persistent lock), or
// a pid now owned by a process that started later (a reused pid).

import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { acquireLock, LockHeldError, lockPathFor, procIdentity, type ProcessIdentity } from '../../src/daemon/lock.js';
import { scratchDir } from '../support/scratch.js';

const path = () => join(scratchDir(t, 'lock'), 'run', 'cachenat.lock');

t.test('beside the status file', async (t) => {
  t.equal(lockPathFor('/run/cachenat/status.json'), '/run/cachenat/cachenat.lock');
});

t.test('taken, held against a second taker, released', async (t) => {
  const lock = path();
  const release = await acquireLock(lock);
  const [pid, boot, started] = readFileSync(lock, 'utf8').trim().split(' ');
  t.equal(Number(pid), process.pid);
  t.equal(boot, await procIdentity.bootId(), "this boot's id");
  t.equal(started, await procIdentity.startTime(process.pid), "this process's start time");
  // Another process holding it, as seen by a second taker: the same line under another live pid.
  const other: ProcessIdentity = { ...procIdentity, isAlive: () => true, startTime: async () => started };
  writeFileSync(lock, `1 ${boot} ${started}\n`);
  await t.rejects(acquireLock(lock, other), LockHeldError);
  await t.rejects(acquireLock(lock, other), { message: /another cachenat process \(pid 1\) holds .*cachenat\.lock/ });
  writeFileSync(lock, '1\n');
  await t.rejects(acquireLock(lock), LockHeldError, 'the old format (a bare pid) is judged by the pid alone: pid 1 lives');
  writeFileSync(lock, `${pid} ${boot} ${started}\n`);
  await release();
  t.notOk(existsSync(lock));
});

t.test('a stale lock is taken over: dead owner, another boot, a reused pid, an old bare pid, garbage', async (t) => {
  const boot = (await procIdentity.bootId())!;
  const pid1Start = (await procIdentity.startTime(1))!;
  const cases: [string, string][] = [
    ['a pid from before an unclean reboot, now pid 1', `1 00000000-0000-0000-0000-000000000000 ${pid1Start}`],
    ['a live pid that started after the lock was written', `1 ${boot} 1`],
    ['a dead pid', `2147483646 ${boot} 5`],
    ['the old format, a dead bare pid', '2147483646'],
    ['an empty file (a full disk)', ''],
    ['garbage', 'not a lock'],
  ];
  for (const [what, text] of cases) {
    const lock = path();
    mkdirSync(join(lock, '..'), { recursive: true });
    writeFileSync(lock, `${text}\n`);
    const release = await acquireLock(lock);
    t.equal(Number(readFileSync(lock, 'utf8').split(' ')[0]), process.pid, what);
    await release();
  }
});
