// A NAT host with clients on one side and real Redis and Memcached servers on
// the other, built from network namespaces. End-to-end tests, `npm run demo`
// and the benchmarks all run cachenat inside `<prefix>-nat` against it.
//
//   <p>-client 198.18.0.10 ─┐
//   <p>-rogue  198.18.0.20 ─┴─ br-ext ─ ext0  198.18.0.1 ─┐  (+ 198.18.0.101… with listenAddresses)
//   <p>-side   198.18.1.10 ─────────── side0 198.18.1.1 ──┼─ <p>-nat
//   <p>-redis  198.19.0.11… ─┬─ br-int ─ int0 198.19.0.1 ─┘
//   <p>-memc   198.19.0.21… ─┘
//   (bridges br-ext and br-int live in <p>-sw; redis listens on :6379, memcached on :11211)
//
// With `ha: true` (issue #12) a second NAT host joins the same two segments,
// and a services namespace holds what both NAT hosts share:
//
//   br-ext ─ ext0 198.18.0.2 ─┐
//   br-int ─ int0 198.19.0.2 ─┼─ <p>-nat2   (no side segment)
//   br-svc ─ svc0 198.20.0.2 ─┘
//   br-svc ─ svc0 198.20.0.1 ── <p>-nat
//   br-svc ─ eth0 198.20.0.10 ─ <p>-svc: dynalite :8000, the fake ElastiCache
//                               API :4566, the fake EC2 API :8001
//
// Each NAT host runs its own fake IMDS on 127.0.0.1:9169. The Elastic IP
// 198.18.0.100 is on neither NAT host until the fake EC2 API's
// AssociateAddress puts it on one's ext0 (and sends a gratuitous ARP).
//
// The cache namespaces have no route back to 198.18.0.0/16, so a client gets
// an answer only when the NAT host rewrites the source (SNAT), unless a test
// asks for plain routing with addReturnRoutes().
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIpv4 } from '../src/core/ipv4.js';
import { macAddressProblem } from '../src/core/grammar.js';
import {
  deleteNamespace,
  deleteNamespaceSync,
  execIn,
  ipBatch,
  namespacePids,
  namespacePidsSync,
  run,
  signalPid,
  type ExecOptions,
  type ExecResult,
} from './netns.js';
import { spawnIn, type LabProcess, type SpawnOptions } from './process.js';
import { acquireLabSlot } from './serial.js';
import { stretch } from './load.js';
import type { CacheProtocol, ProbeResult } from './probe.js';

export type { CacheProtocol, ProbeResult } from './probe.js';
export type { LabProcess } from './process.js';

/** Every lab's prefix: `cnl` and four hex digits. scripts/lab-sweep.sh relies on it. */
export const LAB_PREFIX = /^cnl[0-9a-f]{4}$/;

export interface LabOptions {
  /** How many redis-server instances to start, 198.19.0.11 upwards (0–9, default 4). */
  redis?: number;
  /** How many memcached instances to start, 198.19.0.21 upwards (0–9, default 3). */
  memcached?: number;
  /**
   * How many extra addresses the NAT host gets on ext0 (its client-facing
   * interface), 198.18.0.101 upwards (0–50, default 0): the secondary private
   * IPs of cachenat's address mode. The client segment reaches them directly.
   */
  listenAddresses?: number;
  /**
   * A second NAT host `<p>-nat2` on the same client and cache segments, a
   * services namespace `<p>-svc` with dynalite, and (once started) the fake
   * EC2 and IMDS APIs: the two-instance lab of issue #12. Default false.
   */
  ha?: boolean;
}

/** The two NAT hosts of an HA lab, by the name tests use for them. */
export type NatName = 'nat' | 'nat2';

/** One NAT host as EC2 would describe it (fixed ids that fit src/core/grammar.ts). */
export interface HaInstance {
  name: NatName;
  ns: string;
  instanceId: string;
  eni: string;
  /** Its primary private IP: the ext0 address. */
  privateIp: string;
  /** ext0's MAC (read once the namespace exists). */
  mac: string;
}

export interface CacheServer {
  /** Also the value of its `whoami` key: redis-11, memc-21, … */
  name: string;
  protocol: CacheProtocol;
  ns: string;
  ip: string;
  port: number;
  process: LabProcess;
}

export interface FakeApi {
  url: string;
  process: LabProcess;
  topologyFile: string;
}

const ADDR = {
  natExt: '198.18.0.1',
  natSide: '198.18.1.1',
  natInt: '198.19.0.1',
  client: '198.18.0.10',
  rogue: '198.18.0.20',
  side: '198.18.1.10',
  clientNet: '198.18.0.0/24',
  sideNet: '198.18.1.0/24',
  cacheNet: '198.19.0.0/24',
  /** Both client segments: what a return route must cover. */
  outside: '198.18.0.0/16',
  // ha: true only
  nat2Ext: '198.18.0.2',
  nat2Int: '198.19.0.2',
  natSvc: '198.20.0.1',
  nat2Svc: '198.20.0.2',
  svc: '198.20.0.10',
  svcNet: '198.20.0.0/24',
  /** The Elastic IP clients dial: on the ext0 of whichever NAT host it is associated with, or on neither. */
  eip: '198.18.0.100',
} as const;

/** What the fake EC2 API serves in an HA lab: one Elastic IP, two instances. */
export const HA_IDS = {
  allocationId: 'eipalloc-0a1b2c3d4e5f60718',
  nat: { instanceId: 'i-0000000000000000a', eni: 'eni-0000000000000000a' },
  nat2: { instanceId: 'i-0000000000000000b', eni: 'eni-0000000000000000b' },
} as const;

/** Ports of the shared services (on ADDR.svc) and of each NAT host's IMDS (on its 127.0.0.1). */
export const HA_PORTS = { dynamo: 8000, ec2: 8001, elasticache: 4566, imds: 9169 } as const;

const IFACE = { ext: 'ext0', side: 'side0', int: 'int0', svc: 'svc0' } as const;

/** dynalite's CLI, run with node in the services namespace of an HA lab. */
const DYNALITE = fileURLToPath(import.meta.resolve('dynalite/cli.js'));

const REDIS_PORT = 6379;
const MEMCACHED_PORT = 11211;
const PROBE_GRACE_MS = 5_000;

// Programs the lab runs, and the Debian package that brings each.
const TOOLS: ReadonlyArray<readonly [program: string, debianPackage: string]> = [
  ['ip', 'iproute2'],
  ['sysctl', 'procps'],
  ['redis-server', 'redis-server'],
  ['memcached', 'memcached'],
];

// What an HA lab needs on top (iptables for the DynamoDB outage, arping for the fake EC2 API's gratuitous ARP).
const HA_TOOLS: ReadonlyArray<readonly [program: string, debianPackage: string]> = [
  ['iptables', 'iptables'],
  ['arping', 'iputils-arping'],
];

export class Lab {
  readonly prefix: string;
  readonly ns: {
    nat: string;
    client: string;
    rogue: string;
    side: string;
    redis: string;
    memc: string;
    /** Holds the bridges; nothing runs here. */
    switch: string;
    /** ha: true only: the second NAT host. */
    nat2?: string;
    /** ha: true only: dynalite and the fake AWS APIs. */
    svc?: string;
  };
  readonly addr = ADDR;
  readonly iface = IFACE;
  /** The extra addresses on ext0 (LabOptions.listenAddresses), in order. */
  readonly listenAddresses: readonly string[];
  readonly redisServers: CacheServer[] = [];
  readonly memcachedServers: CacheServer[] = [];
  readonly tmpDir: string;
  /** Bind-mounted over /etc/hosts for everything started in the NAT namespace. */
  readonly hostsFile: string;
  /** Set by startFakeApi. */
  fakeApi: FakeApi | undefined;
  /** LabOptions.ha. */
  readonly ha: boolean;
  /** ha: true only: the two NAT hosts as EC2 instances (MACs filled in by up()). */
  readonly instances: Record<NatName, HaInstance> | undefined;
  /** ha: true only: dynalite's URL, once up() started it. */
  dynamoUrl: string | undefined;
  /** ha: true only: dynalite's process (stopDynamo/startDynamo replace it). */
  dynamo: LabProcess | undefined;
  /** ha: true only: the fake EC2 API in the services namespace (lab/fake-ec2.ts), started by up(). */
  fakeEc2: { url: string; process: LabProcess; stateFile: string } | undefined;
  /** ha: true only: each NAT host's fake IMDS on its own 127.0.0.1 (lab/fake-imds.ts), started by up(). */
  readonly fakeImds: Partial<Record<NatName, { url: string; process: LabProcess }>> = {};

  readonly #redisCount: number;
  readonly #memcachedCount: number;
  readonly #processes = new Set<LabProcess>();
  readonly #hosts = new Map<string, string[]>();
  #down: Promise<void> | undefined;
  /** Gives back this machine's lab lock (lab/serial.ts). */
  #releaseSlot: () => void = () => {};

  constructor(options: LabOptions = {}) {
    this.#redisCount = serverCount('redis', options.redis ?? 4);
    this.#memcachedCount = serverCount('memcached', options.memcached ?? 3);
    const extra = options.listenAddresses ?? 0;
    if (!Number.isInteger(extra) || extra < 0 || extra > 50) throw new Error(`Lab: listenAddresses must be 0 to 50, got ${extra}`);
    this.listenAddresses = range(extra, 101).map((i) => `198.18.0.${i}`);
    this.prefix = freePrefix();
    const p = this.prefix;
    this.ns = {
      nat: `${p}-nat`,
      client: `${p}-client`,
      rogue: `${p}-rogue`,
      side: `${p}-side`,
      redis: `${p}-redis`,
      memc: `${p}-memc`,
      switch: `${p}-sw`,
    };
    this.ha = options.ha ?? false;
    if (this.ha) {
      this.ns.nat2 = `${p}-nat2`;
      this.ns.svc = `${p}-svc`;
      const instance = (name: NatName, ns: string, privateIp: string): HaInstance => ({ name, ns, privateIp, mac: '', ...HA_IDS[name] });
      this.instances = { nat: instance('nat', this.ns.nat, ADDR.natExt), nat2: instance('nat2', this.ns.nat2, ADDR.nat2Ext) };
    } else {
      this.instances = undefined;
    }
    this.tmpDir = join(tmpdir(), `cachenat-lab-${p}`);
    this.hostsFile = `/etc/netns/${this.ns.nat}/hosts`;
  }

  /** Creates a lab and brings it up; on failure, whatever was built is torn down again. */
  static async start(options?: LabOptions): Promise<Lab> {
    const lab = new Lab(options);
    try {
      await lab.up();
    } catch (error) {
      await lab.down().catch(() => {});
      throw error;
    }
    return lab;
  }

  /** Builds the namespaces and starts the servers. Installs nothing: missing programs are reported. */
  async up(): Promise<void> {
    checkPrerequisites(this.ha);
    this.#releaseSlot = await acquireLabSlot();
    // Creating the temp dir claims the prefix: should another lab hold it, fail before touching anything of its.
    mkdirSync(this.tmpDir);
    // lab-sweep.sh leaves a lab alone while this process is alive.
    writeFileSync(join(this.tmpDir, 'owner.pid'), `${process.pid}\n`);
    // Registered before the first namespace exists, so a crash from here on leaves nothing behind.
    liveLabs.add(this);
    installExitHandlers();

    await ipBatch(undefined, this.namespaces().map((ns) => `netns add ${ns}`));
    await ipBatch(this.ns.switch, this.#switchCommands());
    await ipBatch(this.ns.nat, this.#natCommands());
    if (this.ha) await this.#haUp();
    await Promise.all([
      ipBatch(this.ns.client, hostCommands([`${ADDR.client}/24`], ADDR.natExt)),
      ipBatch(this.ns.rogue, hostCommands([`${ADDR.rogue}/24`], ADDR.natExt)),
      ipBatch(this.ns.side, hostCommands([`${ADDR.side}/24`], ADDR.natSide)),
      ipBatch(this.ns.redis, hostCommands(range(this.#redisCount, 11).map((i) => `198.19.0.${i}/24`))),
      ipBatch(this.ns.memc, hostCommands(range(this.#memcachedCount, 21).map((i) => `198.19.0.${i}/24`))),
    ]);
    this.#writeNatEtc();
    await Promise.all([
      ...range(this.#redisCount, 11).map((i) => this.#startRedis(i)),
      ...range(this.#memcachedCount, 21).map((i) => this.#startMemcached(i)),
      ...(this.ha ? [this.startDynamo(), this.#startFakeEc2(), this.#startFakeImds('nat'), this.#startFakeImds('nat2')] : []),
    ]);
  }

  /**
   * Stops every process started here (SIGTERM, then SIGKILL), kills anything
   * else still inside the lab's namespaces, deletes the namespaces, their
   * /etc/netns directories and the temp dir. Safe to call more than once.
   */
  down(): Promise<void> {
    this.#down ??= this.#tearDown().finally(() => this.#releaseSlot());
    return this.#down;
  }

  /** Runs a program inside one of the lab's namespaces; throws on a non-zero exit unless `reject: false`. */
  exec(ns: string, file: string, args: readonly string[] = [], options?: ExecOptions): Promise<ExecResult> {
    return execIn(ns, file, args, options);
  }

  /** Starts a long-running program inside a namespace; down() stops it. */
  spawnIn(ns: string, file: string, args: readonly string[] = [], options?: SpawnOptions): LabProcess {
    const child = spawnIn(ns, file, args, options);
    this.#processes.add(child);
    return child;
  }

  /**
   * Opens a TCP connection from namespace `fromNs` and asks for `whoami`.
   * Runs the probe CLI inside that namespace, since a socket cannot be
   * opened in another namespace from here.
   */
  async probe(fromNs: string, host: string, port: number, protocol: CacheProtocol, timeoutMs = 2_000): Promise<ProbeResult> {
    return runProbe(fromNs, [host, String(port), protocol, '--timeout', String(timeoutMs)], timeoutMs);
  }

  /** net.ipv4.ip_forward in the NAT namespace. It starts at 0: enabling it is cachenat's job. */
  async setIpForward(enabled: boolean): Promise<void> {
    await this.exec(this.ns.nat, 'sysctl', ['-q', '-w', `net.ipv4.ip_forward=${enabled ? 1 : 0}`]);
  }

  async ipForward(): Promise<boolean> {
    return (await this.exec(this.ns.nat, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim() === '1';
  }

  /** Plain routing as a baseline: cache namespaces learn the way back to the clients through the NAT host. */
  async addReturnRoutes(): Promise<void> {
    for (const ns of [this.ns.redis, this.ns.memc]) {
      await run('ip', ['-n', ns, 'route', 'replace', ADDR.outside, 'via', ADDR.natInt]);
    }
  }

  async removeReturnRoutes(): Promise<void> {
    for (const ns of [this.ns.redis, this.ns.memc]) {
      await run('ip', ['-n', ns, 'route', 'del', ADDR.outside], { reject: false });
    }
  }

  /** Points `name` at `ip` (or at several addresses) for every process in the NAT namespace(s), running ones included. */
  setHost(name: string, ip: string | readonly string[]): void {
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name)) throw new Error(`setHost: "${name}" is not a host name`);
    const ips = typeof ip === 'string' ? [ip] : [...ip];
    for (const one of ips) if (!isIpv4(one)) throw new Error(`setHost: "${one}" is not an IPv4 address`);
    this.#hosts.set(name, ips);
    this.#writeHosts();
  }

  removeHost(name: string): void {
    if (this.#hosts.delete(name)) this.#writeHosts();
  }

  /**
   * Writes `text`, byte for byte, as the hosts file of namespace `ns` (not the
   * NAT host's: setHost owns that one): what every program started there
   * afterwards resolves names with (`ip netns exec` bind-mounts it over
   * /etc/hosts). A resolv.conf pointing nowhere comes with it, so a name the
   * file lacks fails at once instead of asking this machine's resolver.
   * Rewritten in place like the NAT host's; down() removes both.
   */
  writeHostsFile(ns: string, text: string): void {
    if (this.#natNamespaces().includes(ns)) throw new Error('writeHostsFile: a NAT host\'s hosts file is setHost\'s');
    if (!this.namespaces().includes(ns)) throw new Error(`writeHostsFile: ${ns} is not a namespace of lab ${this.prefix}`);
    const dir = `/etc/netns/${ns}`;
    mkdirSync(dir, { recursive: true });
    writeInPlace(join(dir, 'hosts'), text);
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  }

  /** Where namespace `ns`'s hosts file lives (for the NAT host, setHost's). */
  hostsFileOf(ns: string): string {
    return `/etc/netns/${ns}/hosts`;
  }

  /**
   * Starts lab/fake-elasticache inside the NAT namespace on 127.0.0.1 (in an
   * HA lab: the services namespace on 198.20.0.10) and returns its URL (for
   * `aws.endpoint`). `topology` is written as JSON;
   * `pageSize` is the records per page when the caller sends no MaxRecords.
   */
  async startFakeApi(topology: unknown, options: { port?: number; pageSize?: number } = {}): Promise<string> {
    const topologyFile = join(this.tmpDir, 'topology.json');
    writeFileSync(topologyFile, JSON.stringify(topology, null, 2));
    // In an HA lab both NAT hosts share it, from the services namespace.
    const listen = `${this.ha ? ADDR.svc : '127.0.0.1'}:${options.port ?? HA_PORTS.elasticache}`;
    const fake = this.spawnIn(
      this.ha ? this.#svc() : this.ns.nat,
      process.execPath,
      [compiledLabFile('fake-elasticache.js'), '--listen', listen, '--topology', topologyFile, ...(options.pageSize === undefined ? [] : ['--page-size', String(options.pageSize)])],
      { label: 'fake-elasticache' },
    );
    const url = await listeningUrl(fake, 'fake-elasticache');
    this.fakeApi = { url, process: fake, topologyFile };
    return url;
  }

  #switchCommands(): string[] {
    const { ns } = this;
    const port = (name: string, bridge: string, peer: string, peerNs: string): string[] => [
      `link add ${name} type veth peer name ${peer} netns ${peerNs}`,
      `link set ${name} master ${bridge} up`,
    ];
    return [
      'link set lo up',
      'link add br-ext type bridge',
      'link add br-int type bridge',
      'link set br-ext up',
      'link set br-int up',
      ...port('ext-nat', 'br-ext', IFACE.ext, ns.nat),
      ...port('ext-client', 'br-ext', 'eth0', ns.client),
      ...port('ext-rogue', 'br-ext', 'eth0', ns.rogue),
      ...port('int-nat', 'br-int', IFACE.int, ns.nat),
      ...port('int-redis', 'br-int', 'eth0', ns.redis),
      ...port('int-memc', 'br-int', 'eth0', ns.memc),
      ...(ns.nat2 === undefined || ns.svc === undefined
        ? []
        : [
            'link add br-svc type bridge',
            'link set br-svc up',
            ...port('ext-nat2', 'br-ext', IFACE.ext, ns.nat2),
            ...port('int-nat2', 'br-int', IFACE.int, ns.nat2),
            ...port('svc-nat', 'br-svc', IFACE.svc, ns.nat),
            ...port('svc-nat2', 'br-svc', IFACE.svc, ns.nat2),
            ...port('svc-svc', 'br-svc', 'eth0', ns.svc),
          ]),
    ];
  }

  #natCommands(): string[] {
    return [
      'link set lo up',
      `link add ${IFACE.side} type veth peer name eth0 netns ${this.ns.side}`,
      `addr add ${ADDR.natExt}/24 dev ${IFACE.ext}`,
      `addr add ${ADDR.natSide}/24 dev ${IFACE.side}`,
      `addr add ${ADDR.natInt}/24 dev ${IFACE.int}`,
      // Secondary addresses of the client-facing interface, as an EC2 instance's secondary private IPs.
      ...this.listenAddresses.map((ip) => `addr add ${ip}/24 dev ${IFACE.ext}`),
      ...(this.ha ? [`addr add ${ADDR.natSvc}/24 dev ${IFACE.svc}`] : []),
      ...[IFACE.ext, IFACE.side, IFACE.int, ...(this.ha ? [IFACE.svc] : [])].map((dev) => `link set ${dev} up`),
    ];
  }

  #writeNatEtc(): void {
    for (const ns of this.#natNamespaces()) {
      const dir = `/etc/netns/${ns}`;
      mkdirSync(dir, { recursive: true });
      // No DNS server exists in the lab: an unknown name fails at once instead of waiting on the host's resolver.
      writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    }
    this.#writeHosts();
  }

  /** Every namespace of this lab (the HA ones included when LabOptions.ha). */
  namespaces(): string[] {
    return Object.values(this.ns).filter((ns): ns is string => ns !== undefined);
  }

  /** The NAT hosts' namespaces: one, or two in an HA lab. */
  #natNamespaces(): string[] {
    return this.ns.nat2 === undefined ? [this.ns.nat] : [this.ns.nat, this.ns.nat2];
  }

  // The bind mount `ip netns exec` makes pins this inode, so the file is
  // rewritten in place, never replaced. Writing before truncating means a
  // reader never sees it empty, and a same-length change (one IP for another)
  // is a single overwrite.
  #writeHosts(): void {
    const lines = [`# cachenat lab ${this.prefix}`, '127.0.0.1 localhost', '::1 localhost'];
    for (const [name, ips] of this.#hosts) for (const ip of ips) lines.push(`${ip} ${name}`);
    // Both NAT hosts of an HA lab resolve alike, as two instances in one VPC.
    for (const ns of this.#natNamespaces()) writeInPlace(this.hostsFileOf(ns), lines.join('\n') + '\n');
  }

  /** HA lab: the second NAT host's and the services namespace's interfaces, and both NAT hosts' MACs. */
  async #haUp(): Promise<void> {
    await Promise.all([
      ipBatch(this.#nat2(), [
        'link set lo up',
        `addr add ${ADDR.nat2Ext}/24 dev ${IFACE.ext}`,
        `addr add ${ADDR.nat2Int}/24 dev ${IFACE.int}`,
        `addr add ${ADDR.nat2Svc}/24 dev ${IFACE.svc}`,
        ...[IFACE.ext, IFACE.int, IFACE.svc].map((dev) => `link set ${dev} up`),
      ]),
      ipBatch(this.#svc(), hostCommands([`${ADDR.svc}/24`])),
    ]);
    for (const instance of Object.values(this.#instances())) {
      const link = JSON.parse((await run('ip', ['-n', instance.ns, '-j', 'link', 'show', IFACE.ext])).stdout) as { address?: string }[];
      const mac = link[0]?.address;
      const problem = macAddressProblem(mac);
      if (problem !== undefined) throw new Error(`${instance.ns} ${IFACE.ext}: ${problem}`);
      instance.mac = mac as string;
    }
  }

  /** The fake EC2 API: one Elastic IP, both NAT hosts' primary interfaces, each tied to its namespace's ext0. */
  async #startFakeEc2(): Promise<void> {
    const stateFile = join(this.tmpDir, 'ec2-state.json');
    const instances = Object.values(this.#instances());
    writeFileSync(
      stateFile,
      JSON.stringify({
        addresses: [{ allocationId: HA_IDS.allocationId, publicIp: ADDR.eip }],
        interfaces: instances.map((i) => ({ networkInterfaceId: i.eni, instanceId: i.instanceId, privateIps: [i.privateIp], ns: i.ns, iface: IFACE.ext })),
      }, null, 2),
    );
    const fake = this.spawnIn(this.#svc(), process.execPath, [compiledLabFile('fake-ec2.js'), '--listen', `${ADDR.svc}:${HA_PORTS.ec2}`, '--state', stateFile], {
      label: 'fake-ec2',
      env: { NODE_OPTIONS: '' },
    });
    const url = await listeningUrl(fake, 'fake-ec2');
    this.fakeEc2 = { url, process: fake, stateFile };
  }

  async #startFakeImds(which: NatName): Promise<void> {
    const i = this.#instances()[which];
    const args = ['--listen', `127.0.0.1:${HA_PORTS.imds}`, '--instance-id', i.instanceId, '--mac', i.mac, '--eni', i.eni, '--ips', i.privateIp];
    const fake = this.spawnIn(i.ns, process.execPath, [compiledLabFile('fake-imds.js'), ...args], { label: `fake-imds ${which}`, env: { NODE_OPTIONS: '' } });
    this.fakeImds[which] = { url: await listeningUrl(fake, 'fake-imds'), process: fake };
  }

  /**
   * Which NAT host's ext0 holds the Elastic IP now (what the fake EC2 API's
   * moves did), undefined for neither; both would be a lab bug and throws.
   */
  async eipHolder(): Promise<NatName | undefined> {
    const holders: NatName[] = [];
    for (const which of ['nat', 'nat2'] as const) {
      const addrs = (await run('ip', ['-n', this.natNs(which), '-4', '-o', 'addr', 'show', 'dev', IFACE.ext])).stdout;
      if (addrs.includes(` ${ADDR.eip}/`)) holders.push(which);
    }
    if (holders.length > 1) throw new Error(`the Elastic IP ${ADDR.eip} is on both NAT hosts`);
    return holders[0];
  }

  /** Which NAT host the client's ARP cache sends the Elastic IP to (by ext0's MAC), undefined when it has no entry (or a stale one). */
  async clientSeesEipAt(): Promise<NatName | undefined> {
    const neigh = JSON.parse((await run('ip', ['-n', this.ns.client, '-j', 'neigh', 'show', ADDR.eip])).stdout) as { lladdr?: string; state?: string[] }[];
    const mac = neigh[0]?.lladdr;
    return Object.values(this.#instances()).find((i) => i.mac === mac)?.name;
  }

  #nat2(): string {
    if (this.ns.nat2 === undefined) throw new Error(`lab ${this.prefix} is not an HA lab (LabOptions.ha)`);
    return this.ns.nat2;
  }

  #svc(): string {
    if (this.ns.svc === undefined) throw new Error(`lab ${this.prefix} is not an HA lab (LabOptions.ha)`);
    return this.ns.svc;
  }

  #instances(): Record<NatName, HaInstance> {
    if (this.instances === undefined) throw new Error(`lab ${this.prefix} is not an HA lab (LabOptions.ha)`);
    return this.instances;
  }

  /** The namespace of NAT host `which` (nat2 only in an HA lab). */
  natNs(which: NatName): string {
    return which === 'nat' ? this.ns.nat : this.#nat2();
  }

  /** The services namespace (HA lab only). */
  get svcNs(): string {
    return this.#svc();
  }

  /**
   * "Instance loss" for NAT host `which`: its ext0, int0 and svc0 go down (its
   * processes keep running, cut off). `restore: true` brings them back up.
   */
  async cutLinks(which: NatName, restore = false): Promise<void> {
    const ns = this.natNs(which);
    if (which === 'nat') this.#svc(); // svc0 exists only in an HA lab
    await ipBatch(ns, [IFACE.ext, IFACE.int, IFACE.svc].map((dev) => `link set ${dev} ${restore ? 'up' : 'down'}`));
  }

  /** Brings back what cutLinks took down. */
  restoreLinks(which: NatName): Promise<void> {
    return this.cutLinks(which, true);
  }

  /**
   * A DynamoDB outage as clients see one: with `on`, the services namespace
   * drops every packet to dynalite's port, so requests time out (no refusal,
   * no reset); `off` removes the rule again. dynalite keeps running and keeps
   * its items.
   */
  async dynamoOutage(on: boolean): Promise<void> {
    const rule = ['INPUT', '-p', 'tcp', '--dport', String(HA_PORTS.dynamo), '-j', 'DROP', '-m', 'comment', '--comment', 'cachenat-lab dynamo outage'];
    const present = (await this.exec(this.#svc(), 'iptables', ['-w', '5', '-C', ...rule], { reject: false })).exitCode === 0;
    if (on && !present) await this.exec(this.#svc(), 'iptables', ['-w', '5', '-I', ...rule]);
    if (!on && present) await this.exec(this.#svc(), 'iptables', ['-w', '5', '-D', ...rule]);
  }

  /**
   * Starts dynalite (in memory) in the services namespace on
   * 198.20.0.10:8000 and waits until it answers; up() does this in an HA lab.
   * After stopDynamo it starts a fresh, empty one.
   */
  async startDynamo(): Promise<string> {
    if (this.dynamo?.running) throw new Error('dynalite is already running');
    const proc = this.spawnIn(this.#svc(), process.execPath, [DYNALITE, '--host', ADDR.svc, '--port', String(HA_PORTS.dynamo), '--createTableMs', '0', '--deleteTableMs', '0', '--updateTableMs', '0'], {
      label: 'dynalite',
      env: { NODE_OPTIONS: '' },
    });
    this.dynamo = proc;
    const url = `http://${ADDR.svc}:${HA_PORTS.dynamo}`;
    // dynalite prints nothing when ready: ListTables answering is the sign.
    const deadline = Date.now() + stretch(15_000);
    for (;;) {
      const answer = await this.dynamoAnswers(this.#svc(), 1_000);
      if (answer === true) break;
      if (!proc.running) throw new Error(`dynalite exited while starting: ${proc.output.slice(-5).join(' | ') || '(no output)'}`);
      if (Date.now() > deadline) throw new Error(`dynalite did not answer on ${url} within ${stretch(15_000)} ms: ${answer}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    this.dynamoUrl = url;
    return url;
  }

  /** Stops dynalite (its items are lost: it runs in memory). */
  async stopDynamo(): Promise<void> {
    await this.dynamo?.stop(1_500);
  }

  /**
   * Whether dynalite answers a ListTables from namespace `fromNs` within
   * `timeoutMs`: true, or why not (timed out, refused, …).
   */
  async dynamoAnswers(fromNs: string, timeoutMs = 2_000): Promise<true | string> {
    const url = `http://${ADDR.svc}:${HA_PORTS.dynamo}`;
    const script = [
      'const [u,t]=process.argv.slice(1);',
      'fetch(u,{method:"POST",signal:AbortSignal.timeout(Number(t)),headers:{"content-type":"application/x-amz-json-1.0","x-amz-target":"DynamoDB_20120810.ListTables","x-amz-date":"20260101T000000Z",',
      'authorization:"AWS4-HMAC-SHA256 Credential=AKIDLAB/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00"},body:"{}"})',
      '.then(async r=>{const b=await r.text();if(r.ok&&b.includes("TableNames"))process.exit(0);console.error(r.status+" "+b);process.exit(1)})',
      '.catch(e=>{console.error(e.name==="TimeoutError"?"timed out":(e.cause?.code??e.message));process.exit(1)})',
    ].join('');
    const r = await this.exec(fromNs, process.execPath, ['-e', script, url, String(timeoutMs)], { reject: false, env: { NODE_OPTIONS: '' }, timeoutMs: timeoutMs + stretch(5_000) });
    return r.exitCode === 0 ? true : r.stderr.trim() || `exited ${r.exitCode}`;
  }

  async #startRedis(octet: number): Promise<void> {
    const ip = `198.19.0.${octet}`;
    const name = `redis-${octet}`;
    const dir = join(this.tmpDir, name);
    mkdirSync(dir, { recursive: true });
    const server = this.spawnIn(
      this.ns.redis,
      'redis-server',
      ['--bind', ip, '--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir],
      { label: name },
    );
    await server.waitForLine(/Ready to accept connections/, 10_000);
    await seed(this.ns.redis, ip, REDIS_PORT, 'redis', name);
    this.redisServers.push({ name, protocol: 'redis', ns: this.ns.redis, ip, port: REDIS_PORT, process: server });
    this.redisServers.sort((a, b) => a.ip.localeCompare(b.ip));
  }

  async #startMemcached(octet: number): Promise<void> {
    const ip = `198.19.0.${octet}`;
    const name = `memc-${octet}`;
    const server = this.spawnIn(
      this.ns.memc,
      'memcached',
      ['-l', ip, '-p', String(MEMCACHED_PORT), '-U', '0', '-u', 'root', '-m', '16'],
      { label: name },
    );
    // memcached prints nothing when ready: the first successful seed is the sign.
    await seed(this.ns.memc, ip, MEMCACHED_PORT, 'memcached', name, server);
    this.memcachedServers.push({ name, protocol: 'memcached', ns: this.ns.memc, ip, port: MEMCACHED_PORT, process: server });
    this.memcachedServers.sort((a, b) => a.ip.localeCompare(b.ip));
  }

  async #tearDown(): Promise<void> {
    if (!liveLabs.has(this)) return; // never came up, or already torn down synchronously
    const problems: string[] = [];
    await Promise.all([...this.#processes].map((child) => child.stop(1_500)));
    await Promise.all(
      this.namespaces().map(async (ns) => {
        // Whatever else a test started in here (cachenat's own children, a stray exec).
        for (const pid of await namespacePids(ns)) signalPid(pid, 'SIGKILL');
        await deleteNamespace(ns).catch((error: Error) => problems.push(error.message));
      }),
    );
    this.#removeFiles();
    liveLabs.delete(this);
    if (problems.length > 0) throw new Error(`lab ${this.prefix} teardown incomplete:\n${problems.join('\n')}`);
  }

  /** The same, without waiting for anything: for process exit and fatal signals. */
  tearDownSync(): void {
    if (!liveLabs.has(this)) return;
    for (const child of this.#processes) child.kill('SIGKILL');
    for (const ns of this.namespaces()) {
      for (const pid of namespacePidsSync(ns)) signalPid(pid, 'SIGKILL');
      deleteNamespaceSync(ns);
    }
    this.#removeFiles();
    liveLabs.delete(this);
    this.#releaseSlot();
  }

  #removeFiles(): void {
    for (const ns of this.namespaces()) rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

/** Rewrites a file without replacing its inode (see #writeHosts). */
function writeInPlace(file: string, content: string): void {
  const text = Buffer.from(content);
  const fd = openSync(file, existsSync(file) ? 'r+' : 'w');
  try {
    writeSync(fd, text, 0, text.length, 0);
    ftruncateSync(fd, text.length);
  } finally {
    closeSync(fd);
  }
}

/** Waits for a fake's one line "<label> listening on http://…" and returns the URL. */
async function listeningUrl(fake: LabProcess, label: string): Promise<string> {
  const listening = new RegExp(`${label} listening on (http://\\S+)`);
  return listening.exec(await fake.waitForLine(listening, stretch(15_000)))?.[1] as string;
}

/** Same as `Lab.start`. */
export const startLab = (options?: LabOptions): Promise<Lab> => Lab.start(options);

function serverCount(kind: string, count: number): number {
  if (!Number.isInteger(count) || count < 0 || count > 9) throw new Error(`Lab: ${kind} must be 0 to 9 servers, got ${count}`);
  return count;
}

const range = (count: number, first: number): number[] => Array.from({ length: count }, (_, i) => first + i);

/** lo and eth0 up, the given addresses on eth0, and a default route only when one is given. */
function hostCommands(cidrs: readonly string[], gateway?: string): string[] {
  return [
    'link set lo up',
    ...cidrs.map((cidr) => `addr add ${cidr} dev eth0`),
    'link set eth0 up',
    ...(gateway === undefined ? [] : [`route add default via ${gateway}`]),
  ];
}

function freePrefix(): string {
  for (;;) {
    const prefix = `cnl${randomBytes(2).toString('hex')}`;
    if (!existsSync(`/run/netns/${prefix}-nat`) && !existsSync(join(tmpdir(), `cachenat-lab-${prefix}`))) return prefix;
  }
}

function onPath(program: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return dirs.some((dir) => dir !== '' && existsSync(join(dir, program)));
}

/** Why the lab cannot run here (not root, programs missing), or undefined when it can. */
export function prerequisiteProblem(uid: number | undefined, installed: (program: string) => boolean, ha = false): string | undefined {
  if (uid !== 0) return 'the lab creates network namespaces and must run as root';
  const missing = [...TOOLS, ...(ha ? HA_TOOLS : [])].filter(([program]) => !installed(program));
  if (missing.length === 0) return undefined;
  const programs = missing.map(([program]) => program).join(', ');
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  return `the lab needs ${programs}, not installed here: apt-get install -y ${packages}`;
}

function checkPrerequisites(ha: boolean): void {
  const problem = prerequisiteProblem(process.getuid?.(), onPath, ha);
  if (problem !== undefined) throw new Error(problem);
}

/**
 * A compiled lab script, run with plain node inside a namespace. From
 * dist/lab/lab.js it sits alongside; from lab/lab.ts (tests under tap's
 * TypeScript loader) it is the copy in dist/lab, which must be up to date.
 */
export function compiledLabFile(name: string): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  if (import.meta.url.endsWith('.js')) return join(here, name);
  const compiled = join(here, '..', 'dist', 'lab', name);
  const source = join(here, name.replace(/\.js$/, '.ts'));
  if (!existsSync(compiled)) throw new Error(`${compiled} is missing: build first with \`npx tsc -p .\``);
  if (existsSync(source) && statSync(source).mtimeMs > statSync(compiled).mtimeMs) {
    throw new Error(`${compiled} is older than ${source}: rebuild with \`npx tsc -p .\``);
  }
  return compiled;
}

/**
 * Probe processes running at once from this process. Each is a node start
 * (about half a second of CPU): a test that fires sixteen together on two
 * cores spends seconds just starting them, and the last ones are killed
 * before they connect. The probe's own timeout starts once it runs, so
 * queueing here changes nothing in what it measures.
 */
const MAX_PROBES_AT_ONCE = 4;
let probesRunning = 0;
const probeQueue: (() => void)[] = [];

async function runProbe(ns: string, args: string[], timeoutMs: number): Promise<ProbeResult> {
  if (probesRunning >= MAX_PROBES_AT_ONCE) await new Promise<void>((resolve) => probeQueue.push(resolve));
  probesRunning++;
  try {
    const result = await execIn(ns, process.execPath, [compiledLabFile('probe.js'), ...args], {
      reject: false,
      // The grace covers node's start-up, which stretches with the machine's load.
      timeoutMs: timeoutMs + stretch(PROBE_GRACE_MS),
      // A test runner's preloads (coverage, loaders) only slow each probe down.
      env: { NODE_OPTIONS: '' },
    });
    if (result.exitCode === 0) return { ok: true, value: result.stdout.trim() };
    if (result.timedOut) return { ok: false, error: `probe process killed after ${timeoutMs} ms + ${stretch(PROBE_GRACE_MS)} ms start-up grace (load per core ${(stretch(1000) / 1000).toFixed(1)})` };
    return { ok: false, error: result.stderr.trim().replace(/^probe: /, '') || `probe exited ${result.exitCode}` };
  } finally {
    probesRunning--;
    probeQueue.shift()?.();
  }
}

/** Stores a server's name under `whoami`, retrying while it is still starting. */
async function seed(ns: string, ip: string, port: number, protocol: CacheProtocol, name: string, server?: LabProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await runProbe(ns, [ip, String(port), protocol, '--timeout', '1000', '--set', name], 1_000);
    if (result.ok) return;
    if (server && !server.running) throw new Error(`${name} exited while starting: ${server.output.slice(-5).join(' | ') || '(no output)'}`);
    if (Date.now() > deadline) throw new Error(`could not store whoami=${name} on ${protocol} ${ip}:${port}: ${result.error}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Labs still up in this process, torn down synchronously if it exits or is
// killed by a signal before their down() ran (a crashed test, Ctrl-C).
const liveLabs = new Set<Lab>();
let exitHandlersInstalled = false;

function tearDownAllSync(): void {
  for (const lab of [...liveLabs]) {
    try {
      lab.tearDownSync();
    } catch {
      // Exiting anyway: scripts/lab-sweep.sh collects what is left.
    }
  }
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', tearDownAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      tearDownAllSync();
      process.removeListener(signal, onSignal);
      // Die of the same signal, as if nobody had been listening.
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
