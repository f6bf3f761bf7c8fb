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
  /** forward.publicAddress unset: what IMDS and the interface give. */
  imds: { address: string } | { reason: string };
  interfaces: Record<string, string>;
  /** Secondary addresses per interface (address mode), on top of `interfaces`. */
  secondaryAddresses: Record<string, string[]>;
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
    interfaces: {},
    secondaryAddresses: {},
    machineLoads: 0,
    edgesBuiltFor: [],
    ipForwardChecks: 0,
    sent: [],
    signals: new EventEmitter(),
    onSleep: () => undefined,
    health: {},
  };

  const machine: Machine = {
    edgeFactory: (logger) => (config) => {
      world.edgesBuiltFor.push(config);
      return {
        netfilter: {
          save: async (table) => saveText(world.kernel, [table]),
          saveAll: async () => saveText(world.kernel, ['nat', 'filter']),
          restore: async (text) => {
            if (world.restoreFails) throw world.restoreFails;
            world.kernel = applyRestore(world.kernel, text);
          },
        },
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
      publicAddress: {
        imds: async () => world.imds,
        interfaceIpv4: (name) => world.interfaces[name],
      },
      interfaceAddresses: () => {
        const all: Record<string, string[]> = {};
        for (const [name, address] of Object.entries(world.interfaces)) all[name] = [address];
        for (const [name, list] of Object.entries(world.secondaryAddresses)) all[name] = [...(all[name] ?? []), ...list];
        return all;
      },
      health: { privileged: () => false, readText: healthReadText, probe: async () => ({ ok: true, ms: 1 }), ...world.health },
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

/** What one command line exercises: the command, each flag as written, each value of a flag with choices. */
export function exercisedBy(argv: string[]): string[] {
  let line;
  try {
    line = parseCommandLine(argv);
  } catch {
    return [];
  }
  const command = line.command ?? (argv.includes('help') ? 'help' : '(none)');
  // Global flags count on any command; the others only on the command that takes them.
  const items = [command, ...line.written.flatMap((flag) => [`${command} ${flag}`, `any ${flag}`])];
  if (line.options.format !== undefined) items.push(`${command} --format=${line.options.format}`);
  return items;
}
