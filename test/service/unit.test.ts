import t, { type Test } from 'tap';
import { execa } from 'execa';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const unitPath = fileURLToPath(new URL('../../systemd/cachenat.service', import.meta.url));

/** key -> every value it is given in the unit, in order. */
async function directives(): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  for (const line of (await readFile(unitPath, 'utf8')).split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
}

// A throwaway root holding the unit, the programs it names and the distro's
// units, so `verify` checks the real unit without installing anything here.
async function fakeRoot(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'cachenat-unit-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'usr/local/bin'), { recursive: true });
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
  await mkdir(join(root, 'usr/lib/systemd'), { recursive: true });
  await writeFile(join(root, 'usr/local/bin/cachenat'), '#!/bin/sh\n');
  await chmod(join(root, 'usr/local/bin/cachenat'), 0o755);
  await cp('/usr/bin/touch', join(root, 'usr/bin/touch'));
  await cp('/bin/kill', join(root, 'bin/kill'));
  await cp('/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  await cp(unitPath, join(root, 'etc/systemd/system/cachenat.service'));
  return root;
}

t.test('systemd-analyze verify prints nothing', async (t) => {
  const root = await fakeRoot(t);
  const result = await execa('systemd-analyze', ['verify', `--root=${root}`, 'cachenat.service'], { reject: false });
  t.equal(result.exitCode, 0);
  t.equal(result.stderr, '', 'no warnings (unknown keys only warn)');
  t.equal(result.stdout, '');
});

t.test('systemd-analyze security rates exposure 2.5 or lower', async (t) => {
  const result = await execa('systemd-analyze', ['security', '--offline=true', '--no-pager', unitPath]);
  const m = /Overall exposure level for cachenat\.service: (\d+\.\d)/.exec(result.stdout);
  t.ok(m, 'an overall score is printed');
  const score = Number(m?.[1]);
  t.ok(score <= 2.5, `exposure ${score}`);
});

t.test('the directives issue 3 asks for', async (t) => {
  const d = await directives();
  const one = (key: string) => d.get(key)?.at(-1);
  t.equal(one('Type'), 'notify');
  t.equal(one('NotifyAccess'), 'all', 'systemd-notify sends from its own pid');
  t.ok(one('WatchdogSec'));
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('RestartPreventExitStatus'), '78');
  t.match(one('After'), /network-online\.target/);
  t.match(one('After'), /iptables\.service/);
  t.match(one('After'), /netfilter-persistent\.service/);
  t.match(one('Wants'), /network-online\.target/);
  t.equal(one('ExecStart'), '/usr/local/bin/cachenat run');
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.equal(one('CapabilityBoundingSet'), 'CAP_NET_ADMIN CAP_NET_RAW');
  t.equal(one('ProtectSystem'), 'strict');
  for (const path of ['-/var/lib/cachenat', '-/etc/sysconfig', '-/etc/iptables', '-/run/cachenat', '-/etc/sysctl.d']) {
    t.ok(one('ReadWritePaths')?.split(' ').includes(path), `ReadWritePaths has ${path}`);
  }
  t.equal(one('NoNewPrivileges'), 'yes');
  t.equal(one('PrivateTmp'), 'yes');
  t.equal(one('RestrictAddressFamilies'), 'AF_UNIX AF_NETLINK AF_INET AF_INET6');
  t.equal(one('RuntimeDirectoryMode'), '0755', 'status.json readable by plain users');
  t.equal(one('MemoryDenyWriteExecute'), undefined, 'kills V8');
  const text = await readFile(unitPath, 'utf8');
  for (const left of ['MemoryDenyWriteExecute', 'ProtectKernelTunables', 'PrivateNetwork', 'ProcSubset', 'DynamicUser']) {
    t.match(text, new RegExp(`^# - [^\\n]*${left}`, 'm'), `${left} left out with a reason`);
  }
});
