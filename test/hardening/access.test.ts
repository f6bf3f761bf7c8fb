// Access control and exposure, in the namespace lab: who reaches a forward
// (allowed client, a rogue on the same segment, an allowed address arriving on
// the wrong interface, everyone once 0.0.0.0/0 is written out), what the
// daemon listens on (nothing), and what it leaves on disk (modes, no secrets).

import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { labConfig, startRig, stretch, waitFor } from '../../lab/rig.js';
import { logLines, startDaemon, waitForSnapshot } from './lab-daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : false;
const PORTS = [6379, 6380, 6381, 6382, 6383, 11211, 11212, 11213];

t.test('access control', { skip }, async (t) => {
  process.env.NODE_OPTIONS = '';
  const rig = await startRig();
  t.teardown(() => rig.down());
  const { lab } = rig;
  const daemon = await startDaemon(rig);
  await waitFor('forwarding', async () => (await rig.probe('client', 6379)) === 'redis-11');

  // Probes from the allowed client run alongside, with the same timeout, as the control: when
  // they all get through, a refusal from elsewhere is the firewall, not a slow machine.
  const timeoutMs = () => Math.round(1500 * Math.max(1, loadavg()[0]! / cpus().length));
  const probeAll = async (from: 'client' | 'rogue' | 'side', ms: number) => {
    const host = from === 'side' ? lab.addr.natSide : lab.addr.natExt;
    const results = await Promise.all(PORTS.map(async (port) => ({ port, result: await lab.probe(lab.ns[from], host, port, port >= 11211 ? 'memcached' : 'redis', ms) })));
    return {
      reached: results.flatMap(({ port, result }) => (result.ok ? [port] : [])),
      errors: results.flatMap(({ port, result }) => (result.ok ? [] : [`${port}: ${result.error}`])),
    };
  };
  const reachable = async (check: typeof t, from: 'client' | 'rogue' | 'side') => {
    const ms = timeoutMs();
    const [control, seen] = await Promise.all([probeAll('client', ms), from === 'client' ? undefined : probeAll(from, ms)]);
    check.same(control.reached, PORTS, `control: the allowed client reached all ${PORTS.length} forwards within ${ms} ms (bound stretched by load)`, { errors: control.errors });
    return (seen ?? control).reached;
  };

  await t.test('only allowedSources, only on the inbound interface', async (t) => {
    t.same(await reachable(t, 'client'), PORTS, 'the allowed client reaches all 8 forwards');
    t.same(await reachable(t, 'rogue'), [], 'a rogue on the same segment reaches none of them');
    t.same(await reachable(t, 'side'), [], 'a host on another interface reaches none of them');
  });

  const reload = async (allowed: string) => {
    writeFileSync(rig.configPath, labConfig(rig.apiUrl, rig.dir).replace('allowedSources: [198.18.0.10/32]', `allowedSources: ${allowed}`));
    const mark = daemon.mark();
    daemon.kill('SIGHUP');
    const line = await daemon.waitForLine(/configuration reloaded|reload refused/, 10_000, mark);
    // The pass after the reload applies it: wait for its snapshot.
    await waitForSnapshot(rig, () => true, stretch(10_000), (JSON.parse(line) as { time: number }).time);
    return mark;
  };

  await t.test('an allowed address arriving on the wrong interface is refused', async (t) => {
    await reload('[198.18.0.10/32, 198.18.1.10/32]');
    t.match(await rig.save('nat'), /-s 198\.18\.1\.10\/32 -i ext0/, 'the rule names both the source and the interface');
    t.same(await reachable(t, 'side'), [], 'side (198.18.1.10, allowed) comes in on side0, not ext0: refused');
    t.same(await reachable(t, 'rogue'), [], 'rogue still refused');
    t.same(await reachable(t, 'client'), PORTS);
  });

  await t.test('0.0.0.0/0 only when written out, with a warning', async (t) => {
    const mark = await reload('[0.0.0.0/0]');
    const warning = logLines(daemon, mark).find((l) => /0\.0\.0\.0\/0/.test(l.msg));
    t.ok(warning && warning.level === 40, `warned: "${warning?.msg}"`);
    t.same(await reachable(t, 'rogue'), PORTS, 'now the rogue gets in: everyone does');
    t.same(await reachable(t, 'side'), [], 'but still only through the inbound interface');
    const validate = await rig.cli(['validate']);
    t.equal(validate.exitCode, 0);
    t.match(validate.stderr, /warning: .*0\.0\.0\.0\/0/, '`validate` warns too');
    const mark2 = await reload('[]');
    t.ok(logLines(daemon, mark2).some((l) => /reload refused/.test(l.msg) && /allowedSources/.test(l.msg)), 'an empty list is refused on reload');
    t.same(await reachable(t, 'rogue'), PORTS, 'and the running (wide) configuration stays until a valid one comes');
    await reload('[198.18.0.10/32]');
    t.same(await reachable(t, 'rogue'), [], 'narrowed again: the rogue is out at once');
  });

  await t.test('the daemon listens on no socket', async (t) => {
    const pid = String(daemon.pid);
    const tcpUdp = await lab.exec(lab.ns.nat, 'ss', ['-H', '-l', '-t', '-u', '-n', '-p']);
    const unix = await lab.exec(lab.ns.nat, 'ss', ['-H', '-l', '-x', '-p']);
    const mine = [...tcpUdp.stdout.split('\n'), ...unix.stdout.split('\n')].filter((l) => l.includes(`pid=${pid},`));
    t.same(mine, [], `no listening TCP, UDP or unix socket with pid=${pid}`);
    const fakeApi = lab.fakeApi!.process.pid;
    t.ok(tcpUdp.stdout.includes(`pid=${fakeApi},`), `(ss does see the fake API, pid ${fakeApi}, listening on 127.0.0.1:4566)`);
  });

  await t.test('files: modes as the distros use, nothing secret in the status snapshot', async (t) => {
    const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
    t.equal(mode(join(rig.dir, 'state')), '755', 'state dir 0755');
    t.equal(mode(join(rig.dir, 'state', 'ports.json')), '644', 'port map 0644');
    t.equal(mode(join(rig.dir, 'run', 'cachenat.lock')), '644', 'lock 0644, beside the status snapshot');
    t.equal(mode(join(rig.dir, 'run', 'status.json')), '644', 'status snapshot 0644, world-readable for `cachenat health`');
    t.equal(mode(join(rig.dir, 'rules.v4')), '600', 'a rules file at a custom path 0600 (as iptables-services saves /etc/sysconfig/iptables)');
    t.equal(mode(join(rig.dir, 'sysctl.d', '90-cachenat.conf')), '644', 'sysctl.d file 0644');
    const snapshotText = readFileSync(join(rig.dir, 'run', 'status.json'), 'utf8');
    const snapshot = JSON.parse(snapshotText) as Record<string, unknown>;
    for (const secret of ['lab-secret', 'AKIDLAB', 'AWS_', 'SECRET', 'password', 'token']) {
      t.notOk(snapshotText.toLowerCase().includes(secret.toLowerCase()), `the snapshot does not contain "${secret}"`);
    }
    const allowed = ['version', 'cachenatVersion', 'inboundInterface', 'pid', 'startedAt', 'lastPassAt', 'passes', 'lastPassOk', 'lastSyncAt', 'lastSyncError', 'discoveryIntervalMs', 'dnsIntervalMs', 'syncWarnIntervals', 'syncCriticalIntervals', 'degraded', 'degradedReason', 'ipForward', 'lastKernelError', 'rulesDigest', 'forwards', 'connections'];
    t.same(Object.keys(snapshot).filter((k) => !allowed.includes(k)), [], `only known fields: ${Object.keys(snapshot).join(', ')}`);
    for (const file of [join(rig.dir, 'state', 'ports.json'), join(rig.dir, 'rules.v4')]) {
      const text = readFileSync(file, 'utf8');
      t.notOk(/lab-secret|AKIDLAB/.test(text), `${file.slice(rig.dir.length)} holds no credential`);
    }
  });

  await daemon.stop(5000);
});
