// One reconcile pass against honest fakes: a simulated kernel that applies the
// restore text the way iptables-restore --noflush would, a scripted API, DNS
// answers from a table, a real StateStore in a temp dir.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Reconciler, type ReconcilerEdges } from '../../src/daemon/reconciler.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import { createLogger } from '../../src/log/logger.js';
import type { DiscoveredTarget, Topology } from '../../src/core/model.js';
import { StateStore } from '../../src/ports/state-store.js';
import { applyRestore, emptyKernel, ruleLines, saveText } from '../support/kernel-sim.js';
import { scratchDir } from '../support/scratch.js';

const { config } = parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\n', 'test');

const node = (cluster: string, ip: string): DiscoveredTarget => ({
  key: `node/${cluster}/0001`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: '0001', address: ip, targetPort: 6379,
});

function rig(answers: (Topology | Error)[]) {
  let kernel = emptyKernel();
  const restores: string[] = [];
  const saveAllCalls: ({ counters?: boolean } | undefined)[] = [];
  const packets = new Map<number, number>();
  const logs: { level: number; msg: string }[] = [];
  const dir = scratchDir(t, 'reconciler');
  const edges: ReconcilerEdges = {
    netfilter: {
      save: async () => saveText(kernel),
      saveAll: async (options) => (saveAllCalls.push(options), saveText(kernel, undefined, options?.counters ? packets : undefined)),
      restore: async (text) => {
        restores.push(text);
        kernel = applyRestore(kernel, text);
      },
    },
    conntrack: { available: true, forgetFlows: async () => 0 },
    source: {
      describe: async () => {
        const next = answers.length > 1 ? answers.shift()! : answers[0]!;
        if (next instanceof Error) throw next;
        return next;
      },
    },
    resolver: { resolve: async (name) => ({ ok: true, ip: name }) },
    store: new StateStore(dir),
    clock: { now: () => 1_000_000 },
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } }),
  };
  return { edges, restores, logs, dir, kernel: () => kernel, setKernel: (next: typeof kernel) => void (kernel = next), saveAllCalls, packets };
}

t.test('first pass writes once; an unchanged second pass writes nothing', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1'), node('b', '10.0.1.2')], skipped: [] }]);
  const reconciler = new Reconciler(config, r.edges);
  const first = await reconciler.pass({ discover: true, write: true });
  t.equal(first.applied, true);
  t.same(first.plan.forwards.map((f) => f.listenPort), [6379, 6380]);
  const second = await reconciler.pass({ discover: true, write: true });
  t.equal(second.applied, false);
  t.equal(r.restores.length, 1, 'one iptables-restore in two passes');
});

t.test('plan mode computes the same pass and writes nothing', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }]);
  const report = await new Reconciler(config, r.edges).pass({ discover: true, write: false });
  t.not(report.plan.changes.restore, null);
  t.equal(r.restores.length, 0);
  t.equal((await r.edges.store.load()).status, 'missing');
});

t.test('fail-static: an API error keeps every forward and reports the error', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }, new DiscoveryError('boom', 'InternalFailure', true)]);
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  const failed = await reconciler.pass({ discover: true, write: true });
  t.equal(failed.discovery.status, 'failed');
  t.same(failed.plan.forwards.map((f) => [f.key, f.state]), [['node/a/0001', 'active']]);
  t.equal(reconciler.lastSyncError?.code, 'InternalFailure');
});

t.test('an answer that suddenly lists nothing: draining, and one warning naming aws.region', async (t) => {
  const empty: Topology = { targets: [], skipped: [] };
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }, empty]);
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  const drained = await reconciler.pass({ discover: true, write: true });
  await reconciler.pass({ discover: true, write: true });
  t.same(drained.plan.forwards.map((f) => f.state), ['draining']);
  const warnings = r.logs.filter((l) => l.level === 40 && /lists no caches at all/.test(l.msg));
  t.equal(warnings.length, 1, 'warned once for the episode');
  t.match(warnings[0]?.msg, /aws\.region/);
});

t.test('a port map that cannot be written is reported, forwarding goes on, and it clears once writable', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }]);
  const reconciler = new Reconciler(config, r.edges);
  // A state dir below a regular file can never be created, root or not.
  writeFileSync(join(r.dir, 'not-a-dir'), '');
  r.edges.store = new StateStore(join(r.dir, 'not-a-dir', 'state'));
  const report = await reconciler.pass({ discover: true, write: true });
  t.equal(report.applied, true, 'the kernel is still written');
  t.match(reconciler.diskErrors.get('state'), /cannot save the port map/);
  r.edges.store = new StateStore(r.dir);
  await reconciler.pass({ discover: true, write: true });
  t.equal(reconciler.diskErrors.size, 0);
});

t.test('one kernel read per pass, with counters: the DNAT packet counts come with it and the plan ignores them', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1'), node('b', '10.0.1.2')], skipped: [] }]);
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true }); // a first start without a port map also reads the rules to rebuild it
  r.packets.set(6379, 4);
  const readsBefore = r.saveAllCalls.length;
  const second = await reconciler.pass({ discover: true, write: true });
  t.same(r.saveAllCalls.slice(readsBefore), [{ counters: true }], 'exactly one iptables-save -c per pass, no second read');
  t.same([...second.dnatPackets!], [['6379 node/a/0001', 4], ['6380 node/b/0001', 0]]);
  t.equal(second.applied, false, 'counters that moved are not a change to write');
});

t.test('a move: the flows to the old address are forgotten after the write, not before; a failed write keeps them for the next pass', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }, { targets: [node('a', '10.0.1.2')], skipped: [] }]);
  const calls: string[] = [];
  let failNext = false;
  const restore = r.edges.netfilter.restore;
  r.edges.netfilter.restore = async (text) => {
    calls.push('restore');
    if (failNext) {
      failNext = false;
      throw new Error('iptables-restore: exit 1 (test)');
    }
    await restore(text);
  };
  r.edges.conntrack = { available: true, forgetFlows: async (filter) => (calls.push(`forget ${JSON.stringify(filter)}`), 2) };
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  calls.length = 0;
  failNext = true;
  const failed = await reconciler.pass({ discover: true, write: true });
  t.ok(failed.kernelError, 'the write failed');
  t.same(calls, ['restore'], 'nothing forgotten: the old rule still sends clients to 10.0.1.1');
  calls.length = 0;
  const next = await reconciler.pass({ discover: true, write: true });
  t.same(calls, ['restore', 'forget {"kind":"listener","listenPort":6379,"targetIp":"10.0.1.1","cause":"moved"}'], 'the map already says 10.0.1.2; the kernel still said 10.0.1.1: the move is found again');
  t.same(next.flowsForgotten, { moved: 2, revoked: 0 });
  t.match(r.logs.filter((l) => /^forgot /.test(l.msg)), [{ msg: 'forgot 2 connections through port 6379 to 10.0.1.1 (the target moved)', level: 30 }]);
  t.match(r.kernel().nat.chains.get('CACHENAT-MAP')?.rules, ['-A CACHENAT-MAP -m comment --comment "cachenat entry node/a/0001 redis :6379 6379 - 10.0.1.2"', '-A CACHENAT-MAP -m comment --comment "cachenat forget moved :6379 10.0.1.1"'], 'the kernel records the flows with the change');
  calls.length = 0;
  await reconciler.pass({ discover: true, write: true });
  t.same(calls, ['restore'], 'once forgotten, the record is cleared, and nothing is forgotten twice');
  t.same(r.kernel().nat.chains.get('CACHENAT-MAP')?.rules, ['-A CACHENAT-MAP -m comment --comment "cachenat entry node/a/0001 redis :6379 6379 - 10.0.1.2"']);
});

t.test('a process that died after the write and before forgetting: its successor forgets first, then clears the record', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }, { targets: [node('a', '10.0.1.2')], skipped: [] }]);
  const forgotten: string[] = [];
  let conntrackDown = false;
  r.edges.conntrack = {
    available: true,
    forgetFlows: async (filter) => {
      if (conntrackDown) throw new Error('conntrack: Operation not permitted');
      forgotten.push(JSON.stringify(filter));
      return 1;
    },
  };
  await new Reconciler(config, r.edges).pass({ discover: true, write: true });
  conntrackDown = true; // stands in for a kill between the write and the flush: the flows are not forgotten
  await new Reconciler(config, r.edges).pass({ discover: true, write: true });
  t.same(forgotten, []);
  t.match(r.logs.filter((l) => l.level === 40).map((l) => l.msg), [/^could not forget the connections through port 6379 to 10\.0\.1\.1 \(the target moved\); retrying next pass/]);
  conntrackDown = false;
  const restarted = await new Reconciler(config, r.edges).pass({ discover: true, write: true });
  t.same(forgotten, ['{"kind":"listener","listenPort":6379,"targetIp":"10.0.1.1","cause":"moved"}'], 'forgotten by the next process, from the record in the kernel');
  t.equal(restarted.applied, true, 'and the record cleared by its write');
  t.same(r.kernel().nat.chains.get('CACHENAT-MAP')?.rules.filter((l) => l.includes('forget')), []);
});

t.test('a port range that runs out: said once, not every pass; the plan names the targets for status, health and metrics', async (t) => {
  const { config: tight } = parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\nports: {redis: 65535}\n', 'test');
  const r = rig([{ targets: [node('a', '10.0.1.1'), node('b', '10.0.1.2'), node('c', '10.0.1.3')], skipped: [] }]);
  const reconciler = new Reconciler(tight, r.edges);
  const first = await reconciler.pass({ discover: true, write: true });
  await reconciler.pass({ discover: true, write: true });
  await reconciler.pass({ discover: true, write: true });
  t.same(first.plan.withoutPort, ['node/b/0001', 'node/c/0001']);
  const warned = r.logs.filter((l) => l.level === 40);
  t.same(warned.map((l) => l.msg), ['2 targets found no free port and are not forwarded (node/b/0001, node/c/0001); lower ports.redis / ports.memcached or exclude clusters']);
});

t.test('lookups: moving names every dns.interval, node names every discovery.interval, failed names every dns.interval', async (t) => {
  const primary: DiscoveredTarget = { key: 'primary/g', kind: 'primary', engine: 'redis', replicationGroupId: 'g', address: 'g.primary.example', targetPort: 6379 };
  const member: DiscoveredTarget = { ...node('a', 'a-0001.node.example'), replicationGroupId: 'g' };
  const r = rig([{ targets: [primary, member], skipped: [] }]);
  let now = 1_000_000;
  const asked: string[][] = [];
  let failing = new Set<string>();
  r.edges.clock = { now: () => now };
  r.edges.resolver = { resolve: async (name) => (asked.at(-1)!.push(name), failing.has(name) ? { ok: false, error: 'ENOTFOUND' } : { ok: true, ip: name.startsWith('g.') ? '10.0.1.1' : '10.0.1.2' }) };
  const reconciler = new Reconciler(config, r.edges); // defaults: dns.interval 5 s, discovery.interval 30 s
  const pass = async (atS: number, discover = false) => {
    now = 1_000_000 + atS * 1000 + (atS % 7); // a pass starts a few ms off the beat
    asked.push([]);
    await reconciler.pass({ discover, write: true });
    return asked.at(-1)!.sort();
  };
  t.same(await pass(0, true), ['a-0001.node.example', 'g.primary.example'], 'the first pass asks both');
  for (const at of [5, 10, 15, 20, 25]) t.same(await pass(at, at === 15), ['g.primary.example'], `${at} s: only the primary's name, API pass or not`);
  t.same(await pass(30, true), ['a-0001.node.example', 'g.primary.example'], '30 s: the node name again');
  t.same(await pass(32), [], 'a pass sooner than dns.interval (a reload) asks nothing');
  failing = new Set(['a-0001.node.example']);
  t.same(await pass(60), ['a-0001.node.example', 'g.primary.example']);
  t.same(await pass(65), ['a-0001.node.example', 'g.primary.example'], 'a name that failed is asked again at the next dns.interval');
  failing = new Set();
  t.same(await pass(70), ['a-0001.node.example', 'g.primary.example'], 'and answers');
  t.same(await pass(75), ['g.primary.example'], 'then it is back to every discovery.interval');
  t.same(await pass(100), ['a-0001.node.example', 'g.primary.example']);
  t.equal(asked.length, 13);
});

t.test('partial syncs: a pass between API passes reads the kernel only to write, or once the last read is discovery.interval old', async (t) => {
  const primary: DiscoveredTarget = { key: 'primary/g', kind: 'primary', engine: 'redis', replicationGroupId: 'g', address: 'g.primary.example', targetPort: 6379 };
  const r = rig([{ targets: [primary, node('a', '10.0.1.1')], skipped: [] }]);
  let now = 1_000_000;
  let primaryIp = '10.0.2.1';
  r.edges.clock = { now: () => now };
  r.edges.resolver = { resolve: async (name) => ({ ok: true, ip: name === primary.address ? primaryIp : name }) };
  const reconciler = new Reconciler(config, r.edges); // dns.interval 5 s, discovery.interval 30 s
  const pass = async (atS: number, discover = false) => {
    now = 1_000_000 + atS * 1000;
    const reads = r.saveAllCalls.length;
    const restores = r.restores.length;
    const report = await reconciler.pass({ discover, write: true });
    t.notOk(report.kernelError);
    return { reads: r.saveAllCalls.length - reads, writes: r.restores.length - restores, counted: report.dnatPackets !== undefined };
  };
  t.same(await pass(0, true), { reads: 2, writes: 1, counted: true }, 'the first pass also reads to look for ports to recover, and writes the first rules');
  t.same(await pass(5), { reads: 1, writes: 0, counted: true }, 'the pass after a write reads what it wrote');
  t.same(await pass(10), { reads: 0, writes: 0, counted: false }, 'a quiet pass plans from the last read: no read, no counters');
  primaryIp = '10.0.2.2';
  t.same(await pass(15), { reads: 1, writes: 1, counted: true }, 'a failover: read before the write');
  t.match(r.restores.at(-1), /10\.0\.2\.2/);
  t.same(await pass(20), { reads: 1, writes: 1, counted: true }, 'the next write clears the kernel\'s record of the flows the move forgot');
  t.same(await pass(25), { reads: 1, writes: 0, counted: true });
  t.same(await pass(30), { reads: 0, writes: 0, counted: false });

  // Someone flushes every cachenat rule: quiet passes cannot see it; the first pass that reads puts them back.
  const installed = r.kernel();
  r.setKernel(emptyKernel());
  t.same(await pass(35), { reads: 0, writes: 0, counted: false }, 'not yet discovery.interval since the last read at 25 s');
  t.same(await pass(55), { reads: 1, writes: 1, counted: true }, 'discovery.interval after the last read, the pass reads and restores, API or not');
  t.same(ruleLines(r.kernel()), ruleLines(installed), 'the same rules as before the flush');
  t.same(await pass(60), { reads: 1, writes: 0, counted: true });
  r.setKernel(emptyKernel());
  t.same(await pass(65, true), { reads: 1, writes: 1, counted: true }, 'an API pass always reads');
  t.same(ruleLines(r.kernel()), ruleLines(installed));
});

t.test('partial syncs: a reload and a failed write make the next pass read', async (t) => {
  const r = rig([{ targets: [node('a', '10.0.1.1')], skipped: [] }]);
  let now = 1_000_000;
  r.edges.clock = { now: () => now };
  const reconciler = new Reconciler(config, r.edges);
  const reads = async (atS: number) => {
    now = 1_000_000 + atS * 1000;
    const before = r.saveAllCalls.length;
    await reconciler.pass({ discover: false, write: true });
    return r.saveAllCalls.length - before;
  };
  await reconciler.pass({ discover: true, write: true });
  t.equal(await reads(5), 1);
  t.equal(await reads(10), 0);
  reconciler.reconfigure(config, r.edges);
  t.equal(await reads(15), 1, 'after a reload');
  t.equal(await reads(20), 0);
  // The kernel loses the rules and the restore that would put them back fails once.
  r.setKernel(emptyKernel());
  const restore = r.edges.netfilter.restore;
  r.edges.netfilter.restore = async () => {
    throw new Error('iptables-restore: exit 4 (test)');
  };
  now = 1_000_000 + 50_000;
  const failed = await reconciler.pass({ discover: false, write: true });
  t.ok(failed.kernelError, 'the write failed');
  r.edges.netfilter.restore = restore;
  t.equal(await reads(55), 1, 'the pass after a failed write reads');
  t.ok(r.kernel().nat.chains.has('CACHENAT-DNAT'), 'and restores');
});

t.test('a quiet pass reuses the last plan while it holds: same inputs but the clock, before the next deadline', async (t) => {
  const { config: short } = parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\ndiscovery: {removalGrace: 20s}\n', 'test');
  const primary: DiscoveredTarget = { key: 'primary/g', kind: 'primary', engine: 'redis', replicationGroupId: 'g', address: 'g.primary.example', targetPort: 6379 };
  const r = rig([{ targets: [node('a', '10.0.1.1'), primary], skipped: [] }, { targets: [node('a', '10.0.1.1')], skipped: [] }]);
  let now = 1_000_000;
  let answerB = '10.0.1.2';
  r.edges.clock = { now: () => now };
  r.edges.resolver = { resolve: async (name) => ({ ok: true, ip: name === primary.address ? answerB : name }) };
  const reconciler = new Reconciler(short, r.edges);
  const pass = (atS: number, discover = false) => {
    now = 1_000_000 + atS * 1000;
    return reconciler.pass({ discover, write: true });
  };
  await pass(0, true);
  const settled = await pass(5);
  t.equal((await pass(10)).plan, settled.plan, 'nothing changed: the same plan, not planned again');
  answerB = '10.0.1.3';
  const moved = await pass(15);
  t.not(moved.plan, settled.plan, 'a new DNS answer: planned again');
  t.ok(moved.applied);
  answerB = '10.0.1.2';
  await pass(20);
  await pass(25);
  const draining = await pass(30, true); // the API no longer lists the primary: its removal grace (20 s) starts
  t.ok(draining.plan.events.some((e) => e.type === 'draining'));
  const held = await pass(35);
  t.equal((await pass(45)).plan, held.plan, 'while it drains, the plan holds');
  const released = await pass(50); // 20 s after the grace started
  t.not(released.plan, held.plan, 'at the deadline it is made again');
  t.ok(released.plan.events.some((e) => e.type === 'removed'), 'and it is removed');
  t.same(released.plan.forwards.map((f) => f.key), ['node/a/0001']);
});

t.test('an API pass with the same answer and the same rules reuses the plan; rules someone removed are put back', async (t) => {
  const answer: Topology = { targets: [node('a', '10.0.1.1'), node('b', '10.0.1.2')], skipped: [] };
  const r = rig([answer]);
  r.edges.source = { describe: async () => structuredClone(answer) }; // an equal answer, never the same object
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  const settled = await reconciler.pass({ discover: true, write: true });
  const again = await reconciler.pass({ discover: true, write: true });
  t.equal(again.plan, settled.plan, 'nothing changed: the same plan object, not planned again');
  t.equal(r.restores.length, 1);
  const installed = r.kernel();
  const dnat = installed.nat.chains.get('CACHENAT-DNAT')!;
  r.setKernel({ ...installed, nat: { chains: new Map([...installed.nat.chains, ['CACHENAT-DNAT', { ...dnat, rules: dnat.rules.slice(0, 1) }]]) } });
  const repaired = await reconciler.pass({ discover: true, write: true });
  t.not(repaired.plan, settled.plan, 'the kernel changed under it: planned again');
  t.equal(repaired.applied, true, 'and written');
  t.same(r.kernel().nat.chains.get('CACHENAT-DNAT')!.rules, dnat.rules, 'the removed rules are back');
  const answerMoved: Topology = { targets: [node('a', '10.0.1.1'), node('b', '10.0.1.9')], skipped: [] };
  r.edges.source = { describe: async () => structuredClone(answerMoved) };
  const moved = await reconciler.pass({ discover: true, write: true });
  t.equal(moved.applied, true, 'a different answer is planned and written');
  t.ok(ruleLines(r.kernel()).some((l) => l.includes('10.0.1.9')));
});
