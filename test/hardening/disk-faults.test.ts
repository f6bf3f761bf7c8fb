// Disk faults against the real daemon: state.dir and the persisted rules file
// each on a tiny tmpfs that the test fills up (ENOSPC) or remounts read-only
// (EROFS), and state files that are truncated, garbage, empty or lying. The
// daemon keeps forwarding and following the topology, says what failed, and
// never reads back anything half-written.

import t from 'tap';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NAME, baseTopology, labConfig, portsOf, startRig, waitFor } from '../../lab/rig.js';
import { run } from '../../lab/netns.js';
import { parseSaveAll } from '../../src/core/netfilter/parse-save.js';
import { parseState } from '../../src/ports/state-store.js';
import { logLines, startDaemon, sleep } from './lab-daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab and tmpfs mounts' : false;

/** Fills a file system until it refuses another byte; returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

/** Temp files older than a second: a write in progress has one for a moment, a failed write must not keep it. */
const leftovers = (dir: string): string[] =>
  readdirSync(dir).filter((f) => {
    try {
      return f.endsWith('.tmp') && Date.now() - statSync(join(dir, f)).mtimeMs > 1000;
    } catch {
      return false; // gone meanwhile: it was a write in progress
    }
  });

t.test('disk faults', { skip }, async (t) => {
  process.env.NODE_OPTIONS = '';
  const rig = await startRig();
  const stateDir = join(rig.dir, 'state');
  const persistDir = join(rig.dir, 'persist');
  const mounts: string[] = [];
  t.teardown(async () => {
    for (const m of mounts.reverse()) await run('umount', ['-l', m], { reject: false });
    await rig.down();
  });
  for (const dir of [stateDir, persistDir]) {
    mkdirSync(dir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'cachenat-test', dir]);
    mounts.push(dir);
  }
  const remount = (dir: string, mode: 'ro' | 'rw') => run('mount', ['-o', `remount,${mode}`, dir]);
  const rulesFile = join(persistDir, 'rules.v4');
  const configPath = join(rig.dir, 'config-disk.yaml');
  writeFileSync(configPath, labConfig(rig.apiUrl, rig.dir).replace(`rulesFile: ${rig.dir}/rules.v4`, `rulesFile: ${rulesFile}`));
  const statePath = join(stateDir, 'ports.json');
  const readState = () => parseState(readFileSync(statePath, 'utf8'));
  const keysInState = () => {
    const s = readState();
    return s.status === 'ok' ? s.state.entries.map((e) => e.key) : [];
  };
  const withSessions2 = () => {
    const topology = baseTopology();
    topology.clusters.find((c) => c.id === 'sessions')!.nodes!.push({ id: '0002', address: NAME.sessions2, port: 6379 });
    return topology;
  };

  let daemon = await startDaemon(rig, { configPath });
  await waitFor('forwarding', async () => (await rig.probe('client', 6379)) === 'redis-11');
  await waitFor('rules persisted', () => existsSync(rulesFile));

  await t.test('state dir full (ENOSPC): keeps forwarding and following the API; the old file stays whole', async (t) => {
    const filled = fill(join(stateDir, 'filler'));
    // Read once the disk is full: from here on no save can complete, so the
    // file must stay byte for byte what it is now.
    const before = readFileSync(statePath, 'utf8');
    const mark = daemon.mark();
    await rig.setTopology(withSessions2());
    t.equal(await waitFor('new node forwarded', () => rig.probe('client', 6384)), 'redis-14', 'the new node is forwarded all the same');
    const errors = logLines(daemon, mark).filter((l) => /cannot save the port map/.test(l.msg));
    t.ok(errors.length > 0 && errors[0]!.level >= 50, `after filling ${filled} bytes: "${errors[0]?.msg}" (${errors[0]?.err})`);
    t.match(String(errors[0]?.err), /ENOSPC/);
    t.equal(readState().status, 'ok', 'the state file on disk is a complete one');
    t.notOk(keysInState().includes('node/sessions/0002'), 'the last one saved before the disk filled up');
    t.equal(readFileSync(statePath, 'utf8'), before, 'not a byte of it changed while the disk was full');
    t.same(leftovers(stateDir), [], 'no temp file left behind');
    rmSync(join(stateDir, 'filler'));
    t.equal(
      await waitFor('state saved once there is room', () => keysInState().includes('node/sessions/0002'), 5000),
      true,
      `${errors.length} failed saves logged while full, then saved once there was room`,
    );
  });

  await t.test('state dir read-only (EROFS): same', async (t) => {
    await remount(stateDir, 'ro');
    const mark = daemon.mark();
    await rig.setTopology(baseTopology()); // sessions/0002 starts draining: a state change that cannot be saved
    await waitFor('draining', async () => (await rig.status()).forwards.some((f) => f.key === 'node/sessions/0002' && f.state === 'draining'));
    await sleep(600);
    const errors = logLines(daemon, mark).filter((l) => /cannot save the port map/.test(l.msg));
    t.ok(errors.length > 0, `"${errors[0]?.msg}" (${errors[0]?.err})`);
    t.match(String(errors[0]?.err), /EROFS|read-only/);
    t.equal(await rig.probe('client', 6379), 'redis-11');
    t.equal(readState().status, 'ok', 'the file on disk still parses');
    t.ok(daemon.running);
    await remount(stateDir, 'rw');
    await waitFor('saved after remount', () => {
      const s = readState();
      // Draining, or already past its 4 s grace and quarantined: either way, the change reached the disk.
      const key = 'node/sessions/0002';
      return s.status === 'ok' && (s.state.entries.some((e) => e.key === key && e.goneSince !== undefined) || s.state.released.some((r) => r.key === key));
    }, 10_000);
  });

  await t.test('rules file unwritable (read-only, then full): kernel still updated, old copy intact', async (t) => {
    const before = readFileSync(rulesFile, 'utf8');
    await remount(persistDir, 'ro');
    const mark = daemon.mark();
    rig.lab.setHost(NAME.sessions1, '198.19.0.14'); // a rule change, so the ruleset is persisted again
    await waitFor('the move forwarded', async () => (await rig.probe('client', 6383)) === 'redis-14');
    await sleep(600);
    const errors = logLines(daemon, mark).filter((l) => /cannot save the ruleset for reboot/.test(l.msg));
    t.ok(errors.length > 0 && errors[0]!.level >= 50, `"${errors[0]?.msg}" (${errors[0]?.err})`);
    t.equal(readFileSync(rulesFile, 'utf8'), before, 'the persisted copy is the last complete one');
    t.ok(parseSaveAll(before).has('nat'), 'and it still parses as iptables-save output');
    await remount(persistDir, 'rw');
    fill(join(persistDir, 'filler'));
    rig.lab.setHost(NAME.sessions1, '198.19.0.12');
    await waitFor('the second move forwarded', async () => (await rig.probe('client', 6383)) === 'redis-12');
    await sleep(1000);
    t.equal(readFileSync(rulesFile, 'utf8'), before, 'full: still the last complete copy');
    t.same(leftovers(persistDir), [], 'no temp file left behind');
    rmSync(join(persistDir, 'filler'));
    // No rule changes from here on: the failed save alone must be retried.
    await waitFor('persisted again without a further change', () => readFileSync(rulesFile, 'utf8').includes('--to-destination 198.19.0.12:6379'), 10_000);
    t.ok(parseSaveAll(readFileSync(rulesFile, 'utf8')).has('nat'));
    rig.lab.setHost(NAME.sessions1, '198.19.0.13');
  });

  await t.test('corrupt state files: rebuilt from the kernel, same ports, file rewritten', async (t) => {
    await waitFor('sessions/0002 removed after its grace period', async () => !(await rig.status()).forwards.some((f) => f.key === 'node/sessions/0002'), 10_000);
    const ports = portsOf(await rig.status());
    const good = readFileSync(statePath, 'utf8');
    const parsed = JSON.parse(good) as { entries: { listenPort: number; key: string }[] };
    const variants: [string, string][] = [
      ['truncated in the middle', good.slice(0, Math.floor(good.length / 2))],
      ['random bytes', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) % 256)).toString('latin1')],
      ['empty', ''],
      ['two entries on one port', JSON.stringify({ ...parsed, entries: parsed.entries.map((e, i) => (i === 1 ? { ...e, listenPort: parsed.entries[0]!.listenPort } : e)) })],
      ['a hostile key', JSON.stringify({ ...parsed, entries: parsed.entries.map((e, i) => (i === 0 ? { ...e, key: 'node/x/1 -j ACCEPT' } : e)) })],
      ['another version', JSON.stringify({ ...parsed, version: 2 })],
    ];
    for (const [what, text] of variants) {
      daemon.kill('SIGKILL');
      await daemon.exited;
      writeFileSync(statePath, text);
      daemon = await startDaemon(rig, { configPath });
      const warning = logLines(daemon).find((l) => /port map is unreadable/.test(l.msg));
      t.ok(warning, `${what}: "${warning?.msg}" (${String(warning?.problem).slice(0, 80)})`);
      t.same(portsOf(await rig.status()), ports, `${what}: every port as before`);
      await waitFor(`${what}: rewritten`, () => readState().status === 'ok', 5000);
    }
    t.equal(statSync(statePath).mode & 0o777, 0o644);
  });

  await t.test('starting with the state dir full, then read-only: the lock (beside the status file) is taken as usual, the API followed', async (t) => {
    await daemon.stop(5000);
    const lock = join(rig.dir, 'run', 'cachenat.lock');
    for (const how of ['full', 'read-only'] as const) {
      if (how === 'full') fill(join(stateDir, 'filler'));
      else await remount(stateDir, 'ro');
      const before = new Set(readdirSync(stateDir));
      daemon = await startDaemon(rig, { configPath });
      t.notOk(logLines(daemon).some((l) => /cannot take the lock/.test(l.msg)), `${how}: the lock is not in state.dir`);
      t.ok(existsSync(lock), `${how}: the lock is held`);
      await rig.setTopology(how === 'full' ? withSessions2() : baseTopology());
      await waitFor(`${how}: follows the API`, async () => (await rig.status()).forwards.some((f) => f.key === 'node/sessions/0002' && f.state === (how === 'full' ? 'active' : 'draining')), 8000);
      t.equal(await rig.probe('client', 6379), 'redis-11', `${how}: forwarding`);
      const left = leftovers(stateDir).filter((f) => !before.has(f) && existsSync(join(stateDir, f)));
      t.same(left, [], `${how}: no temp file left`);
      await daemon.stop(5000);
      t.notOk(existsSync(lock), `${how}: released on stop`);
      if (how === 'full') rmSync(join(stateDir, 'filler'));
      else await remount(stateDir, 'rw');
    }
    daemon = await startDaemon(rig, { configPath });
  });

  await daemon.stop(5000);
});
