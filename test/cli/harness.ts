// Runs the real CLI (runCli) in-process against a fake machine: a simulated
// kernel that applies restore text as iptables-restore --noflush would, a
// scripted ElastiCache answer, DNS from a table, signals from an emitter. Config,
// port map, lock and status file are real files in a temp dir.

import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { runCli, parseCommandLine } from '../../src/cli/cli.js';
import type { CliIo, Machine } from '../../src/cli/io.js';
import type { ReconcilerEdges } from '../../src/daemon/reconciler.js';
import type { Config } from '../../src/core/config/schema.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import type { DiscoveredTarget, Topology } from '../../src/core/model.js';
import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import type { Table } from '../../src/core/netfilter/types.js';
import type { HealthDeps } from '../../src/health/command.js';
import { createLogger } from '../../src/log/logger.js';
import { StateStore } from '../../src/ports/state-store.js';
import { silentNotifier } from '../../src/daemon/notify.js';
import { applyRestore, emptyKernel } from '../support/kernel-sim.js';
import type { Answer } from '../../src/core/config/host.js';
import type { Listener } from '../../src/core/host/proc-net.js';

export const node = (cluster: string): DiscoveredTarget => ({
  key: `node/${cluster}/0001`,
  kind: 'node',
  engine: 'redis',
  cacheClusterId: cluster,
  cacheNodeId: '0001',
  address: `${cluster}-0001.cache.example`,
  targetPort: 6379,
});

export const topology = (...targets: DiscoveredTarget[]): Topology => ({ targets, skipped: [] });

export const apiDown = () => new DiscoveryError('DescribeCacheClusters (page 1) failed: InternalFailure: boom', 'InternalFailure', true);

/** The kernel as `iptables-save -t TABLE` would print it. */
function saveText(kernel: InstalledRules, tables: readonly Table[]): string {
  return tables
    .map((table) => {
      const chains = [...kernel[table].chains];
      return [`*${table}`, ...chains.map(([name, { policy }]) => `:${name} ${policy} [0:0]`), ...chains.flatMap(([, { rules }]) => rules), 'COMMIT', ''].join('\n');
    })
    .join('');
}

/** The host as the commands see it; tests change it between runs. */
export interface World {
  kernel: InstalledRules;
  /** The API's next answer: a topology, or an error to throw. */
  api: Topology | Error;
  /** Names that resolve, and to what. */
  dns: Map<string, string>;
  restoreFails: Error | undefined;
  /** Reading the rules throws this (an error no command expects). */
  kernelReadFails?: Error;
  /** forward.publicAddress unset: what IMDS gives (then the interface's own address). */
  imds: { address: string } | { reason: string };
  /** IMDS's region (aws.region: auto) and primary MAC (forward.inboundInterface: auto). */
  imdsRegion: Answer<string>;
  imdsMac: Answer<string>;
  /** The endpoint each IMDS read went to (undefined: the default one). */
  imdsAsked: { what: string; endpoint: string | undefined }[];
  /** The host's interfaces and their primary address (eth0 10.0.0.5 by default). */
  interfaces: Record<string, string>;
  /** Secondary addresses per interface (address mode), on top of `interfaces`. */
  secondaryAddresses: Record<string, string[]>;
  /** MAC per interface. */
  macs: Record<string, string>;
  defaultRoute: string | undefined;
  /** Listening TCP sockets on the host. */
  listeners: Listener[];
  /** How many times the machine (the AWS SDK, in real life) was loaded. */
  machineLoads: number;
  /** Every config edges were built for, in order. */
  edgesBuiltFor: Config[];
  ipForwardChecks: number;
  /** The HA node commands get (config `ha`); none by default. */
  haNode?: (...args: Parameters<Machine['haNode']>) => Awaited<ReturnType<Machine['haNode']>>;
  /** Signals a command sent to a process (`ha handover`). */
  sent: { pid: number; signal: NodeJS.Signals }[];
  /** Signals the daemon listens to. */
  signals: EventEmitter;
  /** Called at each of the daemon's sleeps, numbered from 1: send signals here. */
  onSleep: (count: number) => void | Promise<void>;
  /** Overrides for `health`. */
  health: Partial<HealthDeps>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Every command line run through `cli()` in this process, for the test that all flags are exercised. */
export const exercised: string[][] = [];

export interface Rig {
  dir: string;
  configPath: string;
  statusFile: string;
  stateDir: string;
  world: World;
  cli(argv: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  /** Rewrites the config file; `extra` is appended YAML. */
  writeConfig(extra?: string): Promise<void>;
  ports(): Promise<Record<string, number>>;
  /** The API lists one node per cluster id, each resolving to its address. */
  serve(clusters: Record<string, string>): void;
}

export async function rig(t: Test, extra = ''): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'config.yaml');
  const statusFile = join(dir, 'run', 'status.json');
  const stateDir = join(dir, 'state');
  const writeConfig = (more = extra) =>
    writeFile(
      configPath,
      `aws: { region: us-east-1 }\nforward: { allowedSources: [198.51.100.27/32] }\nstate: { dir: ${stateDir}, statusFile: ${statusFile} }\npersist: { rulesFile: none }\nlog: { level: debug }\n${more}`,
    );
  await writeConfig();

  let sleeps = 0;
  const world: World = {
    kernel: emptyKernel(),
    api: topology(),
    dns: new Map(),
    restoreFails: undefined,
    imds: { reason: 'public-ipv4 answered HTTP 404' },
    imdsRegion: { reason: 'not asked: AWS_EC2_METADATA_DISABLED=true' },
    imdsMac: { reason: 'not asked: AWS_EC2_METADATA_DISABLED=true' },
    imdsAsked: [],
    interfaces: { eth0: '10.0.0.5' },
    secondaryAddresses: {},
    macs: { eth0: '0e:00:00:00:00:01' },
    defaultRoute: 'eth0',
    listeners: [],
    machineLoads: 0,
    edgesBuiltFor: [],
    ipForwardChecks: 0,
    sent: [],
    signals: new EventEmitter(),
    onSleep: () => undefined,
    health: {},
  };

  const netfilter: ReconcilerEdges['netfilter'] = {
    save: async (table) => saveText(world.kernel, [table]),
    saveAll: async () => {
      if (world.kernelReadFails) throw world.kernelReadFails;
      return saveText(world.kernel, ['nat', 'filter']);
    },
    restore: async (text) => {
      if (world.restoreFails) throw world.restoreFails;
      world.kernel = applyRestore(world.kernel, text);
    },
  };
  const machine: Machine = {
    ruleEdges: () => ({ netfilter }),
    edgeFactory: (logger) => (config) => {
      world.edgesBuiltFor.push(config);
      return {
        netfilter,
        conntrack: { available: true, forgetFlows: async () => 0 },
        source: {
          describe: async () => {
            if (world.api instanceof Error) throw world.api;
            return world.api;
          },
        },
        resolver: {
          resolve: async (name) => {
            const ip = world.dns.get(name);
            return ip ? { ok: true, ip } : { ok: false, error: 'ENOTFOUND' };
          },
        },
        store: new StateStore(config.state.dir),
        clock: { now: () => Date.now() },
        logger,
      };
    },
    ipForward: () => ({
      ensure: async () => {
        world.ipForwardChecks++;
        return 1;
      },
    }),
    detectBackend: async () => ({ backend: 'nf_tables' }),
    notifier: () => silentNotifier,
    metrics: () => undefined,
    haNode: async (config, logger) => world.haNode?.(config, logger),
    daemon: {
      sleep: async () => {
        sleeps++;
        await world.onSleep(sleeps);
      },
      random: () => 0.5,
      // An emitter handles on/off exactly as the process does for signals; only the return type differs.
      signals: world.signals as unknown as Machine['daemon']['signals'],
    },
  };

  const cli = async (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    exercised.push(argv);
    let stdout = '';
    let stderr = '';
    const out = { write: (s: string) => void (stdout += s) };
    const err = { write: (s: string) => void (stderr += s) };
    const io: CliIo = {
      stdout: out,
      stderr: err,
      env,
      machine: async () => {
        world.machineLoads++;
        return machine;
      },
      logger: (level, to) => createLogger({ level, destination: to === 'stdout' ? out : err }),
      host: {
        interfaces: () =>
          [...new Set([...Object.keys(world.interfaces), ...Object.keys(world.secondaryAddresses)])].map((name) => ({
            name,
            ...(world.macs[name] ? { mac: world.macs[name] } : {}),
            ipv4: [...(world.interfaces[name] ? [world.interfaces[name]] : []), ...(world.secondaryAddresses[name] ?? [])],
          })),
        defaultRoute: async () => world.defaultRoute,
        listeners: async () => world.listeners,
        imds: (endpoint) => {
          const asked = <T>(what: string, answer: T): Promise<T> => {
            world.imdsAsked.push({ what, endpoint });
            return Promise.resolve(answer);
          };
          return {
            region: () => asked('region', world.imdsRegion),
            primaryMac: () => asked('mac', world.imdsMac),
            publicIpv4: () => asked('public-ipv4', 'address' in world.imds ? { value: world.imds.address } : world.imds),
          };
        },
      },
      health: { privileged: () => false, readText: healthReadText, probe: async () => ({ ok: true, ms: 1 }), interfaces: () => Object.keys(world.interfaces), ...world.health },
      isAlive: (pid) => pid === process.pid,
      signal: (pid, signal) => world.sent.push({ pid, signal }),
      now: () => Date.now(),
    };
    const code = await runCli(argv, io);
    return { code, stdout, stderr };
  };

  return {
    dir,
    configPath,
    statusFile,
    stateDir,
    world,
    cli,
    writeConfig,
    serve: (clusters) => {
      world.api = topology(...Object.keys(clusters).map(node));
      for (const [cluster, ip] of Object.entries(clusters)) world.dns.set(node(cluster).address, ip);
    },
    ports: async () => {
      const loaded = await new StateStore(stateDir).load();
      return loaded.status === 'ok' ? Object.fromEntries(loaded.state.entries.map((e) => [e.key, e.listenPort])) : {};
    },
  };
}

/** ip_forward reads as 1; every other file is read from disk. */
async function healthReadText(path: string): Promise<string> {
  if (path === '/proc/sys/net/ipv4/ip_forward') return '1\n';
  return (await import('node:fs/promises')).readFile(path, 'utf8');
}

/** A CliIo that discards everything: for parsing a command line without running it. */
const silentIo = (): CliIo => {
  const sink = { write: () => undefined };
  return {
    stdout: sink,
    stderr: sink,
    env: {},
    machine: () => Promise.reject(new Error('not for running')),
    logger: (level) => createLogger({ level, destination: sink }),
    host: {
      interfaces: () => [],
      defaultRoute: async () => undefined,
      listeners: async () => [],
      imds: () => ({ region: async () => ({ reason: 'none' }), primaryMac: async () => ({ reason: 'none' }), publicIpv4: async () => ({ reason: 'none' }) }),
    },
    health: {},
    isAlive: () => false,
    signal: () => undefined,
    now: () => 0,
  };
};

/** What one command line exercises: the command, each flag as written, each value of a flag with choices, each word. */
export async function exercisedBy(argv: string[]): Promise<string[]> {
  const line = await parseCommandLine(argv, silentIo());
  if ('exit' in line) return argv.length === 0 ? ['(none)'] : argv[0] === 'help' ? ['help'] : argv.includes('--help') || argv.includes('-h') ? ['--help'] : [];
  const command = line.command;
  // The global flag counts on any command; the others only on the command that takes them.
  const items = [command, ...line.written.flatMap((flag) => [`${command} ${flag}`, `any ${flag}`])];
  for (const [flag, value] of Object.entries(line.options.flags)) if (typeof value === 'string') items.push(`${command} --${flag}=${value}`);
  for (const word of line.options.words) items.push(`${command} ${word}`);
  return items;
}
