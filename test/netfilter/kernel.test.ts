// Against the real kernel, each test in a network namespace of its own: only
// iptables rules are loaded, no packet is sent.

import t from 'tap';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RuleForward } from '../../src/core/model.js';
import { ConntrackTool } from '../../src/netfilter/conntrack.js';
import { diffRules } from '../../src/core/netfilter/diff.js';
import { digestRules, installedOwnedRules, missingJumps } from '../../src/core/netfilter/digest.js';
import { inNamespace, IptablesNetfilter, KernelError, runCommand, type CommandRunner } from '../../src/netfilter/iptables.js';
import { flushOwnedRules, readInstalledRules } from '../../src/netfilter/owned-rules.js';
import { persistRules } from '../../src/netfilter/persist.js';
import { interfaceProblem } from '../../src/core/grammar.js';
import { recoverForwards } from '../../src/core/netfilter/recover.js';
import { renderRules, type DesiredRules, type RenderOptions } from '../../src/core/netfilter/render.js';
import { DOCKER_SAVE, foreignLines, withoutComments } from '../../lab/foreign-rules.js';

async function kernelUnavailable(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces';
  for (const program of ['ip', 'iptables-save', 'iptables-restore']) {
    if ((await runCommand(program, ['--version'])).exitCode === 127) return `${program} is not installed`;
  }
  return false;
}
const skip = await kernelUnavailable();

let namespaces = 0;
interface Lab {
  run: CommandRunner;
  netfilter: IptablesNetfilter;
}

async function lab(t: { teardown: (fn: () => unknown) => void }): Promise<Lab> {
  const name = `cn-nf-${process.pid}-${++namespaces}`;
  const added = await runCommand('ip', ['netns', 'add', name]);
  if (added.exitCode !== 0) throw new Error(`ip netns add ${name}: ${added.stderr}`);
  t.teardown(() => runCommand('ip', ['netns', 'delete', name]));
  const run = inNamespace(name);
  return { run, netfilter: new IptablesNetfilter(run) };
}

const installed = ({ netfilter }: Lab) => readInstalledRules(netfilter);

/** One reconcile pass as the daemon does it; returns what it changed. */
async function sync(lab: Lab, desired: DesiredRules) {
  const changes = diffRules(desired, await installed(lab));
  if (changes.restore !== null) await lab.netfilter.restore(changes.restore);
  return changes;
}

async function loadForeign(lab: Lab, text: string): Promise<void> {
  const loaded = await lab.run('iptables-restore', [], { input: text });
  if (loaded.exitCode !== 0) throw new Error(`loading the foreign ruleset: ${loaded.stderr}`);
}

const base: RenderOptions = { inboundInterface: 'eth0', allowedSources: ['198.51.100.27/32'], snat: 'masquerade' };
const forward = (n: number, engine: RuleForward['engine'] = 'redis', ip = `10.0.${n >> 8}.${n & 255}`): RuleForward => ({
  key: n % 3 === 0 ? `primary/rg-${n}` : `node/cluster-${n}/${String(n).padStart(4, '0')}`,
  engine,
  listenPort: (engine === 'memcached' ? 11211 : 6379) + n,
  targetIp: ip,
  targetPort: engine === 'memcached' ? 11211 : 6379,
});
const many = Array.from({ length: 60 }, (_, i) => forward(i + 1, (['redis', 'valkey', 'memcached'] as const)[i % 3]));

const scenarios: [string, RuleForward[], RenderOptions][] = [
  ['one forward, masquerade', [forward(1)], base],
  ['many forwards, SNAT to an address', many, { ...base, snat: '10.0.0.5' }],
  ['0.0.0.0/0 and several sources', [forward(1), forward(2, 'memcached')], { ...base, allowedSources: ['0.0.0.0/0', '203.0.113.0/24', '198.51.100.27/32'] }],
  ['no forwards', [], base],
  ['interface wildcard', [forward(4, 'valkey')], { ...base, inboundInterface: 'ens+' }],
];

t.test('rendered rules are what iptables-save prints back', { skip }, async (t) => {
  for (const [name, forwards, options] of scenarios) {
    await t.test(name, async (t) => {
      const ns = await lab(t);
      const desired = renderRules(forwards, options);
      const first = await sync(ns, desired);
      t.not(first.restore, null);
      const again = diffRules(desired, await installed(ns));
      t.equal(again.restore, null, 'second pass writes nothing');
      const now = await installed(ns);
      t.equal(digestRules(installedOwnedRules(now)), digestRules(desired));
      t.same(missingJumps(now), []);
      t.same(
        recoverForwards(now.nat),
        [...forwards].sort((a, b) => a.listenPort - b.listenPort),
        'the port map can be rebuilt from the kernel',
      );
    });
  }
});

t.test('rules of another tool stay byte-identical through apply, update and flush', { skip }, async (t) => {
  const ns = await lab(t);
  await loadForeign(ns, DOCKER_SAVE);
  const before = foreignLines(await ns.netfilter.saveAll());
  t.equal(before, foreignLines(DOCKER_SAVE), 'the fixture is canonical');

  await sync(ns, renderRules([forward(1), forward(2), forward(3, 'memcached')], base));
  const applied = await ns.netfilter.saveAll();
  t.equal(foreignLines(applied), before, 'after apply');
  t.match(applied, /:FORWARD DROP/);
  t.match(applied, /-A FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD\n-A FORWARD -j DOCKER-USER/, 'our jump comes first');

  const updated = renderRules([forward(1, 'redis', '10.0.9.9'), forward(3, 'memcached'), forward(5)], { ...base, snat: '10.0.0.5' });
  const changes = await sync(ns, updated);
  t.same(changes.jumpsAdded, []);
  t.equal(foreignLines(await ns.netfilter.saveAll()), before, 'after update');
  t.equal(diffRules(updated, await installed(ns)).restore, null);

  t.not(await flushOwnedRules(ns.netfilter), null);
  const flushed = await ns.netfilter.saveAll();
  t.notMatch(flushed, /CACHENAT/, 'nothing of ours left');
  t.equal(withoutComments(flushed), withoutComments(DOCKER_SAVE), 'after flush the ruleset is exactly the foreign one');
  t.equal(await flushOwnedRules(ns.netfilter), null, 'a second flush finds nothing');
});

t.test('interface names: what cachenat accepts, iptables takes and prints back; what is too long, iptables refuses too', { skip }, async (t) => {
  const ns = await lab(t);
  const accepted = ['eth0', 'ens+', 'a'.repeat(15), `${'a'.repeat(14)}+`, 'veth_a.1', 'br-1a2b', '.+'];
  const tooLong = ['a'.repeat(16), `${'a'.repeat(15)}+`];
  for (const name of [...accepted, ...tooLong]) {
    const ok = interfaceProblem(name) === undefined;
    t.equal(ok, accepted.includes(name), `cachenat ${ok ? 'accepts' : 'refuses'} ${name}`);
    const added = await ns.run('iptables', ['-w', '5', '-t', 'nat', '-A', 'PREROUTING', '-i', name, '-j', 'ACCEPT']);
    t.equal(added.exitCode === 0, ok, `iptables ${added.exitCode === 0 ? 'takes' : 'refuses'} -i ${name} ${added.stderr.trim()}`);
  }
  const saved = (await installed(ns)).nat.chains.get('PREROUTING')!.rules;
  t.same(saved, accepted.map((name) => `-A PREROUTING -i ${name} -j ACCEPT`), 'printed back as written');
});

t.test('what an operator removed comes back on the next pass', { skip }, async (t) => {
  const ns = await lab(t);
  await loadForeign(ns, DOCKER_SAVE);
  const desired = renderRules([forward(1), forward(2, 'memcached')], base);
  await sync(ns, desired);
  const good = withoutComments(await ns.netfilter.saveAll());

  const iptables = async (...args: string[]) => t.equal((await ns.run('iptables', ['-w', '5', ...args])).exitCode, 0, `iptables ${args.join(' ')}`);
  await iptables('-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'cachenat', '-j', 'CACHENAT-PREROUTING');
  await iptables('-t', 'nat', '-F', 'CACHENAT-DNAT');
  await iptables('-D', 'FORWARD', '-m', 'comment', '--comment', 'cachenat', '-j', 'CACHENAT-FORWARD');
  await iptables('-I', 'FORWARD', '3', '-m', 'comment', '--comment', 'cachenat', '-j', 'CACHENAT-FORWARD');
  await iptables('-A', 'FORWARD', '-m', 'comment', '--comment', 'cachenat', '-j', 'CACHENAT-FORWARD');

  const repair = await sync(ns, desired);
  t.same(repair.jumpsAdded, ['PREROUTING -> CACHENAT-PREROUTING']);
  t.same(repair.chainsWritten, ['CACHENAT-DNAT']);
  t.equal(repair.jumpsRemoved, 1, 'the duplicate FORWARD jump');
  t.equal(diffRules(desired, await installed(ns)).restore, null);
  const repaired = withoutComments(await ns.netfilter.saveAll());
  t.equal(foreignLines(repaired), foreignLines(good));
  t.same(missingJumps(await installed(ns)), []);

  // The whole nat table flushed (as `iptables -t nat -F` does): chains stay, rules go.
  await iptables('-t', 'nat', '-F');
  await sync(ns, desired);
  const after = withoutComments(await ns.netfilter.saveAll());
  t.match(after, /-A CACHENAT-DNAT .*--dport 6380/);
  t.equal(diffRules(desired, await installed(ns)).restore, null);
});

t.test('leftover CACHENAT-* chains are removed, jumps first', { skip }, async (t) => {
  const ns = await lab(t);
  await loadForeign(ns, DOCKER_SAVE);
  const desired = renderRules([forward(1)], base);
  await sync(ns, desired);
  const good = withoutComments(await ns.netfilter.saveAll());
  await ns.netfilter.restore(
    [
      '*nat',
      ':CACHENAT-OLD - [0:0]',
      '-A CACHENAT-OLD -p tcp -m tcp --dport 7000 -j DNAT --to-destination 10.9.9.9:6379',
      '-I PREROUTING 1 -m comment --comment cachenat -j CACHENAT-OLD',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const changes = await sync(ns, desired);
  t.same(changes.chainsDeleted, ['CACHENAT-OLD']);
  t.equal(withoutComments(await ns.netfilter.saveAll()), good);
});

t.test('a failed restore is a KernelError naming the line, and changes nothing', { skip }, async (t) => {
  const ns = await lab(t);
  await sync(ns, renderRules([forward(1)], base));
  const before = withoutComments(await ns.netfilter.saveAll());
  const error = await ns.netfilter
    .restore('*nat\n:CACHENAT-DNAT - [0:0]\n-A CACHENAT-DNAT -j CACHENAT-MISSING\nCOMMIT\n')
    .catch((e: unknown) => e);
  t.ok(error instanceof KernelError);
  t.match((error as KernelError).message, /iptables-restore --noflush -w 5 failed with exit code 2 at input line \d/);
  t.equal(withoutComments(await ns.netfilter.saveAll()), before, 'the table is untouched: restore is atomic');
});

t.test('persistRules saves the full ruleset atomically', { skip }, async (t) => {
  const ns = await lab(t);
  await loadForeign(ns, DOCKER_SAVE);
  await sync(ns, renderRules([forward(1)], base));
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'sysconfig', 'iptables');
  t.equal(await persistRules(ns.netfilter, path, 0o600), true);
  t.equal((await stat(path)).mode & 0o777, 0o600);
  const saved = await readFile(path, 'utf8');
  t.equal(withoutComments(saved), withoutComments(await ns.netfilter.saveAll()));
  t.equal(await persistRules(ns.netfilter, path, 0o600), false, 'unchanged rules are not rewritten');
});

t.test('conntrack in a namespace without flows deletes nothing', { skip }, async (t) => {
  const ns = await lab(t);
  const tool = new ConntrackTool(ns.run);
  const count = await tool.forgetFlows(6380, '10.0.1.231');
  t.equal(count, 0);
});
