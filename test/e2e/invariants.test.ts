// A client always reaches the cache it dialled, shown with the real kernel:
// clients that hold one connection open (lab/held-connection.ts), the real
// daemon, real redis-servers behind the NAT namespace. Each case is one of
// the promises the model-based search checks (test/invariants), where only a
// kernel can show it:
//
//   - narrowing allowedSources with SIGHUP cuts the removed source's open
//     connection within one pass, and not the kept source's;
//   - a failover whose first kernel write fails, and one where the daemon is
//     killed between saving the map and the kernel write: once a write
//     succeeds, the connection to the old primary is cut and new ones reach
//     the new primary (faults injected at the netfilter edge: a stand-in for
//     iptables-restore first on the daemon's PATH);
//   - ports.json deleted with refused and unresolved targets: after a restart
//     no target changes port;
//   - address mode with one listen address: a target removed, its grace over,
//     another added, the first back: the first gets its listener back and the
//     newcomer never answers on it.

import t from 'tap';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsStub } from '../../lab/dns-stub.js';
import { compiledLabFile } from '../../lab/lab.js';
import type { LabProcess } from '../../lab/process.js';
import { baseTopology, NAME, portsOf, startRig, stretch, waitFor, type LabRig, type LabSettings } from '../../lab/rig.js';
import { fakeBin, logLines, startDaemon } from '../hardening/lab-daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : false;
const REAL_RESTORE = ['/usr/sbin/iptables-restore', '/sbin/iptables-restore'].find((p) => existsSync(p));
const CLIENT = '198.18.0.10';
const ROGUE = '198.18.0.20';
const BOTH: LabSettings = { allowedSources: [`${CLIENT}/32`, `${ROGUE}/32`] };

interface Event {
  event: 'connected' | 'answer' | 'closed';
  value?: string;
  error?: string;
  at: number;
}

/** A connection held open from a client namespace; resolves once it has answered. */
async function hold(rig: LabRig, from: 'client' | 'rogue', host: string, port: number) {
  const { lab } = rig;
  const proc: LabProcess = lab.spawnIn(lab.ns[from], process.execPath, [compiledLabFile('held-connection.js'), host, String(port)], { label: `held ${from}→${host}:${port}`, env: { NODE_OPTIONS: '' } });
  const events = (): Event[] => proc.stdout.flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Event] : []));
  await proc.waitForLine(/"event":"answer"/, stretch(10_000));
  return {
    proc,
    /** The last value answered. */
    last: () => events().filter((e) => e.event === 'answer').at(-1)?.value,
    closed: () => events().find((e) => e.event === 'closed'),
    /** Answers after `since` (epoch ms). */
    answersSince: (since: number) => events().filter((e) => e.event === 'answer' && e.at > since).map((e) => e.value),
    stop: () => proc.kill(),
  };
}

const statePath = (rig: LabRig) => join(rig.dir, 'state', 'ports.json');
const primaryIpInMap = (rig: LabRig) => (JSON.parse(readFileSync(statePath(rig), 'utf8')) as { entries: { key: string; ip?: string }[] }).entries.find((e) => e.key === 'primary/orders')?.ip;
const dnatOf = async (rig: LabRig, port: number) => new RegExp(`--dport ${port} .*--to-destination (\\S+):`).exec((await rig.save('nat')).split('\n').find((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes(`--dport ${port} `)) ?? '')?.[1];

t.test('the promise, with the real kernel', { skip }, async (t) => {
  process.env.NODE_OPTIONS = ''; // the runner's loaders would slow every lab program
  const started = Date.now();
  const rig = await startRig({ listenAddresses: 1, settings: { ...BOTH, listenAddresses: [] } });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const fail = join(rig.dir, 'restore-fails');
  const kill = join(rig.dir, 'restore-kills');
  const attempts = join(rig.dir, 'restore-attempts');
  // The netfilter edge: a stand-in for iptables-restore that fails (exit 1) while `fail` exists, and kills
  // the daemon that called it (SIGKILL, before the real restore runs) while `kill` exists.
  const bin = fakeBin(join(rig.dir, 'fakebin'), {
    'iptables-restore': `
const { appendFileSync, existsSync } = require('node:fs');
if (existsSync(${JSON.stringify(kill)})) {
  appendFileSync(${JSON.stringify(attempts)}, 'kill ' + Date.now() + '\\n');
  process.kill(process.ppid, 'SIGKILL');
  process.exit(1);
}
if (existsSync(${JSON.stringify(fail)})) {
  appendFileSync(${JSON.stringify(attempts)}, 'fail ' + Date.now() + '\\n');
  process.stderr.write('iptables-restore: line 2 failed (simulated)\\n');
  process.exit(1);
}
const r = require('node:child_process').spawnSync(${JSON.stringify(REAL_RESTORE)}, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);`,
  });
  writeFileSync(join(bin, 'package.json'), '{"type":"commonjs"}');
  const env = { PATH: `${bin}:${process.env.PATH}` };
  let daemon = await startDaemon(rig, { env });
  await waitFor('forwarding', async () => (await rig.probe('client', 6379)) === 'redis-11');
  const ports = portsOf(await rig.status());
  t.equal(ports['primary/orders'], 6379);

  await t.test('allowedSources narrowed by SIGHUP: the removed source is cut within one pass, the kept one is not', async (t) => {
    const kept = await hold(rig, 'client', lab.addr.natExt, 6379);
    const removed = await hold(rig, 'rogue', lab.addr.natExt, 6379);
    t.equal(removed.last(), 'redis-11', 'both sources are served');
    rig.configure({ listenAddresses: [] }); // allowedSources: the client alone
    const mark = daemon.mark();
    const sighup = Date.now();
    daemon.kill('SIGHUP');
    const closed = await waitFor('the removed source cut', () => removed.closed(), stretch(10_000), 50);
    const forgot = await waitFor('the log line', () => logLines(daemon, mark).find((l) => /^forgot \d+ connections? from 198\.18\.0\.20\/32/.test(l.msg)), 5_000);
    const applied = await waitFor('the pass that narrowed the rules', () => logLines(daemon, mark).find((l) => l.msg === 'rules updated'), 5_000);
    t.ok(forgot.time <= applied.time, 'cut in the pass that wrote the narrowed rules');
    t.match(forgot, { msg: /^forgot 1 connection from 198\.18\.0\.20\/32 \(forward\.allowedSources no longer lists it\)/, reason: 'revoked', cause: 'source', flows: 1 });
    t.match(closed.error, /ECONNRESET|closed by the other end|no answer/, `closed ${closed.at - sighup} ms after SIGHUP: ${closed.error}`);
    await new Promise((r) => setTimeout(r, 1_000));
    t.notOk(kept.closed(), 'the kept source still has its connection');
    t.ok(kept.answersSince(closed.at).length >= 2 && kept.answersSince(closed.at).every((v) => v === 'redis-11'), 'and it keeps answering');
    t.comment(`the removed source's connection closed ${closed.at - sighup} ms after SIGHUP (${closed.error})`);
    kept.stop();
  });

  await t.test('a failover whose first kernel write fails: the old primary\'s connection is cut once a write succeeds', async (t) => {
    const before = await hold(rig, 'client', lab.addr.natExt, 6379);
    t.equal(before.last(), 'redis-11');
    writeFileSync(fail, '');
    lab.setHost(NAME.primary, '198.19.0.12'); // the failover: the primary name moves to redis-12
    await waitFor('the map saved with the new address', () => primaryIpInMap(rig) === '198.19.0.12', stretch(10_000));
    await waitFor('two failed writes', () => (existsSync(attempts) ? readFileSync(attempts, 'utf8') : '').split('\n').filter((l) => l.startsWith('fail ')).length >= 2, stretch(10_000));
    t.equal(await dnatOf(rig, 6379), '198.19.0.11', 'the kernel still has the old rule');
    t.equal(before.closed(), undefined, 'the connection is not cut before the rule changes');
    const fixed = Date.now();
    rmSync(fail);
    const closed = await waitFor('the old primary\'s connection cut', () => before.closed(), stretch(10_000), 50);
    t.equal(await dnatOf(rig, 6379), '198.19.0.12', 'the new rule is in');
    t.equal(await rig.probe('client', 6379), 'redis-12', 'a new connection reaches the new primary');
    t.comment(`cut ${closed.at - fixed} ms after iptables-restore worked again (${closed.error})`);
  });

  await t.test('a failover where the daemon is killed between saving the map and the kernel write', async (t) => {
    const before = await hold(rig, 'client', lab.addr.natExt, 6379);
    t.equal(before.last(), 'redis-12');
    writeFileSync(kill, '');
    lab.setHost(NAME.primary, '198.19.0.11'); // failing back
    const exit = await daemon.exited;
    t.equal(exit.signal, 'SIGKILL', 'killed by the stand-in, at the kernel write');
    rmSync(kill);
    t.equal(primaryIpInMap(rig), '198.19.0.11', 'the map was saved first');
    t.equal(await dnatOf(rig, 6379), '198.19.0.12', 'the kernel was not written');
    t.equal(before.last(), 'redis-12');
    const restarted = Date.now();
    daemon = await startDaemon(rig, { env });
    const closed = await waitFor('the old primary\'s connection cut', () => before.closed(), stretch(10_000), 50);
    t.equal(await dnatOf(rig, 6379), '198.19.0.11');
    t.equal(await rig.probe('client', 6379), 'redis-11', 'a new connection reaches the new primary');
    t.ok(logLines(daemon).some((l) => /^forgot \d+ connections? through port 6379 to 198\.19\.0\.12 \(the target moved\)/.test(l.msg)), "the restarted daemon says so");
    t.comment(`cut ${closed.at - restarted} ms after the restart (${closed.error})`);
  });

  await t.test('ports.json deleted with refused and unresolved targets: after a restart no target changes port', async (t) => {
    // sessions speaks TLS (never refused); every other cache is plaintext and 198.18.0.10 is not private: refused.
    const topology = baseTopology();
    for (const c of topology.clusters) c.tls = c.id === 'sessions';
    for (const g of topology.replicationGroups ?? []) g.tls = false;
    await rig.setTopology(topology);
    rig.configure({ listenAddresses: [], plaintext: 'refuse' });
    daemon.kill('SIGHUP');
    // The name is deleted, as a VPC resolver says it (NXDOMAIN), not a silent resolver.
    const stub = await startDnsStub(lab, lab.ns.nat, 'nxdomain');
    t.teardown(() => stub.stop(1000));
    lab.removeHost(NAME.sessions1);
    const refusedAndUnresolved = await waitFor(
      'every plaintext target refused, sessions unresolved',
      async () => {
        const s = await rig.status();
        const states = Object.fromEntries(s.forwards.map((f) => [f.key, f.state]));
        return states['node/sessions/0001'] === 'unresolved' && s.forwards.filter((f) => f.state === 'refused').length === 7 ? s : undefined;
      },
      stretch(15_000),
    );
    const before = portsOf(refusedAndUnresolved);
    t.same(before, ports, 'still the ports they had');
    t.same((await rig.save('nat')).split('\n').filter((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes('DNAT --to')), [], 'no target has a rule');
    await daemon.stop();
    rmSync(statePath(rig));
    daemon = await startDaemon(rig, { env });
    t.ok(logLines(daemon).some((l) => /^no port map on disk; rebuilt 8 ports from the kernel's copy of the map/.test(l.msg)), 'rebuilt from the kernel');
    t.same(portsOf(await rig.status()), before, 'no target changed port');
    rig.configure({ listenAddresses: [] });
    daemon.kill('SIGHUP');
    lab.setHost(NAME.sessions1, '198.19.0.13');
    await waitFor('everyone served again', async () => (await rig.status()).forwards.every((f) => f.state === 'active'), stretch(15_000));
    t.equal(await rig.probe('client', ports['primary/orders']!), 'redis-11', 'the primary through its own port');
    t.equal(await rig.probe('client', ports['node/sessions/0001']!), 'redis-13', 'sessions through its own port');
    t.equal(await rig.probe('client', ports['node/orders-001/0001']!), 'redis-11');
    t.equal(await rig.probe('client', ports['node/orders-002/0001']!), 'redis-12');
  });

  await t.test('address mode, one listen address: the first target gets its listener back; the newcomer never answers on it', async (t) => {
    await daemon.stop();
    const flushed = await rig.cli(['flush']);
    t.equal(flushed.exitCode, 0, flushed.stderr);
    rmSync(statePath(rig));
    const [address] = rig.listenAddresses;
    const sessions = { id: 'sessions', engine: 'valkey', nodes: [{ id: '0001', address: NAME.sessions1, port: 6379 }] };
    const orders = { id: 'orders-001', engine: 'redis', nodes: [{ id: '0001', address: NAME.orders1, port: 6379 }] };
    await rig.setTopology({ clusters: [sessions] });
    rig.configure({ listenAddresses: [address!] });
    daemon = await startDaemon(rig, { env });
    const listenerOf = async (key: string) => {
      const f = (await rig.status()).forwards.find((x) => x.key === key);
      return f && `${f.listenAddress}:${f.listenPort}`;
    };
    const dialled = async () => {
      const r = await lab.probe(lab.ns.client, address!, 6379, 'redis', 1_500);
      return r.ok ? r.value : `(${r.error})`;
    };
    t.equal(await listenerOf('node/sessions/0001'), `${address}:6379`);
    t.equal(await dialled(), 'redis-13');
    await rig.setTopology({ clusters: [] });
    await waitFor('sessions removed after its grace', async () => (await rig.status()).forwards.length === 0, stretch(15_000));
    await rig.setTopology({ clusters: [orders] });
    await waitFor('the newcomer placed', () => listenerOf('node/orders-001/0001'), stretch(10_000));
    const newcomer = await listenerOf('node/orders-001/0001');
    t.not(newcomer, `${address}:6379`, `the newcomer falls back to ${newcomer}, not the quarantined listener`);
    t.notSame(await dialled(), 'redis-11', `a client of sessions dialling ${address}:6379 does not reach the newcomer: ${await dialled()}`);
    await rig.setTopology({ clusters: [sessions, orders] });
    await waitFor('sessions back', async () => (await listenerOf('node/sessions/0001')) === `${address}:6379`, stretch(10_000));
    t.equal(await dialled(), 'redis-13', 'its listener answers for it again');
    t.equal(await listenerOf('node/orders-001/0001'), newcomer, 'the newcomer kept its own');
    const there = await lab.probe(lab.ns.client, address!, Number(newcomer!.split(':')[1]), 'redis', 4_000);
    t.equal(there.value, 'redis-11', 'and answers there');
  });

  t.comment(`lab wall time ${Math.round((Date.now() - started) / 1000)} s`);
});
