// Against the real kernel, each test in a network namespace of its own: only
// iptables rules are loaded, no packet is sent.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlowFilter, RuleForward } from '../../src/core/model.js';
import { ConntrackTool } from '../../src/netfilter/conntrack.js';
import { diffRules } from '../../src/core/netfilter/diff.js';
import { digestRules, installedOwnedRules, missingJumps } from '../../src/core/netfilter/digest.js';
import { inNamespace, IptablesNetfilter, KernelError, runCommand, type CommandRunner } from '../../src/netfilter/iptables.js';
import { flushOwnedRules, readInstalledRules } from '../../src/netfilter/owned-rules.js';
import { persistRules } from '../../src/netfilter/persist.js';
import { interfaceProblem } from '../../src/core/grammar.js';
import { recoverForwards, recoverState } from '../../src/core/netfilter/recover.js';
import { pendingForgets, renderMapChain } from '../../src/core/netfilter/map-chain.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { renderRules, type DesiredRules, type RenderOptions } from '../../src/core/netfilter/render.js';
import { compareListeners } from '../../src/core/ports/port-state.js';
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
  [
    'address mode: each DNAT rule matches its listen address and native port; a fallback on the first address',
    [
      { ...forward(1), listenAddress: '10.0.9.21', listenPort: 6379 },
      { ...forward(2), listenAddress: '10.0.9.22', listenPort: 6379, targetIps: ['10.0.0.2', '10.0.0.9'] },
      { ...forward(5, 'memcached'), listenAddress: '10.0.9.23', listenPort: 11211 },
      { ...forward(7), listenAddress: '10.0.9.21', listenPort: 6380 },
    ],
    base,
  ],
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
        [...forwards].sort(compareListeners).map(({ targetIps: _all, ...f }) => f),
        'the port map can be rebuilt from the kernel',
      );
    });
  }
});

t.test("the kernel's copy of the map is what iptables-save prints back, and rebuilds the map", { skip }, async (t) => {
  const ns = await lab(t);
  const longId = 'c'.repeat(64);
  const state: PortState = {
    version: 1,
    entries: [
      { key: 'node/a/0001', kind: 'node', engine: 'redis', cacheClusterId: 'a', cacheNodeId: '0001', address: 'a-1.cache.example', targetPort: 6379, listenPort: 6380, tls: false },
      { key: 'node/b/0001', kind: 'node', engine: 'valkey', cacheClusterId: 'b', cacheNodeId: '0001', address: 'b-1.cache.example', targetPort: 6379, listenPort: 6381, lastIps: ['10.0.1.7'] },
      // The longest key there is, with a name that fills the comment to the last character iptables keeps.
      { key: `node/${longId}/${longId}`, kind: 'node', engine: 'memcached', cacheClusterId: longId, cacheNodeId: longId, address: `${'m'.repeat(60)}.${'m'.repeat(9)}.example`, targetPort: 11211, listenPort: 11212, tls: true },
    ],
    // A port, and a fallback's port with the address it listened on.
    released: [{ port: 6390, key: 'node/gone/0001', releasedAt: 1_700_000_000_000 }, { port: 6391, key: 'node/fell/0001', releasedAt: 1_700_000_000_002, address: '10.0.9.21' }],
    releasedAddresses: [{ address: '10.0.9.23', port: 6379, key: 'node/left/0001', releasedAt: 1_700_000_000_001 }],
  };
  const forget: FlowFilter[] = [{ kind: 'listener', listenPort: 6382, targetIp: '10.0.1.9', cause: 'moved' }, { kind: 'source', source: '203.0.113.0/24', cause: 'source' }];
  const desired = renderRules([{ key: 'node/a/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.1', targetPort: 6379 }], base);
  desired.nat['CACHENAT-MAP'] = renderMapChain(state, forget);
  t.equal(Math.max(...desired.nat['CACHENAT-MAP'].map((l) => /--comment "([^"]*)"/.exec(l)![1]!.length)), 255, 'one record is exactly 255 characters');
  await sync(ns, desired);
  t.equal(diffRules(desired, await installed(ns)).restore, null, 'read back exactly as written: the next pass writes nothing');
  const now = await installed(ns);
  const recovered = recoverState(now.nat, 5).state;
  t.same(recovered.entries.map((e) => [e.key, e.listenPort, e.tls, e.address, e.ip ?? e.lastIps]), [
    ['node/a/0001', 6380, false, 'a-1.cache.example', '10.0.1.1'],
    ['node/b/0001', 6381, undefined, 'b-1.cache.example', ['10.0.1.7']],
    [`node/${longId}/${longId}`, 11212, true, `${'m'.repeat(60)}.${'m'.repeat(9)}.example`, undefined],
  ]);
  t.same([recovered.released, recovered.releasedAddresses], [state.released, state.releasedAddresses]);
  t.same(pendingForgets(now.nat).length, 2);
  t.same(now.nat.chains.get('PREROUTING')?.rules.some((r) => r.includes('CACHENAT-MAP')), false, 'nothing jumps to it');
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

// scripts/ensure-system.sh installs conntrack; without it forgetFlows would
// quietly return 0, so the test is skipped rather than passed.
const conntrackSkip = skip || ((await runCommand('conntrack', ['--version'])).exitCode === 127 ? 'conntrack is not installed (apt-get install conntrack)' : false);

t.test('conntrack forgets exactly the flows DNATed to the old target', { skip: conntrackSkip }, async (t) => {
  const ns = await lab(t);
  // Real entries in the namespace's conntrack table, as a client's DNATed
  // connection leaves them: client -> NAT:listenPort, answered by the target.
  // Flows cachenat DNATed carry its connmark (16777216 = 0x1000000, the default).
  const flow = (clientPort: number, listenPort: number, targetIp: string, listenAddress = '10.0.0.1', client = '198.51.100.27') =>
    ['-p', 'tcp', '--src', client, '--dst', listenAddress, '--sport', String(clientPort), '--dport', String(listenPort),
      '--reply-src', targetIp, '--reply-dst', client, '--reply-port-src', '6379', '--reply-port-dst', String(clientPort)];
  const flows = {
    toOldTarget: flow(40001, 6380, '10.0.1.231'),
    toNewTarget: flow(40002, 6380, '10.0.1.232'),
    otherPortSameIp: flow(40003, 6381, '10.0.1.231'),
    // Address mode: another target on the same port, at its own address, that shares the old IP.
    otherAddressSameIp: flow(40004, 6380, '10.0.1.231', '10.0.0.2'),
    // Not cachenat's (no connmark): never touched, whatever it matches.
    unmarked: flow(40005, 6380, '10.0.1.231'),
    // Sources: two in a range that is revoked, one next to it that stays.
    revokedA: flow(40006, 6381, '10.0.1.232', '10.0.0.1', '203.0.113.9'),
    revokedB: flow(40007, 6381, '10.0.1.232', '10.0.0.1', '203.0.113.10'),
    keptSource: flow(40008, 6381, '10.0.1.232', '10.0.0.1', '203.0.113.200'),
  };
  for (const [name, args] of Object.entries(flows)) {
    // conntrack 1.4.7 -I: a --mark given before -u is overwritten by the status bits, so it comes last.
    const mark = name === 'unmarked' ? '0' : '16777216';
    const made = await ns.run('conntrack', ['-I', ...args, '--state', 'ESTABLISHED', '--timeout', '600', '-u', 'SEEN_REPLY', '--mark', mark]);
    t.equal(made.exitCode, 0, `flow ${name} created`, { stderr: made.stderr });
  }
  const clientPorts = async () => {
    const listed = await ns.run('conntrack', ['-L', '-p', 'tcp']);
    return [...listed.stdout.matchAll(/^tcp .*? sport=(\d+) /gm)].map((m) => Number(m[1])).sort();
  };
  t.same(await clientPorts(), [40001, 40002, 40003, 40004, 40005, 40006, 40007, 40008], 'eight flows in the table');

  const tool = new ConntrackTool(ns.run);
  t.equal(await tool.forgetFlows({ kind: 'listener', listenAddress: '10.0.0.2', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 1, 'address mode: one flow deleted');
  t.same(await clientPorts(), [40001, 40002, 40003, 40005, 40006, 40007, 40008], 'only the flow that came in on that address');
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 1, 'one flow deleted');
  t.same(await clientPorts(), [40002, 40003, 40005, 40006, 40007, 40008], 'the flow to the old target is gone; the new target, the other port and the unmarked flow kept theirs');
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 0, 'nothing left to delete (conntrack exits 1: not an error)');
  t.equal(await tool.forgetFlows({ kind: 'source', source: '203.0.113.0/25', cause: 'source' }), 2, 'a source range: two flows deleted');
  t.same(await clientPorts(), [40002, 40003, 40005, 40008], 'those from the range; one from outside it stays');
  t.ok(tool.available, 'the tool was found');
});

// The legacy backend serialises writers with the xtables lock (nf_tables takes
// none). cachenat restores with `-w 5`: it waits for a lock that is released
// soon, and reports one held longer as a retryable error that names it (the
// daemon retries on the next pass). The lock file is the test's own
// (XTABLES_LOCKFILE), so the host's /run/xtables.lock is never held.
const legacySkip = skip || ((await runCommand('iptables-legacy-restore', ['--version'])).exitCode === 127 ? 'iptables-legacy-restore is not installed (Debian: apt-get install iptables)' : false);

t.test('legacy backend: the restore waits for the xtables lock, and names it when held too long', { skip: legacySkip }, async (t) => {
  const ns = await lab(t);
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-xtlock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lockFile = join(dir, 'xtables.lock');
  const legacyRun: CommandRunner = (file, args, options) =>
    ns.run('env', [`XTABLES_LOCKFILE=${lockFile}`, file.replace(/^iptables(-save|-restore)?$/, 'iptables-legacy$1'), ...args], options);
  const legacy: Lab = { run: legacyRun, netfilter: new IptablesNetfilter(legacyRun) };

  const lockFree = async () => (await runCommand('flock', ['-n', lockFile, 'true'])).exitCode === 0;
  const holdLock = async (t: Test) => {
    // --no-fork: flock becomes the sleep, so killing it releases the lock (a
    // forked child would inherit the lock and keep holding it).
    const holder = spawn('flock', ['--no-fork', lockFile, 'sleep', '60'], { stdio: 'ignore' });
    const exited = once(holder, 'exit');
    const release = async () => {
      holder.kill('SIGKILL');
      await exited;
    };
    t.teardown(release);
    for (let tries = 0; (await lockFree()) && tries < 200; tries++) await new Promise((r) => setTimeout(r, 25));
    t.notOk(await lockFree(), 'another program holds the xtables lock');
    return release;
  };
  const dnatLines = async () => (await legacy.netfilter.save('nat')).split('\n').filter((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes(' -j DNAT ')).length;

  await t.test('released within the wait: the restore applies after it', async (t) => {
    const release = await holdLock(t);
    const started = Date.now();
    let settled = false;
    const applying = sync(legacy, renderRules([forward(1)], base)).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1500));
    t.notOk(settled, 'still waiting for the lock after 1.5 s');
    await release();
    await applying;
    t.ok(Date.now() - started >= 1500, `applied ${Date.now() - started} ms after it started, once the lock was free`);
    t.equal(await dnatLines(), 1, 'the forward is installed in the legacy backend');
  });

  await t.test('held past the wait: a retryable KernelError that names the lock; the next try applies', async (t) => {
    const release = await holdLock(t);
    const started = Date.now();
    const err = await sync(legacy, renderRules([forward(1), forward(2)], base)).then(
      () => undefined,
      (e: unknown) => e,
    );
    const waited = Date.now() - started;
    t.type(err, KernelError);
    t.ok(err instanceof KernelError && err.retryable, 'retryable');
    t.match((err as Error).message, /xtables lock.*retried on the next pass/s, 'says the lock is held and that it is retried');
    t.ok(waited >= 4500, `gave up after waiting ${waited} ms (-w 5)`);
    t.equal(await dnatLines(), 1, 'nothing changed meanwhile');
    await release();
    await sync(legacy, renderRules([forward(1), forward(2)], base));
    t.equal(await dnatLines(), 2, 'the next try, with the lock free, applies');
  });
});
