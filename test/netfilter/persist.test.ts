import t from 'tap';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseRulesFile, persistRules } from '../../src/netfilter/persist.js';
import type { Netfilter } from '../../src/core/netfilter/types.js';

const existing = (...paths: string[]) => (path: string) => paths.includes(path);

const choices: [string, string, string[], unknown][] = [
  ['none', 'none', ['/etc/sysconfig/iptables'], { path: null }],
  ['a path of its own', '/var/lib/rules', [], { path: '/var/lib/rules', mode: 0o600 }],
  ['iptables-services file', 'auto', ['/etc/sysconfig/iptables'], { path: '/etc/sysconfig/iptables', mode: 0o600 }],
  ['iptables-services init script', 'auto', ['/usr/libexec/iptables/iptables.init'], { path: '/etc/sysconfig/iptables', mode: 0o600 }],
  ['iptables-persistent dir', 'auto', ['/etc/iptables'], { path: '/etc/iptables/rules.v4', mode: 0o640 }],
  ['netfilter-persistent binary', 'auto', ['/usr/sbin/netfilter-persistent'], { path: '/etc/iptables/rules.v4', mode: 0o640 }],
  ['both: iptables-services wins', 'auto', ['/etc/iptables', '/etc/sysconfig/iptables'], { path: '/etc/sysconfig/iptables', mode: 0o600 }],
];
for (const [name, setting, paths, expected] of choices) {
  t.test(`chooseRulesFile: ${name}`, async (t) => {
    t.same(chooseRulesFile(setting, existing(...paths)), expected);
  });
}

t.test('chooseRulesFile: auto with neither layout warns', async (t) => {
  const choice = chooseRulesFile('auto', existing());
  t.equal(choice.path, null);
  t.match(choice, { warning: /neither iptables-services .* nor iptables-persistent/ });
});

t.test('chooseRulesFile: a relative path is refused', async (t) => {
  t.throws(() => chooseRulesFile('rules.v4', existing()), /absolute path/);
});

const fakeNetfilter = (texts: string[]): Netfilter => ({
  save: async () => '',
  saveAll: async () => texts.shift() ?? '',
  restore: async () => undefined,
});

t.test('persistRules writes atomically with the mode, creating the directory, only when rules change', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-persist-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'iptables', 'rules.v4');
  const save = (stamp: string, rule: string) => `# Generated ${stamp}\n*nat\n:PREROUTING ACCEPT [0:0]\n${rule}COMMIT\n# Completed ${stamp}\n`;
  const first = save('1', '');
  const sameRules = save('2', '');
  const changed = save('3', '-A PREROUTING -j ACCEPT\n');
  const netfilter = fakeNetfilter([first, sameRules, changed]);

  t.equal(await persistRules(netfilter, path, 0o640), true);
  t.equal(await readFile(path, 'utf8'), first);
  t.equal((await stat(path)).mode & 0o777, 0o640);

  t.equal(await persistRules(netfilter, path, 0o640), false, 'only the time stamps differ');
  t.equal(await readFile(path, 'utf8'), first);

  t.equal(await persistRules(netfilter, path, 0o640), true);
  t.equal(await readFile(path, 'utf8'), changed);
  t.same(await readdir(join(dir, 'iptables')), ['rules.v4'], 'no temp file left behind');
});

t.test('persistRules replaces a file it cannot parse and propagates save failures', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-persist-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'iptables');
  await writeFile(path, 'garbage');
  t.equal(await persistRules(fakeNetfilter(['*nat\nCOMMIT\n']), path, 0o600), true);
  t.equal(await readFile(path, 'utf8'), '*nat\nCOMMIT\n');
  const failing: Netfilter = { ...fakeNetfilter([]), saveAll: async () => Promise.reject(new Error('iptables-save failed')) };
  await t.rejects(persistRules(failing, path, 0o600), /iptables-save failed/);
  t.equal(await readFile(path, 'utf8'), '*nat\nCOMMIT\n', 'old file kept');
});
