import t, { type Test } from 'tap';
import { execa } from 'execa';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/core/config/duration.js';
import { chooseRulesFile } from '../../src/netfilter/persist.js';
import { fileURLToPath } from 'node:url';

const repoFile = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const unitPath = repoFile('systemd/cachenat.service');

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
  t.equal(one('Restart'), 'on-failure');
  t.match(one('After'), /network-online\.target/);
  t.match(one('After'), /iptables\.service/);
  t.match(one('After'), /netfilter-persistent\.service/);
  t.match(one('Wants'), /network-online\.target/);
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.equal(one('CapabilityBoundingSet'), 'CAP_NET_ADMIN CAP_NET_RAW');
  t.equal(one('ProtectSystem'), 'strict');
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

// The values the unit shares with the code and the installer come from there,
// so a change on either side that the other does not follow goes red.
t.test('the unit agrees with the code it runs and the script that installs it', async (t) => {
  const d = await directives();
  const one = (key: string) => d.get(key)?.at(-1);

  t.equal(one('RestartPreventExitStatus'), String(EXIT.config), 'a bad config (exit EXIT.config) is not restarted in a loop');

  const installed = /^put_file "\$work\/wrapper" "\$root(\S+)" 0755$/m.exec(await readFile(repoFile('ami/install.sh'), 'utf8'))?.[1];
  t.equal(one('ExecStart'), `${installed} run`, `ExecStart runs the wrapper ami/install.sh writes (${installed})`);

  // With ProtectSystem=strict, every place cachenat writes by default must be opened up.
  const { config } = parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\n', 'defaults');
  const rulesFiles = [chooseRulesFile('auto', () => true).path, chooseRulesFile('auto', (p) => p === '/etc/iptables').path];
  const writes = [config.state.dir, dirname(config.state.statusFile), ...rulesFiles.map((p) => dirname(p!)), '/etc/sysctl.d'];
  const open = one('ReadWritePaths')?.split(' ').map((p) => p.replace(/^-/, '')) ?? [];
  for (const dir of writes) t.ok(open.includes(dir), `ReadWritePaths opens ${dir}`);
  t.equal(`/var/lib/${one('StateDirectory')}`, config.state.dir, 'StateDirectory is the default state.dir');
  t.equal(`/run/${one('RuntimeDirectory')}`, dirname(config.state.statusFile), 'RuntimeDirectory holds the default state.statusFile');

  // The watchdog is fed once per pass that made progress: a pass waiting out
  // the API timeout must not look like a hang.
  const watchdogMs = parseDuration(one('WatchdogSec'));
  t.ok(watchdogMs !== undefined && watchdogMs > config.discovery.apiTimeout + config.dns.interval, `WatchdogSec ${one('WatchdogSec')} outlasts apiTimeout + dns.interval (${config.discovery.apiTimeout + config.dns.interval} ms)`);
});
