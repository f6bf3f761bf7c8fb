// A real Redis Cluster in the lab: `redis-server --cluster-enabled yes` on
// extra addresses of the lab's redis namespace, formed with `redis-cli
// --cluster create`, and described to the fake API the way ElastiCache
// describes a cluster-mode replication group: one group with ClusterEnabled
// and a configuration endpoint, member clusters `<group>-000N-00M` (shard N,
// node M) with one node `0001` each. Every server is started through the lab,
// so lab.down() stops it whatever happens to the test.
//
// With `tls`, the cluster is what ElastiCache runs with in-transit encryption:
// TLS only (`port 0`, `tls-port`, `tls-cluster`, `tls-replication`), each node
// with a certificate for its own DNS name (and the configuration endpoint's,
// which resolves to every node), announcing that name
// (`cluster-announce-hostname`) and sending it in MOVED and CLUSTER SLOTS
// (`cluster-preferred-endpoint-type hostname`). Clients then follow names, not
// addresses. The names are given by position, so such a cluster is formed
// shard by shard (masters first, then each replica attached to its master),
// not by `--cluster create`'s own replica placement.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import type { LabProcess } from './process.js';
import type { FakeCluster, FakeReplicationGroup } from './fake-elasticache-model.js';
import { issueCertificate, tlsServerArgs, type TestCa } from './tls.js';

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
  /** The slot ranges it serves, [first, last] each. */
  ranges: [number, number][];
  /** The name it announces (cluster-announce-hostname), when it announces one. */
  hostname?: string;
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

export interface RedisClusterOptions {
  /** TLS only, every node with a certificate for its name from this CA (see the top of this file). */
  tls?: TestCa;
}

export class RedisClusterLab {
  readonly shards: Shard[] = [];
  readonly tls: TestCa | undefined;
  /** The running server of each address. */
  readonly #servers = new Map<string, LabProcess>();
  /** Each node's name, by its current address (TLS clusters). */
  readonly #names = new Map<string, string>();
  readonly #certs = new Map<string, Promise<{ certFile: string; keyFile: string }>>();

  constructor(
    readonly lab: Lab,
    readonly group: string,
    options: RedisClusterOptions = {},
  ) {
    this.tls = options.tls;
  }

  /** Starts one cluster-enabled server on a new address of the redis namespace (`name`: its DNS name, TLS clusters only). */
  async startServer(ip: string, name?: string): Promise<void> {
    if (this.tls !== undefined && name === undefined) throw new Error(`startServer ${ip}: a TLS cluster node needs its name`);
    // A named node keeps its directory (nodes.conf: its identity) when it moves to another address.
    const dir = join(this.lab.tmpDir, `cluster-${name ?? ip}`);
    mkdirSync(dir, { recursive: true });
    await this.lab.exec(this.lab.ns.redis, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    const tlsArgs =
      this.tls === undefined || name === undefined
        ? ['--port', String(CLUSTER_PORT)]
        : [
            ...tlsServerArgs(CLUSTER_PORT, await this.#certificate(name), this.tls),
            '--tls-cluster', 'yes',
            '--tls-replication', 'yes',
            '--cluster-announce-hostname', name,
            '--cluster-preferred-endpoint-type', 'hostname',
          ];
    const server = this.lab.spawnIn(
      this.lab.ns.redis,
      'redis-server',
      // The announced address: in one namespace a connection to a local address
      // leaves from that same address, so a peer's socket cannot tell who it is.
      // A short node timeout: a failover is decided in about a second.
      ['--bind', ip, ...tlsArgs, '--cluster-enabled', 'yes', '--cluster-announce-ip', ip, '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir],
      { label: `cluster ${name ?? ip}` },
    );
    this.#servers.set(ip, server);
    if (name !== undefined) this.#names.set(ip, name);
    await server.waitForLine(/Ready to accept connections/, 10_000);
  }

  /** redis-cli inside the redis namespace (with TLS and the CA for a TLS cluster); its output. */
  async cli(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const tls = this.tls === undefined ? [] : ['--tls', '--cacert', this.tls.caFile];
    return (await this.lab.exec(this.lab.ns.redis, 'redis-cli', [...tls, ...args], { timeoutMs })).stdout;
  }

  /**
   * Forms a TLS cluster of `shards` shards on `ips`: the first `shards`
   * addresses are the masters of shards 1…N (node 001), the rest their
   * replicas in shard order (nodes 002, 003, …). Every node is named
   * memberName(group, shard, node) from the start.
   */
  async createNamed(ips: readonly string[], shards: number): Promise<void> {
    const perShard = ips.length / shards;
    if (!Number.isInteger(perShard) || perShard < 1) throw new Error(`createNamed: ${ips.length} addresses do not make ${shards} equal shards`);
    const layout = Array.from({ length: shards }, (_, s) => [ips[s]!, ...Array.from({ length: perShard - 1 }, (_, r) => ips[shards + s * (perShard - 1) + r]!)]);
    await Promise.all(layout.flatMap((members, s) => members.map((ip, n) => this.startServer(ip, memberName(this.group, s + 1, n + 1)))));
    const masters = layout.map((members) => members[0]!);
    await this.cli(['--cluster', 'create', ...masters.map((ip) => `${ip}:${CLUSTER_PORT}`), '--cluster-replicas', '0', '--cluster-yes']);
    await this.waitConsistent(masters);
    const seed = `${masters[0]}:${CLUSTER_PORT}`;
    for (const members of layout) {
      const masterId = (await this.nodes(members[0]!)).find((n) => n.ip === members[0])!.id;
      for (const replica of members.slice(1)) {
        await this.cli(['--cluster', 'add-node', `${replica}:${CLUSTER_PORT}`, seed, '--cluster-slave', '--cluster-master-id', masterId]);
      }
    }
    await this.waitConsistent(ips);
    await this.waitNodes(masters[0]!, (all) => all.filter((n) => n.masterId !== undefined).length === ips.length - shards && all.every((n) => n.hostname !== undefined));
    for (const members of layout) this.shards.push({ ips: members });
  }

  /**
   * A node replaced on another address, as ElastiCache replaces a node: the
   * same name (and certificate) and the same cluster identity (its
   * nodes.conf), now on `newIp`; nothing listens on the old address any more.
   * The caller points the name at the new address wherever it resolves.
   */
  async moveNode(oldIp: string, newIp: string): Promise<void> {
    const server = this.#servers.get(oldIp);
    if (server === undefined) throw new Error(`moveNode: no server on ${oldIp}`);
    const name = this.#names.get(oldIp);
    const id = (await this.nodes(oldIp)).find((n) => n.ip === oldIp)!.id;
    await server.stop();
    this.#servers.delete(oldIp);
    this.#names.delete(oldIp);
    await this.lab.exec(this.lab.ns.redis, 'ip', ['addr', 'del', `${oldIp}/24`, 'dev', 'eth0']);
    await this.startServer(newIp, name);
    for (const shard of this.shards) shard.ips = shard.ips.map((ip) => (ip === oldIp ? newIp : ip));
    // Every other node learnt the new address from its gossip.
    const others = this.allIps().filter((ip) => ip !== newIp);
    await Promise.all(others.map((ip) => this.waitNodes(ip, (all) => all.some((n) => n.id === id && n.ip === newIp))));
    await this.waitConsistent(this.allIps());
  }

  /** The node's certificate, issued once (one at a time: openssl's serial file is not safe to share). */
  async #certificate(name: string): Promise<{ certFile: string; keyFile: string }> {
    let cert = this.#certs.get(name);
    if (cert === undefined) {
      // The configuration endpoint's name resolves to every node, so every node answers to it too
      // (ElastiCache's certificate covers both with one wildcard).
      const issue = () => issueCertificate(this.tls!, name, [configurationName(this.group)]);
      cert = this.#certs.size === 0 ? issue() : Promise.all(this.#certs.values()).then(issue);
      this.#certs.set(name, cert);
    }
    return cert;
  }

  /** The name of the node now on `ip` (TLS clusters). */
  nameOf(ip: string): string {
    const name = this.#names.get(ip);
    if (name === undefined) throw new Error(`no named node on ${ip}`);
    return name;
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
        const ranges = slots
          .filter((s) => !s.startsWith('['))
          .map((s) => s.split('-').map(Number))
          .map(([from = 0, to = from]): [number, number] => [from, to]);
        // ip:port@cport[,hostname]
        const hostname = address.split(',')[1];
        return {
          id,
          ip: address.split(':')[0]!,
          master: flags.split(',').includes('master'),
          ...(master === '-' ? {} : { masterId: master }),
          slots: ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0),
          ranges,
          ...(hostname === undefined || hostname === '' ? {} : { hostname }),
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
    if (this.tls !== undefined) {
      group.tls = true;
      for (const c of clusters) c.tls = true;
    }
    return { clusters, replicationGroups: [group], hosts };
  }
}

/** The hash slot of a key, as Redis Cluster computes it: CRC16 (XMODEM) of the key or its {hash tag}, mod 16384. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  const open = bytes.indexOf('{');
  let part = bytes;
  if (open >= 0) {
    const close = bytes.indexOf('}', open + 1);
    if (close > open + 1) part = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of part) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** The first key `<prefix>-<n>` whose slot lies in one of `ranges`. */
export function keyIn(ranges: readonly (readonly [number, number])[], prefix: string): string {
  for (let n = 0; ; n++) {
    const key = `${prefix}-${n}`;
    const slot = keySlot(key);
    if (ranges.some(([from, to]) => slot >= from && slot <= to)) return key;
  }
}
