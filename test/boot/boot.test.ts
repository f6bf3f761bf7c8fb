// Issue 3's proof: a Debian rootfs without Node, with the release (which
// carries its runtime) installed by ami/install.sh, booted with a real systemd as PID 1 inside the lab's NAT
// namespace. Slow (minutes): runs under `npm run test:boot`
// (CACHENAT_BOOT_TEST=1), not in every `npm test`.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab } from '../../lab/lab.js';
import { run } from '../../lab/netns.js';
import type { StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';
import { Container, sleep, waitFor } from './container.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const CACHE_DIR = process.env.CACHENAT_TEST_CACHE ?? '/var/cache/cachenat-test';

if (process.env.CACHENAT_BOOT_TEST !== '1') {
  t.test('install, boot, and survive', { skip: 'slow (minutes): run it with npm run test:boot' }, bootTest);
} else if (process.getuid?.() !== 0) {
  t.fail('the boot test needs root');
} else {
  t.test('install, boot, and survive', { timeout: 1_500_000 }, bootTest);
}

const NAMES = {
  sessions1: 'sessions-0001.lab.cache.internal',
  sessions2: 'sessions-0002.lab.cache.internal',
  mc1: 'mc-0001.lab.cache.internal',
};

const topology = {
  clusters: [
    { id: 'sessions', engine: 'redis', nodes: [{ id: '0001', address: NAMES.sessions1, port: 6379 }, { id: '0002', address: NAMES.sessions2, port: 6379 }] },
    { id: 'mc', engine: 'memcached', nodes: [{ id: '0001', address: NAMES.mc1, port: 11211 }] },
  ],
};

const CONFIG = `aws:
  region: us-east-1
  endpoint: http://127.0.0.1:4566
discovery:
  interval: 2s
  apiTimeout: 3s
dns:
  interval: 1s
forward:
  inboundInterface: ext0
  allowedSources: [198.18.0.0/24]
ipForward: enable
log:
  level: info
`;

async function bootTest(t: Test): Promise<void> {
  const work = `/var/tmp/cachenat-boot-${process.pid}`;
  const root = join(work, 'root');
  let lab: Lab | undefined;
  let container: Container | undefined;

  t.teardown(async () => {
    if (container?.running && t.counts.fail > 0) {
      // What an operator would look at first.
      const status = await container.exec('systemctl', ['status', 'cachenat', '--no-pager', '-l', '-n', '40'], { reject: false });
      t.comment(status.stdout + status.stderr);
    }
    await container?.kill();
    await lab?.down();
    // Mounts live in the container's own mount namespace; make sure none leaked here before deleting.
    const leaked = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(` ${root}/`));
    for (const line of leaked.reverse()) await run('umount', ['-l', line.split(' ')[4]!], { reject: false });
    await rm(work, { recursive: true, force: true });
  });

  // --- 1. rootfs, release, install ---------------------------------------------------------------
  const rootfsTar = (await execa('sh', [join(repo, 'test/boot/build-rootfs.sh'), CACHE_DIR])).stdout.trim().split('\n').at(-1)!;
  // This machine's architecture only: the other tarball is test/service/package.test.ts's business.
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const packaged = await execa('bash', [join(repo, 'scripts/package.sh'), '--arch', arch, '--out', join(work, 'release')], { cwd: repo, reject: false, all: true });
  t.equal(packaged.exitCode, 0, 'npm run package', { output: packaged.all?.slice(-2000) });
  const release = new RegExp(`(cachenat-[^/\\s]+-linux-${arch}\\.tar\\.gz)`).exec(packaged.stdout)?.[1];
  if (!release) throw new Error(`npm run package printed no cachenat-*-linux-${arch}.tar.gz path (exit ${packaged.exitCode}); its output is above`);

  await mkdir(root, { recursive: true });
  await execa('tar', ['-C', root, '-xf', rootfsTar]);
  // Debian's rootfs has no Node at all: the release brings its own.
  const nodeInRootfs = await execa('chroot', [root, '/bin/sh', '-c', 'command -v node nodejs'], { reject: false });
  t.equal(nodeInRootfs.stdout, '', 'the rootfs has no node or nodejs on PATH');
  // Units that cannot work in a container without a console or logind's needs.
  for (const unit of ['console-getty.service', 'e2scrub_reap.service', 'systemd-logind.service', 'getty@tty1.service']) {
    await rm(join(root, 'etc/systemd/system', unit), { force: true });
    await execa('ln', ['-s', '/dev/null', join(root, 'etc/systemd/system', unit)]);
  }
  await writeFile(
    join(root, 'etc/hosts'),
    `127.0.0.1 localhost\n198.19.0.11 ${NAMES.sessions1}\n198.19.0.12 ${NAMES.sessions2}\n198.19.0.21 ${NAMES.mc1}\n`,
  );
  await cp(join(work, 'release', release), join(root, 'root', release));

  const install = () => execa('chroot', [root, '/bin/sh', `/root/${release}.d/cachenat/ami/install.sh`, `/root/${release}`], { reject: false, all: true });
  // The script ships inside the release: unpack it the way the AMI build does.
  await mkdir(join(root, 'root', `${release}.d`));
  await execa('tar', ['-C', join(root, 'root', `${release}.d`), '-xzf', join(root, 'root', release)]);
  const first = await install();
  t.equal(first.exitCode, 0, 'install.sh in the rootfs', { output: first.all });
  const tree = async () => (await execa('find', ['opt/cachenat', 'etc', 'usr/local/bin', '-printf', '%p %m %s %T@ %l\\n'], { cwd: root })).stdout;
  const before = await tree();
  const second = await install();
  t.equal(second.exitCode, 0);
  t.match(second.stdout, /nothing changed/, 'second run says nothing changed');
  t.equal(await tree(), before, 'second run changed nothing on disk');
  t.ok((await tree()).includes('etc/systemd/system/multi-user.target.wants/netfilter-persistent.service'), 'rule-restore service enabled');
  const bare = await execa('chroot', [root, '/usr/bin/env', '-i', 'PATH=/nonexistent', '/usr/local/bin/cachenat', '--help'], { reject: false });
  t.equal(bare.exitCode, 0, 'the installed cachenat runs on the release runtime with an empty PATH', { stderr: bare.stderr });
  t.match(bare.stdout, /^Usage: cachenat <command>/);

  await writeFile(join(root, 'etc/cachenat/config.yaml'), CONFIG);
  await mkdir(join(root, 'etc/systemd/system/cachenat.service.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/systemd/system/cachenat.service.d/lab.conf'),
    '[Service]\nEnvironment=AWS_ACCESS_KEY_ID=AKIDLAB AWS_SECRET_ACCESS_KEY=lab-secret AWS_EC2_METADATA_DISABLED=true\n',
  );

  // --- 2. boot -------------------------------------------------------------------------------
  lab = await startLab({ redis: 2, memcached: 1 });
  await lab.startFakeApi(topology);
  // The first API call hangs until apiTimeout, so there is a window where the daemon runs but is not READY.
  await lab.exec(lab.ns.nat, 'curl', ['-sf', '-X', 'PUT', '--data', '{"kind":"hang","count":1}', `${lab.fakeApi!.url}/_fake/fault`]);
  const cgroup = `cachenat-boot-${process.pid}`;
  container = new Container(root, lab.ns.nat, cgroup, join(work, 'pid1.log'));
  const c = container;

  const samples: { state: string; pid: string; status: string }[] = [];
  const bootDone = c.boot();
  // Sample the unit while systemd boots: activating (process up, not READY) must come before active.
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
    if (!c.pid) continue;
    const s = await c.show('cachenat.service', 'ActiveState', 'MainPID', 'StatusText').catch(() => undefined);
    if (!s?.ActiveState) continue;
    samples.push({ state: s.ActiveState, pid: s.MainPID ?? '0', status: s.StatusText ?? '' });
    if (s.ActiveState === 'active' || s.ActiveState === 'failed') break;
  }
  const systemState = await bootDone;
  t.ok(['running', 'degraded'].includes(systemState), `systemd booted (${systemState})`);
  t.equal((await c.exec('systemctl', ['is-system-running'], { reject: false })).stdout.trim(), 'running', 'no failed units', {
    failed: (await c.exec('systemctl', ['--failed', '--no-legend'], { reject: false })).stdout,
  });
  t.ok(samples.some((s) => s.state === 'activating' && s.pid !== '0'), 'seen running but not yet READY (activating)', { samples: samples.slice(-5) });
  const firstActive = samples.find((s) => s.state === 'active');
  t.ok(firstActive && firstActive.status !== '', 'active only with a STATUS from READY', { firstActive });
  t.equal((await c.exec('systemctl', ['is-active', 'cachenat'], { reject: false })).stdout.trim(), 'active');

  const snapshot = async (): Promise<StatusSnapshot> => JSON.parse((await c.exec('cat', ['/run/cachenat/status.json'])).stdout) as StatusSnapshot;
  const ready = await waitFor('3 resolved forwards', async () => {
    const s = await snapshot().catch(() => undefined);
    return s && s.forwards.filter((f) => f.state === 'active').length === 3 ? s : undefined;
  }, 30_000);
  const whoamiOf: Record<string, string> = { '198.19.0.11': 'redis-11', '198.19.0.12': 'redis-12', '198.19.0.21': 'memc-21' };
  const checkForwards = async (s: StatusSnapshot, label: string) => {
    for (const f of s.forwards) {
      const result = await lab!.probe(lab!.ns.client, lab!.addr.natExt, f.listenPort, f.engine === 'memcached' ? 'memcached' : 'redis');
      t.same(result, { ok: true, value: whoamiOf[f.targetIp!] }, `${label}: client reaches ${f.key} on port ${f.listenPort}`);
    }
  };
  await checkForwards(ready, 'booted');

  const journal = await c.exec('journalctl', ['-u', 'cachenat', '-o', 'json', '--no-pager']);
  const entries = journal.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { MESSAGE?: string; PRIORITY?: string });
  const pinoEntries = entries.filter((e) => typeof e.MESSAGE === 'string' && e.MESSAGE.startsWith('{'));
  t.ok(pinoEntries.length > 0, 'the daemon logged JSON lines to the journal');
  const expectedPriority: Record<number, string> = { 10: '7', 20: '7', 30: '6', 40: '4', 50: '3', 60: '2' };
  t.ok(
    pinoEntries.every((e) => expectedPriority[(JSON.parse(e.MESSAGE!) as { level: number }).level] === e.PRIORITY),
    'every line carries its level as journal priority (no <N> left in the message)',
  );
  const warnings = await c.exec('journalctl', ['-u', 'cachenat', '-p', 'warning', '-o', 'json', '--no-pager']);
  const warningEntries = warnings.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { PRIORITY: string });
  t.ok(warningEntries.every((e) => Number(e.PRIORITY) <= 4), `journalctl -p warning holds only warnings and worse (${warningEntries.length})`);

  const health = await c.execAsNobody('/usr/local/bin/cachenat', ['health'], { reject: false });
  t.equal(health.exitCode, 0, 'cachenat health as nobody exits 0', { output: health.stdout + health.stderr });
  t.match(health.stdout, /^OK - 3 forwards/);
  t.match(health.stdout, /kernel rules not read \(not root\)/);
  const rootHealth = await c.exec('/usr/local/bin/cachenat', ['health', '--probe'], { reject: false });
  t.equal(rootHealth.exitCode, 0, 'as root, with the kernel compared and targets probed', { output: rootHealth.stdout + rootHealth.stderr });
  t.match(rootHealth.stdout, /\[OK\] rules: chains and jumps installed and match the last applied state/);
  t.match(rootHealth.stdout, /\[OK\] probe: TCP connect to all 3 targets succeeded/);

  // --- 3. the API goes away ------------------------------------------------------------------
  await lab.fakeApi!.process.stop(1_500);
  const healthCode = async () => (await c.execAsNobody('/usr/local/bin/cachenat', ['health'], { reject: false })).exitCode;
  const codeOnce = (wanted: number) => async () => ((await healthCode()) === wanted ? wanted : undefined);
  t.equal(await waitFor('health WARNING', codeOnce(1), 30_000), 1, 'API gone: health WARNING');
  await checkForwards(ready, 'API gone');
  t.equal(await waitFor('health CRITICAL', codeOnce(2), 60_000), 2, 'API gone longer: health CRITICAL');
  await checkForwards(ready, 'API gone longer');
  const warned = await c.exec('journalctl', ['-u', 'cachenat', '-p', 'warning', '-o', 'json', '--no-pager']);
  const warnedEntries = warned.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { PRIORITY: string; MESSAGE: string });
  t.ok(warnedEntries.length > 0 && warnedEntries.every((e) => Number(e.PRIORITY) <= 4 && !/"level":[23]0,/.test(e.MESSAGE)), `with the API gone, -p warning shows ${warnedEntries.length} warnings and no info`);
  await lab.startFakeApi(topology);
  await waitFor('health OK again', async () => ((await healthCode()) === 0 ? true : undefined), 30_000);

  // --- 4. a frozen daemon is restarted by the watchdog ----------------------------------------
  const frozen = await c.show('cachenat.service', 'MainPID', 'NRestarts');
  await c.exec('kill', ['-STOP', frozen.MainPID!]);
  const restarted = await waitFor(
    'the watchdog restart',
    async () => {
      const s = await c.show('cachenat.service', 'MainPID', 'NRestarts', 'ActiveState');
      return s.ActiveState === 'active' && s.MainPID !== frozen.MainPID && s.MainPID !== '0' ? s : undefined;
    },
    90_000,
    1_000,
  );
  t.equal(Number(restarted.NRestarts), Number(frozen.NRestarts) + 1, 'restarted once');
  t.match((await c.exec('journalctl', ['-u', 'cachenat', '--no-pager'])).stdout, /Watchdog timeout/);

  // --- 5. a broken config fails once with 78 and does not loop -----------------------------------
  await writeFile(join(root, 'etc/cachenat/config.yaml'), 'aws:\n  region: nowhere\n');
  await c.exec('systemctl', ['restart', 'cachenat'], { reject: false });
  const failed = await waitFor('failed with 78', async () => {
    const s = await c.show('cachenat.service', 'ActiveState', 'ExecMainStatus', 'NRestarts');
    return s.ActiveState === 'failed' ? s : undefined;
  }, 30_000);
  t.equal(failed.ExecMainStatus, '78');
  await sleep(6_000);
  const later = await c.show('cachenat.service', 'ActiveState', 'NRestarts');
  t.same(later, { ActiveState: 'failed', NRestarts: failed.NRestarts }, 'no restart loop');
  await writeFile(join(root, 'etc/cachenat/config.yaml'), CONFIG);
  await c.exec('systemctl', ['reset-failed', 'cachenat']);
  await c.exec('systemctl', ['start', 'cachenat'], { timeoutMs: 60_000 });
  const portsBefore = Object.fromEntries((await snapshot()).forwards.map((f) => [f.key, f.listenPort]));

  // --- 6. power off, a cold kernel, boot again ----------------------------------------------------
  await c.poweroff();
  t.notOk(c.running, 'powered off');
  // A reboot starts with empty tables and ip_forward 0.
  await run('ip', ['netns', 'exec', lab.ns.nat, 'iptables-restore'], {
    input: '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n',
  });
  await lab.setIpForward(false);
  t.match(await readFile(join(root, 'etc/iptables/rules.v4'), 'utf8'), /CACHENAT-DNAT/, 'rules persisted for the distro to restore');
  await c.boot();
  const restore = await c.show('netfilter-persistent.service', 'ActiveState', 'ActiveEnterTimestampMonotonic');
  const daemon = await c.show('cachenat.service', 'ActiveState', 'ExecMainStartTimestampMonotonic');
  t.equal(restore.ActiveState, 'active', 'netfilter-persistent restored the rules');
  t.ok(Number(restore.ActiveEnterTimestampMonotonic) <= Number(daemon.ExecMainStartTimestampMonotonic), 'rules were back before cachenat started', { restore, daemon });
  t.equal(daemon.ActiveState, 'active', 'cachenat READY after reboot');
  const after = await snapshot();
  t.same(Object.fromEntries(after.forwards.map((f) => [f.key, f.listenPort])), portsBefore, 'every port the same as before');
  await checkForwards(after, 'after reboot');
  await c.poweroff();
}
