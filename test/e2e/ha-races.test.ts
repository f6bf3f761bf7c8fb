// Issue #12's races, end to end in the two-NAT lab (lab/ha-rig.ts), with the
// daemon's HA side (src/ha/ha-node.ts) doing the work:
//
// 1. Both daemons started at the same moment on an empty group with 200
//    targets: one leader, 200 distinct ports, identical rules on both hosts.
// 2. The leader paused (SIGSTOP) past its lease while the standby takes over
//    and allocates a new target; resumed, it steps down and follows.
// 3. DynamoDB unreachable for three leases: forwarding and the Elastic IP stay
//    where they are, a new target waits, the leader says its lease is not
//    confirmed (health CRITICAL); all back afterwards.

import t, { type Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledLabFile } from '../../lab/lab.js';
import { HA_LEASE_DEFAULT, haConfigYaml, NAT_NAMES, startHaRig, type HaRig, type NatName } from '../../lab/ha-rig.js';
import { labConfig, stretch, waitFor } from '../../lab/rig.js';
import type { FakeCluster, FakeTopology } from '../../lab/fake-elasticache-model.js';
import type { LeaseRead } from '../../src/core/ha/lease.js';
import type { MapItem } from '../../src/core/ha/items.js';
import type { StoreRead } from '../../src/ha/dynamo-store.js';
import type { HaStatus } from '../../src/core/daemon/status-snapshot.js';
import { renewEveryMs, watchEveryMs } from '../../src/core/ha/timing.js';
import { DNAT_RULE_PATTERN } from '../../src/core/grammar.js';

const TARGETS = 200;
const REDIS_TARGETS = 120;
const MEMCACHED_TARGETS = TARGETS - REDIS_TARGETS;
const LEASE_MS = 4_000;
const TABLE = 'cachenat';
/** How many times the start race runs, each on a fresh group with fresh state on both hosts (CACHENAT_RACE_ROUNDS overrides). */
const RACE_ROUNDS = Number(process.env.CACHENAT_RACE_ROUNDS ?? 3);

const REDIS_IPS = ['198.19.0.11', '198.19.0.12', '198.19.0.13', '198.19.0.14'];
const MEMCACHED_IPS = ['198.19.0.21', '198.19.0.22', '198.19.0.23'];

const pad = (n: number): string => String(n).padStart(3, '0');
const nameOf = (id: string): string => `${id}.race.0001.use1.cache.amazonaws.com`;

/** Target `i` of the race's topology: redis and valkey first (r000…), then memcached (m000…), spread over the lab's servers. */
function target(i: number): { cluster: FakeCluster; name: string; ip: string } {
  const redis = i < REDIS_TARGETS;
  const id = redis ? `r${pad(i)}` : `m${pad(i - REDIS_TARGETS)}`;
  const ip = redis ? REDIS_IPS[i % REDIS_IPS.length]! : MEMCACHED_IPS[i % MEMCACHED_IPS.length]!;
  const engine = redis ? (i % 2 === 0 ? 'redis' : 'valkey') : 'memcached';
  const name = nameOf(id);
  return { cluster: { id, engine, nodes: [{ id: '0001', address: name, port: redis ? 6379 : 11211 }] }, name, ip };
}

const BASE = Array.from({ length: TARGETS }, (_, i) => target(i));
const keyOf = (clusterId: string): string => `node/${clusterId}/0001`;

/** A redis target added later (x000…): past every port of the base topology. */
function extra(n: number): { cluster: FakeCluster; name: string; ip: string; key: string } {
  const id = `x${pad(n)}`;
  const name = nameOf(id);
  return { cluster: { id, engine: 'redis', nodes: [{ id: '0001', address: name, port: 6379 }] }, name, ip: REDIS_IPS[n % REDIS_IPS.length]!, key: keyOf(id) };
}

const topologyWith = (extras: number): FakeTopology => ({ clusters: [...BASE.map((b) => b.cluster), ...Array.from({ length: extras }, (_, n) => extra(n).cluster)] });

interface StatusJson {
  forwards: { key: string; listenPort: number; targetIp?: string; state: string }[];
  ha?: HaStatus;
}

interface Items {
  lease: LeaseRead;
  map: StoreRead<MapItem>;
}

const lines = (text: string, pattern: RegExp): string[] => text.split('\n').filter((l) => pattern.test(l));

/** cachenat's own lines of one table (chains, rules, jumps), counters stripped. */
const ownedLines = (save: string): string[] => lines(save, /CACHENAT/).map((l) => l.replace(/ \[\d+:\d+\]$/, ''));

/** Listen port → every key the DNAT rules send it to. */
function dnatPorts(natSave: string): Map<number, string[]> {
  const rule = new RegExp(`^${DNAT_RULE_PATTERN}$`);
  const ports = new Map<number, string[]>();
  for (const line of natSave.split('\n')) {
    const m = rule.exec(line);
    if (!m) continue;
    const port = Number(m[2]);
    ports.set(port, [...(ports.get(port) ?? []), m[4]!]);
  }
  return ports;
}

t.test('HA races', { timeout: stretch(420_000) }, async (t) => {
  const began = Date.now();
  const hosts = Object.fromEntries(BASE.map((b) => [b.name, b.ip]));
  const rig: HaRig = await startHaRig({ topology: topologyWith(0), hosts, pageSize: 100, lease: HA_LEASE_DEFAULT });
  t.teardown(() => rig.down());
  t.comment(`HA lab up in ${Date.now() - began} ms`);
  t.equal(HA_LEASE_DEFAULT, `${LEASE_MS / 1000}s`, 'the rig runs the lease this test reckons with');
  const init = await rig.cli('nat', ['ha', 'init']);
  t.equal(init.exitCode, 0, `ha init: ${init.stdout}${init.stderr}`);

  let group = 'lab';
  const instanceOf = (which: NatName): string => rig.nodes[which].instance.instanceId;
  const other = (which: NatName): NatName => (which === 'nat' ? 'nat2' : 'nat');

  /** Both hosts' configs on this group, each with a fresh state dir (nothing remembered from an earlier round). */
  const configureGroup = (name: string): void => {
    group = name;
    for (const which of NAT_NAMES) {
      const node = rig.nodes[which];
      const dir = join(node.dir, name);
      mkdirSync(dir, { recursive: true });
      const ha = haConfigYaml({ table: TABLE, group: name, lease: HA_LEASE_DEFAULT, dynamoUrl: rig.dynamoUrl, ec2Url: rig.ec2Url, imdsUrl: node.imdsUrl });
      writeFileSync(node.configPath, labConfig(rig.apiUrl, dir, { publicAddress: rig.eip, extra: ha }));
    }
  };

  const status = async (which: NatName): Promise<StatusJson> => {
    const r = await rig.cli(which, ['status', '--json']);
    if (r.exitCode !== 0) throw new Error(`status on ${which}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusJson;
  };
  const items = async (): Promise<Items> => {
    const r = await rig.lab.exec(rig.lab.svcNs, process.execPath, [compiledLabFile('ha-items.js'), rig.dynamoUrl, TABLE, group], { reject: false, env: { NODE_OPTIONS: '' } });
    if (r.exitCode !== 0) throw new Error(`ha-items: ${r.stderr}`);
    return JSON.parse(r.stdout) as Items;
  };
  const mapOf = async (): Promise<MapItem> => {
    const { map } = await items();
    if (map.kind !== 'ok') throw new Error(`no map item: ${JSON.stringify(map)}`);
    return map.item;
  };
  const healthHa = async (which: NatName): Promise<{ state: string; message: string }> => {
    const r = await rig.cli(which, ['health', '--json']);
    const parsed = JSON.parse(r.stdout) as { checks: { name: string; state: string; message: string }[] };
    const ha = parsed.checks.find((c) => c.name === 'ha');
    if (!ha) throw new Error(`no ha check in ${r.stdout}`);
    return ha;
  };
  /** Key → port as one host's DNAT rules have it (every port once). */
  const rulePorts = async (which: NatName): Promise<Map<string, number>> => {
    const byKey = new Map<string, number>();
    for (const [port, keys] of dnatPorts(await rig.save(which, 'nat'))) for (const key of keys) byKey.set(key, port);
    return byKey;
  };
  const logLines = (which: NatName, from: number, pattern: RegExp): string[] => (rig.nodes[which].daemon?.process.output ?? []).slice(from).filter((l) => pattern.test(l));
  const mark = (which: NatName): number => rig.nodes[which].daemon?.process.mark() ?? 0;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const timeOf = (line: string): number => (JSON.parse(line) as { time: number }).time;
  /** Each daemon's error lines (level 50 and up) since `from`, counted by message: for the report, and checked for failures that must not happen. */
  const errorsOf = (which: NatName, from = 0): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const line of logLines(which, from, /"level":(5|6)\d,/)) {
      const msg = ((JSON.parse(line) as { msg?: string }).msg ?? '').slice(0, 80);
      counts[msg] = (counts[msg] ?? 0) + 1;
    }
    return counts;
  };
  const NEVER = /step failed|heartbeat failed|cannot move Elastic IP|reconcile pass failed|writing the rules failed|has no room/;
  const checkErrors = (t: Test, from: Record<NatName, number> = { nat: 0, nat2: 0 }): void => {
    for (const which of NAT_NAMES) {
      const errors = errorsOf(which, from[which]);
      t.comment(`${which}: error lines ${JSON.stringify(errors)}`);
      t.same(Object.keys(errors).filter((m) => NEVER.test(m)), [], `${which}: no ${NEVER.source} in its log`);
    }
  };
  /** Every NAT host whose ext0 holds the Elastic IP (eipHolder() throws on two; this shows them). */
  const eipOn = async (): Promise<NatName[]> => {
    const on: NatName[] = [];
    for (const which of NAT_NAMES) {
      const r = await rig.lab.exec(rig.lab.natNs(which), 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'ext0']);
      if (r.stdout.includes(` ${rig.eip}/`)) on.push(which);
    }
    return on;
  };
  /** The fake EC2 API's associations and both daemons' Elastic IP lines since the marks: for a failure's diagnosis. */
  const eipStory = async (marks: Record<NatName, number>): Promise<string> =>
    JSON.stringify({
      associations: (await rig.associations()).map((a) => ({ from: a.from?.instanceId ?? null, to: a.to.instanceId, arrivedAt: a.arrivedAt, movedAt: a.movedAt, commands: a.commands })),
      logs: Object.fromEntries(NAT_NAMES.map((which) => [which, logLines(which, marks[which], /Elastic IP|became leader|stepping down|lost the lease/).map((l) => JSON.parse(l) as unknown)])),
    });

  /** Both hosts hold the same owned chains in both tables, and the standby installed the map's `entries` entries. */
  const converged = async (entries: number): Promise<{ nat: string[]; filter: string[] } | undefined> => {
    const [natA, natB, filterA, filterB] = await Promise.all([rig.save('nat', 'nat'), rig.save('nat2', 'nat'), rig.save('nat', 'filter'), rig.save('nat2', 'filter')]);
    const nat = ownedLines(natA);
    const filter = ownedLines(filterA);
    if (dnatPorts(natA).size !== entries) return undefined;
    if (JSON.stringify(nat) !== JSON.stringify(ownedLines(natB)) || JSON.stringify(filter) !== JSON.stringify(ownedLines(filterB))) return undefined;
    return { nat, filter };
  };

  let leader: NatName = 'nat';
  /** Key → port of the last race's map, every later case checks the base targets keep theirs. */
  let basePorts = new Map<string, number>();

  await t.test(`start race: both daemons at once on an empty group, ${TARGETS} targets (${RACE_ROUNDS} rounds)`, async (t) => {
    const figures: Record<string, unknown>[] = [];
    for (let round = 1; round <= RACE_ROUNDS; round++) {
      await t.test(`round ${round}`, async (t) => {
        if (round > 1) {
          // The last round's pair gone for good, its rules removed: the next round starts from nothing on both hosts.
          await Promise.all(NAT_NAMES.map((which) => rig.kill(which, 'SIGKILL')));
          for (const which of NAT_NAMES) t.equal((await rig.cli(which, ['flush'])).exitCode, 0, `flush on ${which}`);
        }
        configureGroup(`race${round}`);
        t.same((await items()).lease, { kind: 'absent' }, `group ${group}: no lease item yet`);

        const startedAt = Date.now();
        const daemons = await Promise.all(NAT_NAMES.map((which) => rig.start(which, { waitReady: false })));
        const readyAt = await Promise.all(daemons.map(async (d) => timeOf(await d.process.waitForLine(/"msg":"ready/, stretch(60_000)))));

        // One leader: its status, the other's, and the lease item agree.
        const roles = await waitFor(
          'one leader and one standby that both name it',
          async () => {
            const both = await Promise.all(NAT_NAMES.map(status));
            const leaders = NAT_NAMES.filter((_, i) => both[i]?.ha?.role === 'leader');
            if (leaders.length !== 1 || !both.every((s) => s.ha?.lease?.holder === instanceOf(leaders[0]!))) return undefined;
            return { leader: leaders[0]!, a: both[0]!.ha!, b: both[1]!.ha! };
          },
          stretch(30_000),
        );
        leader = roles.leader;
        t.equal([roles.a.role, roles.b.role].sort().join(), 'leader,standby', `${leader} leads, ${other(leader)} stands by`);
        const electedAt = Date.now();

        // The map: 200 distinct ports, each in its engine's range (from an empty table: exactly the first 120 redis ports and 80 memcached ones).
        const map = await waitFor('the leader\'s map with every target', async () => {
          const m = await mapOf();
          return m.state.entries.length === TARGETS ? m : undefined;
        }, stretch(30_000));
        const { lease } = await items();
        t.match(lease, { kind: 'item', item: { holder: instanceOf(leader) } }, 'the lease item names the leader');
        const term = lease.kind === 'item' ? lease.item.term : Number.NaN;
        t.equal(map.term, term, 'the map was written in the leader\'s term');
        t.equal(map.writer, instanceOf(leader), 'by the leader');
        const ports = map.state.entries.map((e) => e.listenPort);
        t.equal(new Set(ports).size, TARGETS, `${TARGETS} distinct listen ports in the shared map`);
        const portOf = new Map(map.state.entries.map((e) => [e.key, e.listenPort]));
        const redisPorts = BASE.slice(0, REDIS_TARGETS).map((b) => portOf.get(keyOf(b.cluster.id)));
        const memcachedPorts = BASE.slice(REDIS_TARGETS).map((b) => portOf.get(keyOf(b.cluster.id)));
        const span = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
        t.same([...redisPorts].sort((x, y) => x! - y!), span(6379, REDIS_TARGETS), `redis and valkey targets on 6379–${6378 + REDIS_TARGETS}`);
        t.same([...memcachedPorts].sort((x, y) => x! - y!), span(11211, MEMCACHED_TARGETS), `memcached targets on 11211–${11210 + MEMCACHED_TARGETS}`);

        // Both hosts: the same rules once the standby followed, and the map's ports in them.
        const rules = await waitFor('identical CACHENAT chains on both hosts', () => converged(TARGETS), stretch(30_000));
        const followedAt = Date.now();
        for (const which of NAT_NAMES) {
          const dnat = dnatPorts(await rig.save(which, 'nat'));
          t.equal(dnat.size, TARGETS, `${which}: ${TARGETS} DNAT listen ports`);
          t.ok([...dnat.values()].every((keys) => keys.length === 1), `${which}: no port forwarded twice`);
          t.same(Object.fromEntries(await rulePorts(which)), Object.fromEntries(portOf), `${which}: the rules carry the shared map's ports`);
          const s = await status(which);
          t.equal(s.forwards.filter((f) => f.state === 'active').length, TARGETS, `${which}: ${TARGETS} forwards active`);
        }
        t.ok(rules.filter.length > 0, 'cachenat has filter rules too, and they are identical');
        const became = NAT_NAMES.flatMap((which) => logLines(which, 0, /"msg":"ha: became leader/).map(() => which));
        t.same(became, [leader], 'exactly one "became leader" line, from the leader');
        t.same(await waitFor('the Elastic IP on the leader alone', async () => { const on = await eipOn(); return on.length === 1 && on[0] === leader ? on : undefined; }, stretch(15_000)), [leader]);
        const held = await waitFor('the leader reports the Elastic IP held', async () => {
          const ips = (await status(leader)).ha?.elasticIps ?? [];
          return ips.length > 0 && ips.every((e) => e.state === 'held') ? ips : undefined;
        }, stretch(15_000)).catch((err: Error) => err.message);
        t.match(held, [{ allocationId: rig.allocationId, state: 'held' }], `the leader's status: Elastic IP held${typeof held === 'string' ? `; ${await eipStory({ nat: 0, nat2: 0 })}` : ''}`);
        t.equal(await rig.probe(portOf.get(keyOf('r000'))!), 'redis-11', 'r000 answers through the Elastic IP');

        const becameAt = timeOf(logLines(leader, 0, /"msg":"ha: became leader/)[0]!);
        const figure = {
          round,
          leader,
          leaderLineMs: becameAt - startedAt,
          readyMs: readyAt.map((at) => at - startedAt),
          oneLeaderMs: electedAt - startedAt,
          identicalRulesMs: followedAt - startedAt,
          term,
        };
        checkErrors(t);
        figures.push(figure);
        t.comment(`race round ${round}: ${JSON.stringify(figure)}`);
        basePorts = portOf;
      });
    }
    t.comment(`start races: ${JSON.stringify(figures)}`);
  });

  await t.test('a leader paused past its lease: the standby takes over and allocates; the old one wakes, steps down, follows', async (t) => {
    const old = leader;
    const next = other(old);
    const oldDaemon = rig.nodes[old].daemon!;
    const fromOld = mark(old);
    const fromNext = mark(next);
    const associationsBefore = (await rig.associations()).length;
    const added = extra(0);
    rig.lab.setHost(added.name, added.ip);

    const pausedAt = Date.now();
    oldDaemon.process.kill('SIGSTOP');
    let resumed = false;
    t.teardown(() => {
      if (!resumed) oldDaemon.process.kill('SIGCONT');
    });
    const becameLine = await rig.nodes[next].daemon!.process.waitForLine(/"msg":"ha: became leader/, stretch(3 * LEASE_MS), fromNext);
    leader = next;
    const takeoverMs = timeOf(becameLine) - pausedAt;
    // A whole lease from the old leader's last renewal, which went out at most a renewal period (checked on a beat) before the pause.
    const earliest = LEASE_MS - renewEveryMs(LEASE_MS) - watchEveryMs(LEASE_MS);
    t.ok(takeoverMs >= earliest, `the standby waited a whole lease on its own clock: took over ${takeoverMs} ms after the pause (no sooner than ${earliest})`);
    t.ok(takeoverMs <= LEASE_MS + stretch(2_000), `and within lease + 2 s of it`);

    // During the pause, a new target: the new leader allocates it.
    await rig.setTopology(topologyWith(1));
    const allocated = await waitFor(`${added.key} in the new leader's map`, async () => {
      const m = await mapOf();
      return m.state.entries.find((e) => e.key === added.key) ? m : undefined;
    }, stretch(15_000));
    const newTerm = allocated.term;
    t.equal(allocated.writer, instanceOf(next), 'written by the new leader');
    const { lease } = await items();
    t.match(lease, { kind: 'item', item: { holder: instanceOf(next), term: newTerm } }, 'the lease is the new leader\'s, in the map\'s term');

    const pauseMs = 2.5 * LEASE_MS;
    const left = pausedAt + pauseMs - Date.now();
    if (left > 0) await sleep(left);
    const stillPaused = Date.now();
    oldDaemon.process.kill('SIGCONT');
    resumed = true;
    t.comment(`paused for ${stillPaused - pausedAt} ms (${((stillPaused - pausedAt) / LEASE_MS).toFixed(1)} leases)`);

    // Its hold lapsed during the pause; its first renewal after it is refused (the standby wrote the lease), or a read shows the new holder.
    const stepLine = await oldDaemon.process.waitForLine(/"msg":"ha: (lost the lease|stepping down|renewal refused)/, stretch(10_000), fromOld);
    const stepDownMs = timeOf(stepLine) - stillPaused;
    t.comment(`the woken one stepped down ${stepDownMs} ms after SIGCONT: ${JSON.parse(stepLine).msg}`);
    // Its map write: mayWriteMap is false the moment it wakes, since its own
    // monotonic clock says the hold (one lease from its last accepted renewal)
    // lapsed during the pause; commit() refuses before sending anything, and
    // the next read shows the later term. So there is no refused DynamoDB
    // write to observe in its log: the fence (term in the map's condition)
    // is checked by test/ha's unit tests, and here by the map never naming it.
    t.same(logLines(old, fromOld, /"msg":"ha: (became leader|claimed the shared port map)/), [], 'the woken one neither led again nor wrote the map');

    const rules = await waitFor('both hosts converged on the new leader\'s map', () => converged(TARGETS + 1), stretch(20_000));
    t.ok(rules.nat.length > 0);
    const oldStatus = await waitFor(`${old} a standby again`, async () => {
      const s = await status(old);
      // The holder it names is learned on its next lease read, a beat after its renewal was refused.
      return s.ha?.role === 'standby' && s.ha.lease?.holder === instanceOf(next) && s.forwards.some((f) => f.key === added.key && f.state === 'active') ? s : undefined;
    }, stretch(15_000));
    t.equal(oldStatus.ha?.lease?.holder, instanceOf(next), `${old} names ${next} the leader`);
    const map = await mapOf();
    t.equal(map.term, newTerm, 'the map\'s term is still the new leader\'s');
    t.equal(map.writer, instanceOf(next));
    const portOf = new Map(map.state.entries.map((e) => [e.key, e.listenPort]));
    t.equal(new Set(portOf.values()).size, TARGETS + 1, 'no port given twice');
    t.same(Object.fromEntries([...portOf].filter(([key]) => key !== added.key)), Object.fromEntries(basePorts), 'every earlier target kept its port');
    t.notOk([...basePorts.values()].includes(portOf.get(added.key)!), `the new target got a port of its own (${portOf.get(added.key)})`);
    for (const which of NAT_NAMES) t.same(Object.fromEntries(await rulePorts(which)), Object.fromEntries(portOf), `${which}: the rules carry the map's ports`);

    const holders = await eipOn();
    t.same(holders, [next], `the Elastic IP is on the new leader${holders.length === 1 ? '' : `: ${await eipStory({ [old]: fromOld, [next]: fromNext } as Record<NatName, number>)}`}`);
    t.match(await rig.describeEip(), [{ instanceId: instanceOf(next) }], 'and EC2 says so');
    const moves = (await rig.associations()).slice(associationsBefore);
    t.same(moves.map((a) => a.to.instanceId), [instanceOf(next)], 'moved once, to the new leader; the woken one did not take it back');
    t.equal(await rig.probe(portOf.get(added.key)!), `redis-${added.ip.split('.').at(-1)}`, 'the new target answers through the Elastic IP');
    checkErrors(t, { [old]: fromOld, [next]: fromNext } as Record<NatName, number>);
    t.comment(`pause: ${JSON.stringify({ takeoverMs, stepDownAfterResumeMs: stepDownMs, newTerm, eipMoveMs: moves[0] ? (moves[0].movedAt ?? Number.NaN) - moves[0].arrivedAt : null })}`);
    basePorts = portOf;
  });

  await t.test('DynamoDB does not answer for three leases: forwarding and the Elastic IP stay; the leader is unconfirmed; a new target waits', async (t) => {
    const standby = other(leader);
    const fromLeader = mark(leader);
    const fromStandby = mark(standby);
    const associationsBefore = (await rig.associations()).length;
    const probePort = basePorts.get(keyOf('r000'))!;
    const prober = await rig.startProber(probePort);
    const added = extra(1);
    rig.lab.setHost(added.name, added.ip);

    const outageAt = Date.now();
    await rig.dynamoOutage(true);
    let restored = false;
    t.teardown(async () => {
      if (!restored) await rig.dynamoOutage(false);
    });
    await rig.nodes[leader].daemon!.process.waitForLine(/"msg":"ha: DynamoDB does not answer/, stretch(10_000), fromLeader);
    await rig.setTopology(topologyWith(2));

    const health = await waitFor('the leader\'s health names the outage and the waiting target', async () => {
      const h = await healthHa(leader);
      return h.state === 'CRITICAL' && h.message.includes('1 new target waits for a port') ? h : undefined;
    }, stretch(15_000));
    t.match(health.message, /lease has not been confirmed .*cannot reach DynamoDB/, 'the leader cannot know whether the standby took over: CRITICAL');
    t.match(health.message, /1 new target waits for a port/);
    t.comment(`leader's health during the outage: ${health.state} ${health.message}`);
    const standbyDuring = await healthHa(standby);
    t.equal(standbyDuring.state, 'WARNING', `the standby: ${standbyDuring.message}`);

    // Three leases in all, then check nobody forwarded the new target and nobody moved.
    const left = outageAt + 3 * LEASE_MS - Date.now();
    if (left > 0) await sleep(left);
    for (const which of NAT_NAMES) {
      t.equal((await rulePorts(which)).get(added.key), undefined, `${which}: no forward for the new target during the outage`);
      t.equal((await rulePorts(which)).size, TARGETS + 1, `${which}: every earlier forward still installed`);
      const s = await status(which);
      t.notOk(s.forwards.some((f) => f.key === added.key && f.state === 'active'), `${which}: its status has no active forward for it`);
    }
    t.equal((await status(leader)).ha?.role, 'leader-unconfirmed', `${leader} holds the lease as far as it knows, unconfirmed: it asserts nothing`);
    t.equal((await status(standby)).ha?.role, 'standby', `${standby} still stands by`);
    t.same(await eipOn(), [leader], 'the Elastic IP stayed where it was (nobody moved it)');
    const outageMs = Date.now() - outageAt;
    await rig.dynamoOutage(false);
    restored = true;
    const restoredAt = Date.now();

    await rig.nodes[leader].daemon!.process.waitForLine(/"msg":"ha: DynamoDB answers again/, stretch(15_000), fromLeader);
    const portOf = await waitFor(`${added.key} forwarded on both hosts`, async () => {
      const [a, b] = await Promise.all(NAT_NAMES.map(rulePorts));
      const port = a?.get(added.key);
      return port !== undefined && b?.get(added.key) === port ? a : undefined;
    }, stretch(20_000));
    const allocatedMs = Date.now() - restoredAt;
    t.equal(new Set(portOf.values()).size, TARGETS + 2, 'every port once');
    t.same(Object.fromEntries([...portOf].filter(([key]) => key !== added.key)), Object.fromEntries(basePorts), 'every earlier target kept its port');
    const map = await mapOf();
    t.equal(map.writer, instanceOf(leader), 'the same leader wrote the new target\'s port');
    t.equal(map.state.entries.length, TARGETS + 2);
    const after = await waitFor('the leader\'s ha check OK again', async () => {
      const h = await healthHa(leader);
      return h.state === 'OK' ? h : undefined;
    }, stretch(15_000));
    t.notMatch(after.message, /DynamoDB/, `leader: ${after.message}`);
    const standbyHealth = await waitFor('the standby\'s ha check OK again', async () => {
      const h = await healthHa(standby);
      return h.state === 'OK' ? h : undefined;
    }, stretch(15_000));
    t.notMatch(standbyHealth.message, /DynamoDB/);
    await waitFor('identical rules on both hosts', () => converged(TARGETS + 2), stretch(15_000));

    const summary = await prober.stop();
    t.equal(summary.failures, 0, `probes through the Elastic IP never failed (${summary.attempts} attempts, longest gap ${summary.longestGapMs} ms)`);
    t.ok(summary.attempts > 100, `${summary.attempts} probe attempts`);
    t.equal((await status(leader)).ha?.role, 'leader', 'the same leader afterwards');
    t.same(await eipOn(), [leader], 'the Elastic IP never moved');
    t.same((await rig.associations()).slice(associationsBefore), [], 'no AssociateAddress at all');
    t.same(logLines(standby, fromStandby, /"msg":"ha: became leader/), [], 'no takeover on the standby');
    t.same(logLines(leader, fromLeader, /"msg":"ha: (lost the lease|stepping down|renewal refused)/), [], 'the leader never stepped down');
    checkErrors(t, { [leader]: fromLeader, [standby]: fromStandby } as Record<NatName, number>);
    for (const [which, from] of [[leader, fromLeader], [standby, fromStandby]] as const) {
      const story = logLines(which, from, /"msg":"ha: DynamoDB/).map((l) => {
        const { time, msg } = JSON.parse(l) as { time: number; msg: string };
        return `${time - outageAt} ms: ${msg.slice(0, 32)}`;
      });
      t.comment(`${which} (${which === leader ? 'leader' : 'standby'}), from the outage's start (restored at ${restoredAt - outageAt} ms): ${JSON.stringify(story)}`);
    }
    t.comment(`DynamoDB outage: ${JSON.stringify({ outageMs, newTargetForwardedAfterMs: allocatedMs, probes: summary.attempts, failures: summary.failures, longestGapMs: summary.longestGapMs })}`);
  });
});
