// A lab with cachenat in it: the fake API inside the NAT namespace, names that
// resolve to the cache servers, the real `cachenat run` process, and ways to
// watch and poke all of them. Shared by the end-to-end tests and `npm run demo`.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab, type LabOptions } from './lab.js';
import { loadFactor } from './load.js';
import type { LabProcess } from './process.js';
import type { FakeTopology } from './fake-elasticache-model.js';

// Works from lab/*.ts (tests) and dist/lab/*.js (demo) alike: both find the compiled CLI.
export const CLI = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../src/cli/main.js' : '../dist/src/cli/main.js', import.meta.url));

/** Endpoint names as AWS would hand them out; the lab's hosts file resolves them. */
export const NAME = {
  primary: 'orders.abc123.ng.0001.use1.cache.amazonaws.com',
  reader: 'orders-ro.abc123.ng.0001.use1.cache.amazonaws.com',
  orders1: 'orders-001.abc123.0001.use1.cache.amazonaws.com',
  orders2: 'orders-002.abc123.0001.use1.cache.amazonaws.com',
  sessions1: 'sessions.abc123.0001.use1.cache.amazonaws.com',
  sessions2: 'sessions.abc123.0002.use1.cache.amazonaws.com',
  mc: (n: number) => `mc.abc123.000${n}.use1.cache.amazonaws.com`,
} as const;

/** A replication group (primary on redis-11, replica redis-12), a Valkey cluster, and AWS's three-node Memcached example. */
export function baseTopology(): FakeTopology & { clusters: NonNullable<FakeTopology['clusters']> } {
  return {
    clusters: [
      { id: 'orders-001', engine: 'redis', replicationGroupId: 'orders', nodes: [{ id: '0001', address: NAME.orders1, port: 6379 }] },
      { id: 'orders-002', engine: 'redis', replicationGroupId: 'orders', nodes: [{ id: '0001', address: NAME.orders2, port: 6379 }] },
      { id: 'sessions', engine: 'valkey', nodes: [{ id: '0001', address: NAME.sessions1, port: 6379 }] },
      { id: 'mc', engine: 'memcached', nodes: [1, 2, 3].map((n) => ({ id: `000${n}`, address: NAME.mc(n), port: 11211 })) },
    ],
    replicationGroups: [
      { id: 'orders', engine: 'redis', members: ['orders-001', 'orders-002'], primary: { address: NAME.primary, port: 6379 }, reader: { address: NAME.reader, port: 6379 } },
    ],
  };
}

export function pointNamesAtServers(lab: Lab): void {
  lab.setHost(NAME.primary, '198.19.0.11');
  lab.setHost(NAME.reader, '198.19.0.12');
  lab.setHost(NAME.orders1, '198.19.0.11');
  lab.setHost(NAME.orders2, '198.19.0.12');
  lab.setHost(NAME.sessions1, '198.19.0.13');
  lab.setHost(NAME.sessions2, '198.19.0.14');
  for (const n of [1, 2, 3]) lab.setHost(NAME.mc(n), `198.19.0.2${n}`);
}

export interface Daemon {
  process: LabProcess;
  configPath: string;
  dir: string;
  /** When the daemon logged "ready", by that line's own timestamp (ms). */
  readyAt: number;
}

export interface StartOptions {
  /** Added to (or overriding) the daemon's environment. */
  env?: Record<string, string>;
  /** Another config file than the rig's. */
  configPath?: string;
  /** false: return as soon as the process is spawned (readyAt is then NaN). */
  waitReady?: boolean;
  /** How long "ready" may take (default 20 s). */
  readyTimeoutMs?: number;
}

/** One API call as the fake logged it (lab/fake-elasticache.ts). */
export interface ApiRequest {
  at: number;
  action: string;
  marker?: string;
  fault?: string;
  status?: number;
}

export interface LabRig {
  lab: Lab;
  down(): Promise<void>;
  /** The NAT host's extra addresses on ext0 (RigOptions.listenAddresses). */
  listenAddresses: readonly string[];
  apiUrl: string;
  dir: string;
  configPath: string;
  /** Rewrites the rig's config file; a daemon started (or reloaded) afterwards runs with it. */
  configure(settings: LabSettings): void;
  start(options?: StartOptions): Promise<Daemon>;
  /** The CLI against the rig's config; `exact`: stdout exactly as printed (final newline kept). */
  cli(args: string[], exact?: { stripFinalNewline: false }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  status(): Promise<{ forwards: { key: string; listenPort: number; listenAddress?: string; publicAddress?: string; targetIp?: string; state: string }[] }>;
  save(table?: 'nat' | 'filter'): Promise<string>;
  iptables(args: string[]): Promise<void>;
  setTopology(topology: FakeTopology): Promise<void>;
  /** Resolves with the fake's clock when the fault took effect. */
  setFault(kind: string, count?: number): Promise<number>;
  apiRequests(): Promise<number>;
  /** Every API call the fake answered so far, with its time and the fault it got. */
  apiRequestLog(): Promise<ApiRequest[]>;
  probe(from: 'client' | 'rogue' | 'side', port: number, proto?: 'redis' | 'memcached', timeoutMs?: number): Promise<string | undefined>;
}

export interface RigOptions {
  /** The daemon's settings (lab defaults otherwise). */
  settings?: LabSettings;
  /** Server counts (the lab's defaults otherwise). */
  lab?: LabOptions;
  /** Served from the start; baseTopology() by default. */
  topology?: FakeTopology;
  /** Names for the NAT host's hosts file; the base topology's names by default. */
  hosts?: Record<string, string>;
  /** Records per API page when the caller sends none (the fake's 2 by default; AWS's is 100). */
  pageSize?: number;
  /**
   * Address mode: this many extra addresses on the NAT host's ext0
   * (198.18.0.101…), listed in the daemon's forward.listenAddresses with
   * `public` the same address (the lab has no Elastic IPs; the client segment
   * reaches the private addresses directly), unless settings.listenAddresses
   * says otherwise.
   */
  listenAddresses?: number;
}

/** The daemon's settings in the lab; each has the lab's default (fast beats, a short grace). Durations are YAML strings. */
export interface LabSettings {
  discoveryInterval?: string;
  dnsInterval?: string;
  removalGrace?: string;
  apiTimeout?: string;
  reuseAfter?: string;
  logLevel?: string;
  /** forward.plaintext (the daemon's default, warn, otherwise). */
  plaintext?: 'allow' | 'warn' | 'refuse';
  /** forward.listenAddresses, each its own `public` address; absent or empty: port mode. */
  listenAddresses?: readonly string[];
  /** forward.publicAddress: what clients dial (default the NAT host's ext0 address, 198.18.0.1). */
  publicAddress?: string;
  /** forward.allowedSources (default the client namespace alone, 198.18.0.10/32). */
  allowedSources?: readonly string[];
  /** YAML appended as is (top-level sections the settings above do not cover). */
  extra?: string;
}

export const LAB_DEFAULTS = {
  discoveryInterval: '1s',
  dnsInterval: '500ms',
  removalGrace: '4s',
  apiTimeout: '1s',
  reuseAfter: '1h',
  logLevel: 'debug',
} as const satisfies LabSettings;

/** The config file every lab daemon runs with: tests, chaos, the demo and the benchmarks. */
export const labConfig = (apiUrl: string, dir: string, settings: LabSettings = {}): string => {
  const s = { ...LAB_DEFAULTS, ...settings };
  return `
aws:
  region: us-east-1
  endpoint: ${apiUrl}
discovery:
  interval: ${s.discoveryInterval}
  removalGrace: ${s.removalGrace}
  apiTimeout: ${s.apiTimeout}
dns:
  interval: ${s.dnsInterval}
forward:
  inboundInterface: ext0
  allowedSources: [${(s.allowedSources ?? ['198.18.0.10/32']).join(', ')}]
  publicAddress: ${s.publicAddress ?? '198.18.0.1'}
${s.plaintext === undefined ? '' : `  plaintext: ${s.plaintext}\n`}${listenAddressesYaml(s.listenAddresses)}ports:
  reuseAfter: ${s.reuseAfter}
ipForward: enable
state:
  dir: ${dir}/state
  statusFile: ${dir}/run/status.json
persist:
  rulesFile: ${dir}/rules.v4
log:
  level: ${s.logLevel}
${s.extra ?? ''}`;
};

const listenAddressesYaml = (addresses: readonly string[] | undefined): string =>
  addresses === undefined || addresses.length === 0
    ? ''
    : `  listenAddresses:\n${addresses.map((ip) => `    - address: ${ip}\n      public: ${ip}\n`).join('')}`;

export const daemonEnv = (dir: string): Record<string, string> => ({
  AWS_ACCESS_KEY_ID: 'AKIDLAB',
  AWS_SECRET_ACCESS_KEY: 'lab-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
  CACHENAT_SYSCTL_DIR: join(dir, 'sysctl.d'),
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
});

/** Brings up a lab with a topology served and names resolving. Call down() when done, even on failure. */
export async function startRig(options: RigOptions = {}): Promise<LabRig> {
  const lab = await startLab({ ...options.lab, ...(options.listenAddresses === undefined ? {} : { listenAddresses: options.listenAddresses }) });
  try {
    return await rigOn(lab, options);
  } catch (err) {
    await lab.down();
    throw err;
  }
}

/** The NAT host's names: `hosts` when given, the base topology's otherwise. */
export function resolveNames(lab: Lab, hosts: Record<string, string> | undefined): void {
  if (hosts === undefined) pointNamesAtServers(lab);
  else for (const [name, ip] of Object.entries(hosts)) lab.setHost(name, ip);
}

async function rigOn(lab: Lab, options: RigOptions): Promise<LabRig> {
  resolveNames(lab, options.hosts);
  const apiUrl = await lab.startFakeApi(options.topology ?? baseTopology(), options.pageSize === undefined ? {} : { pageSize: options.pageSize });
  const dir = join(lab.tmpDir, 'cachenat');
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'config.yaml');
  const configure = (settings: LabSettings) => writeFileSync(configPath, labConfig(apiUrl, dir, settings));
  const settings = options.settings ?? {};
  configure(options.listenAddresses === undefined || settings.listenAddresses !== undefined ? settings : { ...settings, listenAddresses: lab.listenAddresses });
  const env = daemonEnv(dir);

  const control = fakeControl(lab, lab.ns.nat, apiUrl);
  const requestLog = async () => JSON.parse(await control('GET', '/_fake/requests')) as { count: number; requests: ApiRequest[] };

  const rig: LabRig = {
    lab,
    down: () => lab.down(),
    listenAddresses: lab.listenAddresses,
    apiUrl,
    dir,
    configPath,
    configure,
    start: (start = {}) => startDaemon(lab, lab.ns.nat, { configPath, dir, env }, start),
    cli: (args, exact) => cliIn(lab, lab.ns.nat, { configPath, env }, args, exact),
    async status() {
      const r = await rig.cli(['status', '--json']);
      if (r.exitCode !== 0) throw new Error(`status failed: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async save(table) {
      const r = await lab.exec(lab.ns.nat, 'iptables-save', table ? ['-t', table] : []);
      return r.stdout;
    },
    async iptables(args) {
      const r = await lab.exec(lab.ns.nat, 'iptables', ['-w', '5', ...args]);
      if (r.exitCode !== 0) throw new Error(`iptables ${args.join(' ')}: ${r.stderr}`);
    },
    async setTopology(topology) {
      await control('PUT', '/_fake/topology', topology);
    },
    async setFault(kind, count) {
      const answer = JSON.parse(await control('PUT', '/_fake/fault', count === undefined ? { kind } : { kind, count })) as { at: number };
      return answer.at;
    },
    async apiRequests() {
      return (await requestLog()).count;
    },
    async apiRequestLog() {
      return (await requestLog()).requests;
    },
    async probe(from, port, proto = port >= 11211 ? 'memcached' : 'redis', timeoutMs = 4000) {
      const host = from === 'side' ? lab.addr.natSide : lab.addr.natExt;
      const r = await lab.probe(lab.ns[from], host, port, proto, timeoutMs);
      return r.ok ? r.value : undefined;
    },
  };
  return rig;
}

/**
 * Talks to a lab fake's control endpoints (/_fake/…) from inside namespace
 * `ns`, where its URL is reachable: resolves with the answer's body, throws
 * on a non-2xx answer.
 */
export function fakeControl(lab: Lab, ns: string, baseUrl: string): (method: string, path: string, body?: unknown) => Promise<string> {
  return async (method, path, body) => {
    const script = 'const [u,m,b]=process.argv.slice(1);fetch(u,{method:m,body:b||undefined}).then(async r=>{const t=await r.text();if(!r.ok){console.error(t);process.exit(1)}console.log(t)})';
    const r = await lab.exec(ns, process.execPath, ['-e', script, `${baseUrl}${path}`, method, body === undefined ? '' : JSON.stringify(body)], { env: { NODE_OPTIONS: '' } });
    if (r.exitCode !== 0) throw new Error(`fake control ${method} ${path} failed: ${r.stderr}`);
    return r.stdout;
  };
}

/** `cachenat run` inside namespace `ns` with this config; by default waits for its "ready" line. */
export async function startDaemon(lab: Lab, ns: string, daemon: { configPath: string; dir: string; env: Record<string, string> }, start: StartOptions = {}): Promise<Daemon> {
  const configPath = start.configPath ?? daemon.configPath;
  const label = ns === lab.ns.nat ? 'cachenat run' : `cachenat run in ${ns}`;
  const proc = lab.spawnIn(ns, process.execPath, [CLI, 'run', '--config', configPath], { env: { ...daemon.env, ...start.env }, label });
  if (start.waitReady === false) return { process: proc, configPath: daemon.configPath, dir: daemon.dir, readyAt: Number.NaN };
  const ready = await proc.waitForLine(/"msg":"ready/, start.readyTimeoutMs ?? 20_000);
  return { process: proc, configPath: daemon.configPath, dir: daemon.dir, readyAt: (JSON.parse(ready) as { time: number }).time };
}

/** The CLI inside namespace `ns` against this config; `exact`: stdout exactly as printed. */
export async function cliIn(
  lab: Lab,
  ns: string,
  daemon: { configPath: string; env: Record<string, string> },
  args: string[],
  exact?: { stripFinalNewline: false },
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await lab.exec(ns, process.execPath, [CLI, ...args, '--config', daemon.configPath], { env: daemon.env, reject: false, ...exact });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

export { loadFactor, stretch } from './load.js';

/** Polls until `check` returns a truthy value; fails with the last value seen and the machine's load. */
type Falsy = undefined | null | false | 0 | '';
export async function waitFor<T>(what: string, check: () => Promise<T | Falsy> | T | Falsy, timeoutMs = 20_000, everyMs = 150): Promise<Exclude<T, Falsy>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await check();
      if (last) return last as Exclude<T, Falsy>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (load average per core now ${loadFactor().toFixed(1)}); last: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { foreignLines } from './foreign-rules.js';

export const portsOf = (status: Awaited<ReturnType<LabRig['status']>>): Record<string, number> =>
  Object.fromEntries(status.forwards.map((f) => [f.key, f.listenPort]));
