// A real Redis Cluster in the lab: `redis-server --cluster-enabled yes` on
// extra addresses of the lab's redis namespace, formed with `redis-cli
// --cluster create`, and described to the fake API the way ElastiCache
// describes a cluster-mode replication group: one group with ClusterEnabled
// and a configuration endpoint, member clusters `<group>-000N-00M` (shard N,
// node M) with one node `0001` each. Every server is started through the lab,
// so lab.down() stops it whatever happens to the test.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import type { FakeCluster, FakeReplicationGroup } from './fake-elasticache-model.js';

export const CLUSTER_PORT = 6379;

/** One line of CLUSTER NODES. */
export interface ClusterNode {
  id: string;
  ip: string;
  master: boolean;
  /** The master's id, for a replica. */
  masterId?: string;
  /** How many slots it serves (0 for a replica). */
  slots: number;
}

/** A shard as ElastiCache names it: its member clusters' addresses, in node order (001, 002, …). */
export interface Shard {
  ips: string[];
}

const NAME_SUFFIX = 'abc123.0001.use1.cache.amazonaws.com';

/** The DNS name of member cluster `<group>-000N-00M`'s node. */
export const memberName = (group: string, shard: number, node: number): string => `${memberId(group, shard, node)}.${NAME_SUFFIX}`;
export const memberId = (group: string, shard: number, node: number): string => `${group}-${String(shard).padStart(4, '0')}-${String(node).padStart(3, '0')}`;
export const configurationName = (group: string): string => `clustercfg.${group}.abc123.use1.cache.amazonaws.com`;

export class RedisClusterLab {
  readonly shards: Shard[] = [];

  constructor(
    readonly lab: Lab,
    readonly group: string,
  ) {}

  /** Starts one cluster-enabled server on a new address of the redis namespace. */
  async startServer(ip: string): Promise<void> {
    const dir = join(this.lab.tmpDir, `cluster-${ip}`);
    mkdirSync(dir, { recursive: true });
    await this.lab.exec(this.lab.ns.redis, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    const server = this.lab.spawnIn(
      this.lab.ns.redis,
      'redis-server',
      // The announced address: in one namespace a connection to a local address
      // leaves from that same address, so a peer's socket cannot tell who it is.
      // A short node timeout: a failover is decided in about a second.
      ['--bind', ip, '--port', String(CLUSTER_PORT), '--cluster-enabled', 'yes', '--cluster-announce-ip', ip, '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir],
      { label: `cluster ${ip}` },
    );
    await server.waitForLine(/Ready to accept connections/, 10_000);
  }

  /** redis-cli inside the redis namespace; its output. */
  async cli(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return (await this.lab.exec(this.lab.ns.redis, 'redis-cli', args, { timeoutMs })).stdout;
  }

  /** Forms a cluster of `shards` masters with one replica each, on addresses `ips` (masters first). */
  async create(ips: readonly string[], shards: number): Promise<void> {
    await Promise.all(ips.map((ip) => this.startServer(ip)));
    await this.cli(['--cluster', 'create', ...ips.map((ip) => `${ip}:${CLUSTER_PORT}`), '--cluster-replicas', String(ips.length / shards - 1), '--cluster-yes']);
    await this.waitConsistent(ips);
    // Every replica known as one before the shards are named.
    const nodes = await this.waitNodes(ips[0]!, (all) => all.filter((n) => n.masterId !== undefined).length === ips.length - shards);
    // Shards numbered in address order, masters first (as they were given).
    for (const master of nodes.filter((n) => n.master && n.slots > 0).sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }))) {
      this.shards.push({ ips: [master.ip, ...nodes.filter((n) => n.masterId === master.id).map((n) => n.ip)] });
    }
  }

  /** Adds a shard (a master and its replica) and moves `slots` slots to it from the others. */
  async addShard(masterIp: string, replicaIp: string, slots: number): Promise<void> {
    const seed = `${this.shards[0]!.ips[0]!}:${CLUSTER_PORT}`;
    await Promise.all([this.startServer(masterIp), this.startServer(replicaIp)]);
    await this.cli(['--cluster', 'add-node', `${masterIp}:${CLUSTER_PORT}`, seed]);
    await this.waitConsistent([...this.allIps(), masterIp]);
    const masterId = (await this.nodes(masterIp)).find((n) => n.ip === masterIp)!.id;
    await this.cli(['--cluster', 'add-node', `${replicaIp}:${CLUSTER_PORT}`, seed, '--cluster-slave', '--cluster-master-id', masterId]);
    await this.waitNodes(masterIp, (all) => all.some((n) => n.ip === replicaIp && n.masterId === masterId));
    await this.cli(['--cluster', 'reshard', seed, '--cluster-from', 'all', '--cluster-to', masterId, '--cluster-slots', String(slots), '--cluster-yes'], 120_000);
    this.shards.push({ ips: [masterIp, replicaIp] });
    await this.waitConsistent(this.allIps());
  }

  allIps(): string[] {
    return this.shards.flatMap((s) => s.ips);
  }

  /** CLUSTER NODES as `ip` sees it. */
  async nodes(ip: string): Promise<ClusterNode[]> {
    const text = await this.cli(['-h', ip, '-p', String(CLUSTER_PORT), 'cluster', 'nodes']);
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line.split(' ');
        const ranges = slots.filter((s) => !s.startsWith('[')).map((s) => s.split('-').map(Number));
        return {
          id,
          ip: address.split(':')[0]!,
          master: flags.split(',').includes('master'),
          ...(master === '-' ? {} : { masterId: master }),
          slots: ranges.reduce((sum, [from = 0, to = from]) => sum + to - from + 1, 0),
        };
      });
  }

  /** CLUSTER NODES as `ip` sees it, once `settled` holds. */
  async waitNodes(ip: string, settled: (nodes: ClusterNode[]) => boolean, timeoutMs = 30_000): Promise<ClusterNode[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nodes = await this.nodes(ip);
      if (settled(nodes)) return nodes;
      if (Date.now() > deadline) throw new Error(`cluster nodes as ${ip} sees them did not settle within ${timeoutMs} ms: ${JSON.stringify(nodes)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Waits until every node says cluster_state:ok and knows every other node (the gossip settled). */
  async waitConsistent(ips: readonly string[], timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const views = await Promise.all(
        ips.map(async (ip) => ({
          ok: /cluster_state:ok/.test(await this.cli(['-h', ip, '-p', String(CLUSTER_PORT), 'cluster', 'info'])),
          known: (await this.nodes(ip)).length,
        })),
      );
      if (views.every((v) => v.ok && v.known === ips.length)) return;
      if (Date.now() > deadline) throw new Error(`cluster on ${ips.join(', ')} not consistent within ${timeoutMs} ms: ${JSON.stringify(views)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Keys stored on `ip` (DBSIZE). */
  async keyCount(ip: string): Promise<number> {
    return Number((await this.cli(['-h', ip, '-p', String(CLUSTER_PORT), 'dbsize'])).trim());
  }

  /** The topology the fake API serves and the names the NAT host resolves. */
  describe(): { clusters: FakeCluster[]; replicationGroups: FakeReplicationGroup[]; hosts: Map<string, string[]> } {
    const clusters: FakeCluster[] = [];
    const hosts = new Map<string, string[]>();
    this.shards.forEach((shard, s) =>
      shard.ips.forEach((ip, n) => {
        const id = memberId(this.group, s + 1, n + 1);
        clusters.push({ id, engine: 'redis', replicationGroupId: this.group, nodes: [{ id: '0001', address: memberName(this.group, s + 1, n + 1), port: CLUSTER_PORT }] });
        hosts.set(memberName(this.group, s + 1, n + 1), [ip]);
      }),
    );
    // The configuration endpoint resolves to the nodes; any of them answers CLUSTER SLOTS.
    hosts.set(configurationName(this.group), this.allIps());
    const group: FakeReplicationGroup = {
      id: this.group,
      engine: 'redis',
      clusterEnabled: true,
      members: clusters.map((c) => c.id),
      configurationEndpoint: { address: configurationName(this.group), port: CLUSTER_PORT },
    };
    return { clusters, replicationGroups: [group], hosts };
  }
}
