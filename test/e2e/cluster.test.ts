// A real Redis Cluster (3 masters, 1 replica each) behind `cachenat run`,
// described by the fake API as ElastiCache describes a cluster-mode group.
// From the client namespace, ioredis (natMap) and node-redis (nodeAddressMap)
// seeded with the configuration endpoint's forwarded port store and read keys
// over every shard; they keep working through a CLUSTER FAILOVER, and reach
// keys whose slots moved to a shard added later.

import t from 'tap';
import { compiledLabFile } from '../../lab/lab.js';
import { RedisClusterLab } from '../../lab/redis-cluster.js';
import type { ClientRequest } from '../../lab/cluster-client.js';
import { LAB_DEFAULTS, startRig, stretch, waitFor } from '../../lab/rig.js';

const GROUP = 'shop';
const FIRST_SHARDS = ['198.19.0.31', '198.19.0.32', '198.19.0.33', '198.19.0.34', '198.19.0.35', '198.19.0.36'];
const NEW_SHARD = { master: '198.19.0.37', replica: '198.19.0.38' };
const CLIENTS = ['ioredis', 'node-redis'] as const;
const KEYS = 1000;

t.test('a Redis Cluster through cachenat', async (t) => {
  const rig = await startRig({ lab: { redis: 0, memcached: 0 }, topology: {}, hosts: {} });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const cluster = new RedisClusterLab(lab, GROUP);
  await cluster.create(FIRST_SHARDS, 3);

  /** Serves the cluster as it is now through the fake API and the NAT host's names. */
  const describeToCachenat = async () => {
    const { hosts, ...topology } = cluster.describe();
    for (const [name, ips] of hosts) lab.setHost(name, ips);
    await rig.setTopology(topology);
  };
  await describeToCachenat();
  await rig.start();

  const activePorts = async () => Object.fromEntries((await rig.status()).forwards.filter((f) => f.state === 'active').map((f) => [f.key, f.listenPort]));
  const forwardedNodes = (count: number) =>
    waitFor(`${count} cluster nodes and the configuration endpoint forwarded`, async () => {
      const ports = await activePorts();
      return Object.keys(ports).filter((k) => k.startsWith('node/')).length === count && ports[`configuration/${GROUP}`] !== undefined ? ports : undefined;
    });
  const natMap = async () => JSON.parse((await rig.cli(['endpoints', '--format', 'natmap'])).stdout) as Record<string, { host: string; port: number }>;
  const request = async (client: (typeof CLIENTS)[number], prefix: string, more: { rounds: number; verifyFirst?: boolean }): Promise<ClientRequest> => ({
    client,
    seed: { host: lab.addr.natExt, port: (await activePorts())[`configuration/${GROUP}`]! },
    natMap: await natMap(),
    keys: KEYS,
    prefix,
    ...more,
  });
  const clientArgs = (req: ClientRequest) => [compiledLabFile('cluster-client.js'), JSON.stringify(req)];
  const runClient = async (req: ClientRequest) =>
    lab.exec(lab.ns.client, process.execPath, clientArgs(req), { env: { NODE_OPTIONS: '' }, reject: false, timeoutMs: stretch(60_000) });

  const ports = await forwardedNodes(6);

  await t.test('ioredis and node-redis SET and GET 1000 keys over every shard', async (t) => {
    for (const client of CLIENTS) {
      const run = await runClient(await request(client, client, { rounds: 1 }));
      t.equal(run.exitCode, 0, `${client}: ${run.stdout}${run.stderr}`);
      t.match(run.stdout, /^round 1 ok$/m, `${client}: every key stored and read back`);
    }
    const perMaster = await Promise.all(cluster.shards.map((s) => cluster.keyCount(s.ips[0]!)));
    t.ok(perMaster.every((n) => n > 0), `every master holds keys (${perMaster.join(', ')})`);
    t.equal(perMaster.reduce((a, b) => a + b, 0), KEYS * CLIENTS.length, 'and together all of them');
  });

  await t.test('CLUSTER FAILOVER on a replica: both clients keep working, no port changes', async (t) => {
    const watchers = await Promise.all(
      CLIENTS.map(async (client) =>
        lab.spawnIn(lab.ns.client, process.execPath, clientArgs(await request(client, `${client}-failover`, { rounds: 0 })), {
          env: { NODE_OPTIONS: '' },
          label: `${client} through the failover`,
        }),
      ),
    );
    await Promise.all(watchers.map((w) => w.waitForLine(/^round 1 ok$/, stretch(30_000))));
    const [oldMaster, replica] = cluster.shards[0]!.ips as [string, string];
    await cluster.cli(['-h', replica, 'cluster', 'failover']);
    await waitFor(`${replica} promoted`, async () => (await cluster.nodes(replica)).find((n) => n.ip === replica)?.master, stretch(20_000));
    const demoted = await waitFor(`${oldMaster} a replica of ${replica}`, async () => (await cluster.nodes(oldMaster)).find((n) => n.ip === oldMaster && !n.master), stretch(20_000));
    t.ok(demoted.masterId, `${oldMaster} replicates the new master now`);
    for (const watcher of watchers) {
      // The second whole round after the promotion began after it.
      await watcher.waitForLine(/^round \d+ ok$/, stretch(30_000), watcher.mark());
      const line = await watcher.waitForLine(/^round \d+ ok$/, stretch(30_000), watcher.mark());
      t.match(line, /^round \d+ ok$/, `${watcher.label}: ${line} after the promotion (${watcher.output.filter((l) => l.includes('failed')).length} rounds failed during it)`);
      await watcher.stop();
    }
    t.same(await activePorts(), ports, 'every forward kept its port');
  });

  await t.test('a shard added and slots moved: new ports within discovery.interval, moved keys reached with the re-read natmap', async (t) => {
    await cluster.addShard(NEW_SHARD.master, NEW_SHARD.replica, 2048);
    const moved = await cluster.keyCount(NEW_SHARD.master);
    t.ok(moved > 0, `${moved} keys moved to the new shard with its slots`);
    const announced = Date.now();
    await describeToCachenat();
    const grown = await forwardedNodes(8);
    const took = Date.now() - announced;
    const bound = stretch(Number.parseInt(LAB_DEFAULTS.discoveryInterval, 10) * 1000 + 1000);
    t.ok(took < bound, `the new nodes forwarded ${took} ms after the API named them (discovery.interval ${LAB_DEFAULTS.discoveryInterval}; bound ${bound} ms, stretched for load)`);
    for (const [key, port] of Object.entries(ports)) t.equal(grown[key], port, `${key} kept port ${port}`);
    for (const client of CLIENTS) {
      const run = await runClient(await request(client, client, { rounds: 1, verifyFirst: true }));
      t.equal(run.exitCode, 0, `${client}: ${run.stdout}${run.stderr}`);
      t.match(run.stdout, /^verify ok$/m, `${client}: every key stored before the move is read, the moved ones from the new shard`);
    }
  });
});
