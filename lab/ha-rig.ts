// Two cachenat daemons on the HA lab's two NAT hosts (Lab option `ha`), with
// the shared services in the services namespace: dynalite, the fake
// ElastiCache API and the fake EC2 API that really moves the Elastic IP
// between the NAT hosts. The rig for issue #12's failover tests:
//
//   const rig = await startHaRig();
//   t.teardown(() => rig.down());
//   await Promise.all([rig.start('nat'), rig.start('nat2')]);
//   const prober = await rig.startProber(port);
//   await rig.kill('nat'); await rig.cutLinks('nat');
//   const summary = await prober.stop();

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledLabFile, HA_IDS, HA_PORTS, startLab, type HaInstance, type Lab, type LabOptions, type NatName } from './lab.js';
import type { AttemptSummary } from './failover-prober.js';
import type { FakeAssociation, Ec2Fault } from './fake-ec2.js';
import type { FakeTopology } from './fake-elasticache-model.js';
import type { LabProcess, ProcessExit } from './process.js';
import { baseTopology, cliIn, daemonEnv, fakeControl, labConfig, resolveNames, startDaemon, type Daemon, type LabSettings, type StartOptions } from './rig.js';
import type { AddressAssociation } from '../src/ha/elastic-ips.js';
import { stretch } from './load.js';

export type { NatName } from './lab.js';
export type { AttemptSummary } from './failover-prober.js';

export const NAT_NAMES: readonly NatName[] = ['nat', 'nat2'];

export interface HaRigOptions {
  /** Server counts (the lab's defaults otherwise); the lab is always an HA lab. */
  lab?: Omit<LabOptions, 'ha' | 'listenAddresses'>;
  /** Served from the start; baseTopology() by default. */
  topology?: FakeTopology;
  /** Records per API page when the caller sends none (the fake's 2 by default; AWS's is 100): big topologies want 100. */
  pageSize?: number;
  /** Names for both NAT hosts' hosts files; the base topology's names by default. */
  hosts?: Record<string, string>;
  /** Both daemons' settings (lab defaults otherwise; forward.publicAddress is the Elastic IP). */
  settings?: LabSettings;
  /** Write the `ha:` section into both configs (default true). false: two independent daemons in plain port mode. */
  ha?: boolean;
  /** ha.lease (default 4s). */
  lease?: string;
  /** ha.table (default cachenat) and ha.group (default lab). */
  table?: string;
  group?: string;
}

/** One NAT host of the pair and its daemon's files. */
export interface HaNode {
  name: NatName;
  ns: string;
  instance: HaInstance;
  /** Its fake IMDS, on its own 127.0.0.1. */
  imdsUrl: string;
  dir: string;
  configPath: string;
  env: Record<string, string>;
  /** The daemon start() last started here (kill() signals it). */
  daemon: Daemon | undefined;
}

/** A failover prober running in the client namespace (lab/failover-prober.ts). */
export interface RunningProber {
  process: LabProcess;
  /** Its first attempt's start (epoch ms). */
  startedAt: number;
  /** SIGTERM, then its summary once the attempts in flight have finished. */
  stop(): Promise<AttemptSummary>;
}

export interface ProberOptions {
  protocol?: 'redis' | 'memcached';
  /** A new connection every this many ms (default 10). */
  everyMs?: number;
  /** Each attempt's budget (default 250 ms). */
  timeoutMs?: number;
  /** Where to connect (default the Elastic IP). */
  host?: string;
}

export interface HaRig {
  lab: Lab;
  down(): Promise<void>;
  nodes: Record<NatName, HaNode>;
  /** The fake ElastiCache API (aws.endpoint), the fake EC2 API (ha.ec2Endpoint), dynalite (ha.endpoint). */
  apiUrl: string;
  ec2Url: string;
  dynamoUrl: string;
  /** The Elastic IP clients dial, and its allocation id (ha.elasticIp). */
  eip: string;
  allocationId: string;
  /** Rewrites one NAT host's config (or both); a daemon started afterwards runs with it. */
  configure(which: NatName | 'both', settings?: LabSettings): void;
  /** Starts `cachenat run` on that NAT host; waits for "ready" unless told not to. */
  start(which: NatName, options?: StartOptions): Promise<Daemon>;
  /** Signals the daemon start() last started there (default SIGKILL) and waits for it to exit. */
  kill(which: NatName, signal?: NodeJS.Signals): Promise<ProcessExit>;
  cli(which: NatName, args: string[], exact?: { stripFinalNewline: false }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  status(which: NatName): Promise<{ forwards: { key: string; listenPort: number; targetIp?: string; state: string }[] }>;
  save(which: NatName, table?: 'nat' | 'filter'): Promise<string>;
  /** ext0, int0 and svc0 of that NAT host go down (its processes keep running, cut off). */
  cutLinks(which: NatName): Promise<void>;
  /**
   * Instance loss as issue #12 measures it: kill -9 of that host's daemon
   * and its links cut, at once. `at`: when it began (epoch ms, the prober's
   * clock); `doneAt`: when both had happened.
   */
  loseInstance(which: NatName): Promise<{ at: number; doneAt: number }>;
  restoreLinks(which: NatName): Promise<void>;
  /** DynamoDB requests time out (packets to dynalite dropped) until called with false. */
  dynamoOutage(on: boolean): Promise<void>;
  /**
   * One host loses DynamoDB alone (a DROP of its packets to dynalite's port,
   * in its own namespace) while EC2 and everything else still answer it: a
   * partial partition, as a gateway-endpoint policy or a route can make.
   */
  dynamoPartition(which: NatName, on: boolean): Promise<void>;
  /** One `whoami` through the Elastic IP from the client namespace; undefined when it fails. */
  probe(port: number, protocol?: 'redis' | 'memcached', timeoutMs?: number): Promise<string | undefined>;
  /** AssociateAddress of the Elastic IP to that NAT host's primary address, with cachenat's EC2 client. */
  associate(which: NatName): Promise<{ tookMs: number }>;
  /** DescribeAddresses of the Elastic IP, with cachenat's EC2 client. */
  describeEip(): Promise<AddressAssociation[]>;
  /**
   * Every association the fake EC2 API made, with its times and arping's
   * result. `settled`: once every gratuitous ARP started so far has finished
   * (arping runs after AssociateAddress answers; without it the latest
   * association may have no `arping` yet).
   */
  associations(options?: { settled?: boolean }): Promise<FakeAssociation[]>;
  /** Which NAT host's ext0 holds the Elastic IP now (the kernel's view). */
  eipHolder(): Promise<NatName | undefined>;
  /** Which NAT host the client's ARP cache sends the Elastic IP to. */
  clientSeesEipAt(): Promise<NatName | undefined>;
  setTopology(topology: FakeTopology): Promise<void>;
  setEc2Fault(fault: Ec2Fault): Promise<void>;
  /** Starts the failover prober against the Elastic IP (by default) on `port`; resolves once its first attempt is out. */
  startProber(port: number, options?: ProberOptions): Promise<RunningProber>;
}

export const HA_LEASE_DEFAULT = '4s';

/** The `ha:` section of a lab daemon's config. */
export const haConfigYaml = (o: { table: string; group: string; lease: string; dynamoUrl: string; ec2Url: string; imdsUrl: string }): string => `ha:
  table: ${o.table}
  group: ${o.group}
  lease: ${o.lease}
  elasticIp: ${HA_IDS.allocationId}
  endpoint: ${o.dynamoUrl}
  ec2Endpoint: ${o.ec2Url}
  imdsEndpoint: ${o.imdsUrl}
`;

/** Brings up an HA lab with a topology served and names resolving on both NAT hosts. Call down() when done, even on failure. */
export async function startHaRig(options: HaRigOptions = {}): Promise<HaRig> {
  const lab = await startLab({ ...options.lab, ha: true });
  try {
    return await haRigOn(lab, options);
  } catch (err) {
    await lab.down();
    throw err;
  }
}

async function haRigOn(lab: Lab, options: HaRigOptions): Promise<HaRig> {
  resolveNames(lab, options.hosts);
  const apiUrl = await lab.startFakeApi(options.topology ?? baseTopology(), options.pageSize === undefined ? {} : { pageSize: options.pageSize });
  const { fakeEc2, dynamoUrl, instances } = lab;
  if (fakeEc2 === undefined || dynamoUrl === undefined || instances === undefined) throw new Error('the HA lab came up without its services');
  const ec2Url = fakeEc2.url;
  const svc = lab.svcNs;
  const eip = lab.addr.eip;

  const node = (name: NatName): HaNode => {
    const dir = join(lab.tmpDir, `cachenat-${name}`);
    mkdirSync(dir, { recursive: true });
    return {
      name,
      ns: lab.natNs(name),
      instance: instances[name],
      imdsUrl: lab.fakeImds[name]?.url ?? `http://127.0.0.1:${HA_PORTS.imds}`,
      dir,
      configPath: join(dir, 'config.yaml'),
      env: daemonEnv(dir),
      daemon: undefined,
    };
  };
  const nodes: Record<NatName, HaNode> = { nat: node('nat'), nat2: node('nat2') };

  const configure = (which: NatName | 'both', settings: LabSettings = options.settings ?? {}): void => {
    for (const n of which === 'both' ? NAT_NAMES : [which]) {
      const { dir, configPath, imdsUrl } = nodes[n];
      const ha = options.ha === false ? '' : haConfigYaml({ table: options.table ?? 'cachenat', group: options.group ?? 'lab', lease: options.lease ?? HA_LEASE_DEFAULT, dynamoUrl, ec2Url, imdsUrl });
      writeFileSync(configPath, labConfig(apiUrl, dir, { publicAddress: eip, ...settings, extra: `${settings.extra ?? ''}${ha}` }));
    }
  };
  configure('both');

  const apiControl = fakeControl(lab, svc, apiUrl);
  const ec2Control = fakeControl(lab, svc, ec2Url);
  const ec2Call = async (args: string[]): Promise<string> => {
    const r = await lab.exec(svc, process.execPath, [compiledLabFile('ec2-call.js'), ec2Url, ...args], { reject: false, env: { NODE_OPTIONS: '' }, timeoutMs: stretch(20_000) });
    if (r.exitCode !== 0) throw new Error(`ec2-call ${args.join(' ')}: ${r.stderr.trim() || `exited ${r.exitCode}`}`);
    return r.stdout;
  };

  const rig: HaRig = {
    lab,
    down: () => lab.down(),
    nodes,
    apiUrl,
    ec2Url,
    dynamoUrl,
    eip,
    allocationId: HA_IDS.allocationId,
    configure,
    async start(which, start = {}) {
      const n = nodes[which];
      const daemon = await startDaemon(lab, n.ns, n, start);
      n.daemon = daemon;
      return daemon;
    },
    async kill(which, signal = 'SIGKILL') {
      const daemon = nodes[which].daemon;
      if (daemon === undefined) throw new Error(`no daemon was started on ${which}`);
      daemon.process.kill(signal);
      return daemon.process.exited;
    },
    cli: (which, args, exact) => cliIn(lab, nodes[which].ns, nodes[which], args, exact),
    async status(which) {
      const r = await rig.cli(which, ['status', '--json']);
      if (r.exitCode !== 0) throw new Error(`status on ${which} failed: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async save(which, table) {
      return (await lab.exec(nodes[which].ns, 'iptables-save', table ? ['-t', table] : [])).stdout;
    },
    cutLinks: (which) => lab.cutLinks(which),
    async loseInstance(which) {
      const at = Date.now();
      await Promise.all([rig.kill(which, 'SIGKILL'), lab.cutLinks(which)]);
      return { at, doneAt: Date.now() };
    },
    restoreLinks: (which) => lab.restoreLinks(which),
    dynamoOutage: (on) => lab.dynamoOutage(on),
    async dynamoPartition(which, on) {
      const { hostname, port } = new URL(dynamoUrl);
      const rule = ['OUTPUT', '-p', 'tcp', '-d', hostname, '--dport', port, '-j', 'DROP', '-m', 'comment', '--comment', 'cachenat-lab dynamo partition'];
      const ns = nodes[which].ns;
      const present = (await lab.exec(ns, 'iptables', ['-w', '5', '-C', ...rule], { reject: false })).exitCode === 0;
      if (on && !present) await lab.exec(ns, 'iptables', ['-w', '5', '-I', ...rule]);
      if (!on && present) await lab.exec(ns, 'iptables', ['-w', '5', '-D', ...rule]);
    },
    async probe(port, protocol = port >= 11211 ? 'memcached' : 'redis', timeoutMs = 4000) {
      const r = await lab.probe(lab.ns.client, eip, port, protocol, timeoutMs);
      return r.ok ? r.value : undefined;
    },
    async associate(which) {
      const { eni, privateIp } = instances[which];
      return JSON.parse(await ec2Call(['associate', HA_IDS.allocationId, eni, privateIp])) as { tookMs: number };
    },
    async describeEip() {
      return JSON.parse(await ec2Call(['describe', HA_IDS.allocationId])) as AddressAssociation[];
    },
    async associations({ settled = false } = {}) {
      const path = settled ? '/_fake/associations?settled=true' : '/_fake/associations';
      return (JSON.parse(await ec2Control('GET', path)) as { associations: FakeAssociation[] }).associations;
    },
    eipHolder: () => lab.eipHolder(),
    clientSeesEipAt: () => lab.clientSeesEipAt(),
    async setTopology(topology) {
      await apiControl('PUT', '/_fake/topology', topology);
    },
    async setEc2Fault(fault) {
      await ec2Control('PUT', '/_fake/fault', fault);
    },
    async startProber(port, o = {}) {
      const protocol = o.protocol ?? (port >= 11211 ? 'memcached' : 'redis');
      const args = [o.host ?? eip, String(port), protocol, '--every', String(o.everyMs ?? 10), '--timeout', String(o.timeoutMs ?? 250)];
      const proc = lab.spawnIn(lab.ns.client, process.execPath, [compiledLabFile('failover-prober.js'), ...args], { label: 'failover-prober', env: { NODE_OPTIONS: '' } });
      const line = await proc.waitForLine(/^failover-prober started \d+$/, stretch(10_000));
      const startedAt = Number(line.split(' ').at(-1));
      return {
        process: proc,
        startedAt,
        async stop() {
          const from = proc.mark();
          proc.kill('SIGTERM');
          const summaryLine = await proc.waitForLine(/^\{"summary":/, stretch(10_000), from);
          return (JSON.parse(summaryLine) as { summary: AttemptSummary }).summary;
        },
      };
    },
  };
  return rig;
}
