// Address mode (forward.listenAddresses) end to end: every target gets an
// address of its own on the NAT host's client-facing interface and keeps its
// native port, so clients with no remap hook at all work: `redis-cli -c`
// following MOVED by name, ioredis and node-redis cluster clients without
// natMap / nodeAddressMap verifying every certificate, a Serverless cache on
// its two ports. The client namespace resolves names with exactly what
// `cachenat endpoints --format hosts` prints. Behind the NAT host: a real TLS
// Redis Cluster announcing node names (as ElastiCache with in-transit
// encryption), a Serverless-like TLS cache, and the lab's plain Redis and
// Memcached servers. A Docker-like firewall shares the host throughout.

import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledLabFile } from '../../lab/lab.js';
import { DOCKER_SAVE } from '../../lab/foreign-rules.js';
import { configurationName, keyIn, RedisClusterLab } from '../../lab/redis-cluster.js';
import { makeTestCa, startServerlessLike } from '../../lab/tls.js';
import type { ClientRequest } from '../../lab/cluster-client.js';
import type { FakeTopology } from '../../lab/fake-elasticache-model.js';
import { baseTopology, CLI, daemonEnv, foreignLines, labConfig, NAME, startRig, stretch, waitFor } from '../../lab/rig.js';

const GROUP = 'shop';
const CLUSTER_IPS = ['198.19.0.31', '198.19.0.32', '198.19.0.33', '198.19.0.34', '198.19.0.35', '198.19.0.36'];
/** Where shard 2's replica moves to when it is "replaced". */
const MOVED_TO = '198.19.0.39';
const SERVERLESS = { name: 'sl', host: 'sl-abc123.serverless.use1.cache.amazonaws.com', ip: '198.19.0.51' };
const CONFIG_NAME = configurationName(GROUP);
/** Targets at the start: the base topology's 8, the cluster's 6 nodes and configuration endpoint, Serverless's 2 (one name). */
const FORWARDS = 17;
const ADDRESSES_USED = 16;
/** One spare address: a target added while a freed address is quarantined gets it, and then the pool is full. */
const POOL = ADDRESSES_USED + 1;
const KEYS = 1000;
const CLIENTS = ['ioredis', 'node-redis'] as const;
// A forward removed from the API must still be seen draining and probed through
// on a loaded machine (each look spawns a process in a namespace), and the
// quarantine after it must outlast the look at a new target: both stretched
// by the load average when the test starts, within a cap (the test waits each
// of them out once).
const REMOVAL_GRACE_MS = Math.min(stretch(8_000), 25_000);
const REUSE_AFTER_MS = Math.min(stretch(12_000), 30_000);

interface StatusForward {
  key: string;
  kind: string;
  address: string;
  listenPort: number;
  listenAddress?: string;
  publicAddress?: string;
  targetPort: number;
  targetIp?: string;
  state: string;
  tls: boolean;
}

interface PortMap {
  releasedAddresses?: { address: string; key: string; releasedAt: number }[];
}

t.test('address mode: an address per target, clients follow names', async (t) => {
  const rig = await startRig({
    listenAddresses: POOL,
    settings: { removalGrace: `${REMOVAL_GRACE_MS}ms`, reuseAfter: `${REUSE_AFTER_MS}ms` },
  });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const pool = rig.listenAddresses;

  // Another tool's rules on the host, before cachenat ever runs.
  const rulesFile = join(rig.dir, 'docker-like.rules');
  writeFileSync(rulesFile, DOCKER_SAVE);
  await lab.exec(lab.ns.nat, 'iptables-restore', [rulesFile]);
  const foreignBefore = foreignLines(await rig.save());
  const foreignUnchanged = async (t: Test, when: string) => t.equal(foreignLines(await rig.save()), foreignBefore, `foreign rules byte-identical ${when}`);

  const ca = await makeTestCa(join(lab.tmpDir, 'tls'));
  const cluster = new RedisClusterLab(lab, GROUP, { tls: ca });
  await Promise.all([cluster.createNamed(CLUSTER_IPS, 3), startServerlessLike(lab, SERVERLESS.ip, SERVERLESS.host, ca)]);

  /** Extra Memcached clusters a test adds (each a one-node cluster on memc-22's address). */
  const extraClusters: string[] = [];
  const extraName = (id: string) => `${id}.abc123.0001.use1.cache.amazonaws.com`;
  const removedMc: string[] = [];
  /** The whole topology as it is now, served by the fake API and resolved by the NAT host. */
  const describe = async () => {
    const { hosts, clusters, replicationGroups } = cluster.describe();
    for (const [name, ips] of hosts) lab.setHost(name, ips);
    lab.setHost(SERVERLESS.host, SERVERLESS.ip);
    for (const id of extraClusters) lab.setHost(extraName(id), '198.19.0.22');
    const base = baseTopology();
    const mc = base.clusters.find((c) => c.id === 'mc')!;
    mc.nodes = mc.nodes!.filter((n) => !removedMc.includes(n.id));
    const topology: FakeTopology = {
      clusters: [...base.clusters, ...clusters, ...extraClusters.map((id) => ({ id, engine: 'memcached', nodes: [{ id: '0001', address: extraName(id), port: 11211 }] }))],
      replicationGroups: [...(base.replicationGroups ?? []), ...replicationGroups],
      serverlessCaches: [{ name: SERVERLESS.name, engine: 'valkey', endpoint: { address: SERVERLESS.host, port: 6379 }, reader: { address: SERVERLESS.host, port: 6380 } }],
    };
    await rig.setTopology(topology);
  };
  await describe();
  const daemon = await rig.start();

  const forwards = async () => ((await rig.status()) as unknown as { forwards: StatusForward[] }).forwards;
  /** key → where clients reach it ("address:port"), from status --json. */
  const listeners = async () => Object.fromEntries((await forwards()).map((f) => [f.key, `${f.listenAddress ?? '*'}:${f.listenPort}`]));
  const endpointsJson = async () => {
    const r = await rig.cli(['endpoints', '--format', 'json']);
    if (r.exitCode !== 0) throw new Error(`endpoints --format json exited ${r.exitCode}: ${r.stderr}`);
    const parsed = JSON.parse(r.stdout) as { endpoints: (StatusForward & { port?: number })[] };
    return Object.fromEntries(parsed.endpoints.map((e) => [e.key, `${e.publicAddress ?? '?'}|${e.listenAddress ?? '?'}:${e.port ?? e.listenPort}`]));
  };
  const portMap = (): PortMap => JSON.parse(readFileSync(join(rig.dir, 'state', 'ports.json'), 'utf8')) as PortMap;

  /** The client's /etc/hosts: exactly what `cachenat endpoints --format hosts` prints. */
  const writeClientHosts = async () => {
    const r = await rig.cli(['endpoints', '--format', 'hosts'], { stripFinalNewline: false });
    if (r.exitCode !== 0) throw new Error(`endpoints --format hosts exited ${r.exitCode}: ${r.stderr}`);
    lab.writeHostsFile(lab.ns.client, r.stdout);
    return r.stdout;
  };
  const inClient = (file: string, args: string[], input?: string) =>
    lab.exec(lab.ns.client, file, args, { env: { NODE_OPTIONS: '' }, reject: false, timeoutMs: stretch(60_000), ...(input === undefined ? {} : { input }) });
  const clusterClient = (request: ClientRequest) => inClient(process.execPath, [compiledLabFile('cluster-client.js'), JSON.stringify(request)]);
  const byName = (client: (typeof CLIENTS)[number], prefix: string, more: { rounds: number; verifyFirst?: boolean }): ClientRequest => ({
    client,
    seed: { host: CONFIG_NAME, port: 6379 },
    tls: { caFile: ca.caFile },
    keys: KEYS,
    prefix,
    ...more,
  });
  /** redis-cli as a cluster client by name: every line of `script` in one session, redirects followed (-c). */
  const redisCliCluster = (script: string) => inClient('redis-cli', ['-c', '--tls', '--cacert', ca.caFile, '-h', CONFIG_NAME, '-p', '6379'], script);
  const probeName = async (name: string, port: number, proto: 'redis' | 'memcached') => {
    const r = await lab.probe(lab.ns.client, name, port, proto, 4_000);
    return r.ok ? r.value : `(${r.error})`;
  };
  const dnatRules = async () => (await rig.save('nat')).split('\n').filter((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes(' -j DNAT '));

  const first = await waitFor(`${FORWARDS} forwards active, each on a listen address`, async () => {
    const all = await forwards();
    return all.length === FORWARDS && all.every((f) => f.state === 'active' && f.listenAddress !== undefined) ? all : undefined;
  }, stretch(30_000));

  await t.test('every target on an address of its own with its native port; a Serverless name shares one', async (t) => {
    for (const f of first) {
      t.ok(pool.includes(f.listenAddress!), `${f.key} listens on ${f.listenAddress}, one of forward.listenAddresses`);
      t.equal(f.listenPort, f.targetPort, `${f.key} keeps its native port ${f.targetPort}`);
    }
    const owners = new Map<string, string[]>();
    for (const f of first) owners.set(f.listenAddress!, [...(owners.get(f.listenAddress!) ?? []), f.key]);
    const shared = [...owners.values()].filter((keys) => keys.length > 1).map((keys) => keys.sort());
    t.same(shared, [[`serverless-reader/${SERVERLESS.name}`, `serverless/${SERVERLESS.name}`]], 'only the Serverless endpoint and reader share an address');
    t.equal(owners.size, ADDRESSES_USED, `${ADDRESSES_USED} addresses in use`);
    const tls = first.filter((f) => f.tls).map((f) => f.key).sort();
    t.same(tls, first.filter((f) => f.key.includes(GROUP) || f.key.endsWith(`/${SERVERLESS.name}`)).map((f) => f.key).sort(), 'the cluster (TransitEncryptionEnabled) and Serverless targets are TLS, the others not');
    const rules = await dnatRules();
    for (const f of first) {
      const own = rules.filter((l) => l.includes(` ${f.key}"`));
      t.ok(own.length > 0 && own.every((l) => l.startsWith(`-A CACHENAT-DNAT -d ${f.listenAddress}/32 -p tcp -m tcp --dport ${f.listenPort} `)), `${f.key}: its DNAT rules match -d ${f.listenAddress}/32 --dport ${f.listenPort}`);
    }
    t.same(rules.filter((l) => !/^-A CACHENAT-DNAT -d [\d.]+\/32 /.test(l)), [], 'no DNAT rule without a destination address');
    await foreignUnchanged(t, 'after the first sync');
  });

  await t.test('endpoints: hosts, dnsmasq and json formats; the client resolves with exactly the hosts lines', async (t) => {
    const hosts = await writeClientHosts();
    t.equal(readFileSync(lab.hostsFileOf(lab.ns.client), 'utf8'), hosts, "the client namespace's hosts file is the CLI's output, byte for byte");
    const lines = hosts.split('\n').filter((l) => l !== '');
    const expected = new Map<string, string>();
    for (const f of first) expected.set(f.address, f.listenAddress!); // public = the private address in the lab
    t.same(new Set(lines), new Set([...expected].map(([name, ip]) => `${ip} ${name}`)), 'one "<public> <name>" line per distinct name');
    t.equal(lines.length, expected.size, 'no name twice');
    const names = lines.map((l) => l.split(' ')[1]!);
    t.same(names, [...names].sort(), 'sorted by name');
    t.ok(lines.includes(`${first.find((f) => f.key === `configuration/${GROUP}`)!.listenAddress} ${CONFIG_NAME}`), 'the configuration endpoint by its name');
    const dnsmasq = await rig.cli(['endpoints', '--format', 'dnsmasq']);
    t.equal(dnsmasq.exitCode, 0, dnsmasq.stderr);
    t.same(new Set(dnsmasq.stdout.split('\n').filter((l) => l !== '')), new Set([...expected].map(([name, ip]) => `address=/${name}/${ip}`)), 'dnsmasq: address=/<name>/<public> per name');
    t.same(await endpointsJson(), Object.fromEntries(first.map((f) => [f.key, `${f.listenAddress}|${f.listenAddress}:${f.targetPort}`])), 'endpoints json: every endpoint with its publicAddress (the contract\'s field for what clients dial), listenAddress and port');
    const resolved = await inClient('getent', ['hosts', CONFIG_NAME]);
    t.match(resolved.stdout, new RegExp(`^${expected.get(CONFIG_NAME)!.replaceAll('.', '\\.')}\\s+${CONFIG_NAME.replaceAll('.', '\\.')}$`, 'm'), 'the client resolves the configuration endpoint to its listen address');
  });

  /** One key per master, by the slot ranges the cluster reports now. */
  const keysPerShard = async (prefix: string) => {
    const masters = (await cluster.nodes(cluster.allIps()[0]!)).filter((n) => n.master && n.slots > 0);
    return masters.map((m) => ({ master: m.ip, key: keyIn(m.ranges, `${prefix}-${m.ip}`) }));
  };
  const redisCliEveryShard = async (t: Test, prefix: string) => {
    const keys = await keysPerShard(prefix);
    t.equal(keys.length, 3, 'three masters');
    const script = [...keys.map(({ key }) => `SET ${key} value-of-${key}`), ...keys.map(({ key }) => `GET ${key}`)].join('\n') + '\n';
    const r = await redisCliCluster(script);
    t.equal(r.exitCode, 0, `redis-cli exited 0: ${r.stderr}`);
    const out = r.stdout.split('\n');
    for (const { key } of keys) t.ok(out.includes(`value-of-${key}`), `GET ${key} through the cluster by name`);
    const redirects = out.filter((l) => /^-> Redirected to slot \[\d+\] located at \S+\.cache\.amazonaws\.com:6379$/.test(l));
    t.ok(redirects.length >= keys.length - 1, `MOVED followed to node names (${redirects.length} redirects): ${redirects.join(' | ')}`);
    // Each key really lives on its master (asked directly, on the cache segment).
    for (const { master, key } of keys) t.equal((await cluster.cli(['-h', master, '-p', '6379', 'GET', key])).trim(), `value-of-${key}`, `${key} is stored on master ${master}`);
  };

  await t.test('redis-cli -c --tls by the configuration endpoint name: SET and GET in every shard, MOVED followed', async (t) => {
    await redisCliEveryShard(t, 'cli');
  });

  const clientsEveryShard = async (t: Test, prefix: string, verifyFirst: boolean) => {
    for (const client of CLIENTS) {
      const run = await clusterClient(byName(client, `${prefix}-${client}`, { rounds: 1, verifyFirst }));
      t.equal(run.exitCode, 0, `${client}: ${run.stdout}${run.stderr}`);
      if (verifyFirst) t.match(run.stdout, /^verify ok$/m, `${client}: the keys stored before are read back`);
      t.match(run.stdout, /^round 1 ok$/m, `${client}: ${KEYS} keys stored and read back`);
    }
  };

  await t.test('ioredis Cluster (no natMap) and node-redis createCluster (no nodeAddressMap), certificates verified: 1000 keys each', async (t) => {
    await clientsEveryShard(t, 'keys', false);
    const perMaster = await Promise.all(cluster.shards.map((s) => cluster.keyCount(s.ips[0]!)));
    t.ok(perMaster.every((n) => n > KEYS / 10), `every master holds keys (${perMaster.join(', ')})`);
  });

  await t.test('the Serverless-like cache by name on 6379 and 6380, certificate verified', async (t) => {
    const ping = (host: string, port: number, command?: string[]) => clusterClient({ client: 'tls-ping', host, port, caFile: ca.caFile, ...(command === undefined ? {} : { command }) });
    const primary = await ping(SERVERLESS.host, 6379, ['ROLE']);
    t.match(primary.stdout, /^\["master",/, `6379 reaches the primary: ${primary.stdout}`);
    const reader = await ping(SERVERLESS.host, 6380, ['ROLE']);
    t.match(reader.stdout, /^\["slave","198\.19\.0\.51",6379,/, `6380 reaches the reader: ${reader.stdout}`);
    const slAddress = first.find((f) => f.key === `serverless/${SERVERLESS.name}`)!.listenAddress!;
    const byAddress = await ping(slAddress, 6379);
    t.match(byAddress.stdout, /^refused: ERR_TLS_CERT_ALTNAME_INVALID/, `by address instead of name the certificate does not match: verification is on (${byAddress.stdout.trim()})`);
  });

  await t.test('mixed: Memcached and non-cluster Redis by name on their own addresses', async (t) => {
    const seen = {
      primary: await probeName(NAME.primary, 6379, 'redis'),
      reader: await probeName(NAME.reader, 6379, 'redis'),
      orders2: await probeName(NAME.orders2, 6379, 'redis'),
      sessions: await probeName(NAME.sessions1, 6379, 'redis'),
      mc1: await probeName(NAME.mc(1), 11211, 'memcached'),
      mc2: await probeName(NAME.mc(2), 11211, 'memcached'),
      mc3: await probeName(NAME.mc(3), 11211, 'memcached'),
    };
    t.same(seen, { primary: 'redis-11', reader: 'redis-12', orders2: 'redis-12', sessions: 'redis-13', mc1: 'memc-21', mc2: 'memc-22', mc3: 'memc-23' });
  });

  const before = await listeners();
  const endpointsBefore = await endpointsJson();

  await t.test('CLUSTER FAILOVER on a replica: followed by every client, every listen address unchanged', async (t) => {
    // Both clients running through it, round after round.
    const watchers = CLIENTS.map((client) =>
      lab.spawnIn(lab.ns.client, process.execPath, [compiledLabFile('cluster-client.js'), JSON.stringify(byName(client, `failover-${client}`, { rounds: 0 }))], {
        env: { NODE_OPTIONS: '' },
        label: `${client} through the failover`,
      }),
    );
    await Promise.all(watchers.map((w) => w.waitForLine(/^round 1 ok$/, stretch(30_000))));
    const [oldMaster, replica] = cluster.shards[0]!.ips as [string, string];
    await cluster.cli(['-h', replica, '-p', '6379', 'cluster', 'failover']);
    await waitFor(`${replica} promoted`, async () => (await cluster.nodes(replica)).find((n) => n.ip === replica)?.master, stretch(20_000));
    await waitFor(`${oldMaster} a replica now`, async () => (await cluster.nodes(oldMaster)).find((n) => n.ip === oldMaster && !n.master), stretch(20_000));
    for (const watcher of watchers) {
      // The second whole round after the promotion began after it.
      await watcher.waitForLine(/^round \d+ ok$/, stretch(30_000), watcher.mark());
      const line = await watcher.waitForLine(/^round \d+ ok$/, stretch(30_000), watcher.mark());
      t.match(line, /^round \d+ ok$/, `${watcher.label}: ${line} after the promotion, same process (${watcher.output.filter((l) => l.includes('failed')).length} rounds failed during it)`);
      await watcher.stop();
    }
    await cluster.waitConsistent(cluster.allIps(), stretch(30_000));
    await redisCliEveryShard(t, 'after-failover');
    await clientsEveryShard(t, 'keys', true);
    t.same(await listeners(), before, 'status: every forward on the same address and port');
    t.same(await endpointsJson(), endpointsBefore, 'endpoints json unchanged');
    await foreignUnchanged(t, 'after the failover');
  });

  await t.test('a node replaced on a new IP: its name follows, its listen address stays', async (t) => {
    const [, replica] = cluster.shards[1]!.ips as [string, string];
    const name = cluster.nameOf(replica);
    const key = `node/${name.split('.')[0]}/0001`;
    const id = (await cluster.nodes(replica)).find((n) => n.ip === replica)!.id;
    await cluster.moveNode(replica, MOVED_TO);
    await describe(); // the NAT host's resolver: the name (and the configuration endpoint's list) now give the new IP
    await waitFor(`${key} forwarded to ${MOVED_TO}`, async () => (await forwards()).find((f) => f.key === key && f.targetIp === MOVED_TO && f.state === 'active'), stretch(15_000));
    const myid = await inClient('redis-cli', ['--tls', '--cacert', ca.caFile, '-h', name, '-p', '6379', 'CLUSTER', 'MYID']);
    t.equal(myid.stdout.trim(), id, `${name} by name reaches the moved node (${myid.stderr})`);
    // Let it serve slots from its new address, and use them.
    await cluster.cli(['-h', MOVED_TO, '-p', '6379', 'cluster', 'failover']);
    await waitFor(`${MOVED_TO} promoted`, async () => (await cluster.nodes(MOVED_TO)).find((n) => n.ip === MOVED_TO)?.master, stretch(20_000));
    await cluster.waitConsistent(cluster.allIps(), stretch(30_000));
    await redisCliEveryShard(t, 'after-move');
    await clientsEveryShard(t, 'keys', true);
    t.same(await listeners(), before, 'status: every forward on the same address and port');
    t.same(await endpointsJson(), endpointsBefore, 'endpoints json unchanged');
    t.equal(await writeClientHosts(), readFileSync(lab.hostsFileOf(lab.ns.client), 'utf8'), 'the hosts lines did not change either');
    await foreignUnchanged(t, 'after the replacement');
  });

  await t.test('a target gone from the API keeps its address through the grace period; the address waits out reuseAfter', async (t) => {
    const gone = before['node/mc/0003']!.split(':')[0]!;
    removedMc.push('0003');
    await describe();
    const draining = await waitFor('node/mc/0003 draining', async () => (await forwards()).find((f) => f.key === 'node/mc/0003' && f.state === 'draining'), stretch(10_000));
    t.equal(draining.listenAddress, gone, `draining on its own address ${gone}`);
    t.equal(await probeName(NAME.mc(3), 11211, 'memcached'), 'memc-23', 'still reached by name while draining');
    await waitFor('node/mc/0003 released after the grace period', async () => !(await forwards()).some((f) => f.key === 'node/mc/0003'), REMOVAL_GRACE_MS + stretch(10_000));
    const released = portMap().releasedAddresses?.find((r) => r.address === gone);
    t.ok(released, `${gone} is quarantined in the port map`);

    // The pool's only other free address is the spare; the freed one comes first in the list.
    const spare = pool.find((ip) => !Object.values(before).some((l) => l.startsWith(`${ip}:`)))!;
    t.ok(pool.indexOf(gone) < pool.indexOf(spare), `the freed ${gone} comes before the spare ${spare} in forward.listenAddresses`);
    extraClusters.push('late');
    await describe();
    const late = await waitFor('node/late/0001 forwarded', async () => (await forwards()).find((f) => f.key === 'node/late/0001' && f.state === 'active'), stretch(10_000));
    const lookedAt = Date.now();
    t.ok(lookedAt < released!.releasedAt + REUSE_AFTER_MS, `looked at within the quarantine (${released!.releasedAt + REUSE_AFTER_MS - lookedAt} ms left of ${REUSE_AFTER_MS}; reuseAfter stretched for load)`);
    t.equal(late.listenAddress, spare, `a target added during the quarantine gets the spare ${spare}, not ${gone}`);

    // After reuseAfter the freed address is the only free one: the next new target must get it.
    await waitFor(`${gone}'s quarantine over`, () => Date.now() > released!.releasedAt + REUSE_AFTER_MS, REUSE_AFTER_MS + 1_000, 250);
    extraClusters.push('later');
    await describe();
    const later = await waitFor('node/later/0001 forwarded', async () => (await forwards()).find((f) => f.key === 'node/later/0001' && f.state === 'active'), stretch(10_000));
    t.equal(later.listenAddress, gone, `after reuseAfter the freed ${gone} is given out again`);
    await writeClientHosts();
    t.equal(await probeName(extraName('later'), 11211, 'memcached'), 'memc-22', 'and reached by its name');
    await foreignUnchanged(t, 'after removals and additions');
  });

  await t.test('an address not on the interface: apply exits 78 naming it, a reload with it is refused; nothing touched', async (t) => {
    const settings = { removalGrace: `${REMOVAL_GRACE_MS}ms`, reuseAfter: `${REUSE_AFTER_MS}ms` };
    const missing = '198.18.0.250';
    const cachenatLines = async () => (await rig.save()).split('\n').filter((l) => l.includes('CACHENAT')).join('\n');
    const rulesBefore = await cachenatLines();
    const listenersBefore = await listeners();
    const badConfig = join(rig.dir, 'missing-address.yaml');
    writeFileSync(badConfig, labConfig(rig.apiUrl, rig.dir, { ...settings, listenAddresses: [...pool, missing] }));
    const apply = await lab.exec(lab.ns.nat, process.execPath, [CLI, 'apply', '--config', badConfig], { env: daemonEnv(rig.dir), reject: false });
    t.equal(apply.exitCode, 78, 'apply exits 78');
    t.match(apply.stderr, new RegExp(`${missing.replaceAll('.', '\\.')}[^\n]*ext0`), `the error names the address and the interface: ${apply.stderr.trim()}`);
    t.equal(await cachenatLines(), rulesBefore, 'no rule touched');

    const mark = daemon.process.mark();
    rig.configure({ ...settings, listenAddresses: [...pool, missing] });
    daemon.process.kill('SIGHUP');
    const refused = await daemon.process.waitForLine(new RegExp(missing.replaceAll('.', '\\.')), stretch(10_000), mark);
    t.match(refused, /ext0/, `the reload is refused, naming the interface: ${refused}`);
    rig.configure({ ...settings, listenAddresses: pool });
    t.equal(daemon.process.running, true, 'the daemon runs on');
    t.same(await listeners(), listenersBefore, 'every forward where it was');
    t.equal(await cachenatLines(), rulesBefore, 'the rules as they were');
  });

  await t.test('listenAddresses removed and SIGHUP: back to port mode, no -d rules, clients reach targets on ports', async (t) => {
    rig.configure({ removalGrace: `${REMOVAL_GRACE_MS}ms`, reuseAfter: `${REUSE_AFTER_MS}ms` });
    daemon.process.kill('SIGHUP');
    const portMode = await waitFor('every forward in port mode', async () => {
      const all = await forwards();
      return all.length > 0 && all.every((f) => f.listenAddress === undefined && f.state === 'active') ? all : undefined;
    }, stretch(15_000));
    const ports = portMode.map((f) => f.listenPort);
    t.equal(new Set(ports).size, ports.length, 'every forward its own port');
    const nat = await rig.save('nat');
    t.notMatch(nat, /^-A CACHENAT-DNAT -d /m, 'no DNAT rule matches a destination address any more');
    const persisted = readFileSync(join(rig.dir, 'rules.v4'), 'utf8');
    t.match(persisted, /^-A CACHENAT-DNAT -p tcp /m, 'the ruleset saved for reboot has the port-mode rules');
    t.notMatch(persisted, /^-A CACHENAT-DNAT -d /m, 'and no -d rule either');
    const ruled = new Map<string, Set<number>>();
    for (const rule of await dnatRules()) {
      const [, port, key] = /--dport (\d+) -m comment --comment "cachenat \S+ (\S+)"/.exec(rule) ?? [];
      ruled.set(key ?? rule, new Set([...(ruled.get(key ?? rule) ?? []), Number(port)]));
    }
    t.same(
      Object.fromEntries([...ruled].map(([key, ports]) => [key, [...ports]])),
      Object.fromEntries(portMode.map((f) => [f.key, [f.listenPort]])),
      'the DNAT rules are exactly the forwards, each on its port',
    );
    const hosts = await rig.cli(['endpoints', '--format', 'hosts']);
    t.equal(hosts.exitCode, 1, `endpoints --format hosts needs address mode: ${hosts.stderr.trim()}`);
    const portOf = (key: string) => portMode.find((f) => f.key === key)!.listenPort;
    t.equal(await rig.probe('client', portOf('primary/orders')), 'redis-11', 'primary on its port');
    t.equal(await rig.probe('client', portOf('node/mc/0001'), 'memcached'), 'memc-21', 'a Memcached node on its port');
    const sl = await clusterClient({ client: 'tls-ping', host: lab.addr.natExt, port: portOf(`serverless-reader/${SERVERLESS.name}`), caFile: ca.caFile, servername: SERVERLESS.host, command: ['ROLE'] });
    t.match(sl.stdout, /^\["slave",/, `the Serverless reader on its port, with SNI: ${sl.stdout}`);
    await foreignUnchanged(t, 'after going back to port mode');
    t.equal(daemon.process.running, true, 'the daemon kept running through the reload');
  });
});
