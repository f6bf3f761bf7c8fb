// A lab with cachenat in it: the fake API inside the NAT namespace, names that
// resolve to the cache servers, the real `cachenat run` process, and ways to
// watch and poke all of them. Shared by the end-to-end tests and `npm run demo`.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab } from './lab.js';
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
}

export interface LabRig {
  lab: Lab;
  down(): Promise<void>;
  apiUrl: string;
  dir: string;
  configPath: string;
  start(): Promise<Daemon>;
  cli(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  status(): Promise<{ forwards: { key: string; listenPort: number; targetIp?: string; state: string }[] }>;
  save(table?: 'nat' | 'filter'): Promise<string>;
  iptables(args: string[]): Promise<void>;
  setTopology(topology: FakeTopology): Promise<void>;
  setFault(kind: string, count?: number): Promise<void>;
  apiRequests(): Promise<number>;
  probe(from: 'client' | 'rogue' | 'side', port: number, proto?: 'redis' | 'memcached', timeoutMs?: number): Promise<string | undefined>;
}

export const labConfig = (apiUrl: string, dir: string, extra = ''): string => `
aws:
  region: us-east-1
  endpoint: ${apiUrl}
discovery:
  interval: 1s
  removalGrace: 4s
  apiTimeout: 1s
dns:
  interval: 500ms
forward:
  inboundInterface: ext0
  allowedSources: [198.18.0.10/32]
  publicAddress: 198.18.0.1
ports:
  reuseAfter: 1h
ipForward: enable
state:
  dir: ${dir}/state
  statusFile: ${dir}/run/status.json
persist:
  rulesFile: ${dir}/rules.v4
log:
  level: debug
${extra}`;

export const daemonEnv = (dir: string): Record<string, string> => ({
  AWS_ACCESS_KEY_ID: 'AKIDLAB',
  AWS_SECRET_ACCESS_KEY: 'lab-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  CACHENAT_SYSCTL_DIR: join(dir, 'sysctl.d'),
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
});

/** Brings up a lab with the base topology served and names resolving. Call down() when done, even on failure. */
export async function startRig(options: { configExtra?: string } = {}): Promise<LabRig> {
  const lab = await startLab();
  try {
    return await rigOn(lab, options);
  } catch (err) {
    await lab.down();
    throw err;
  }
}

async function rigOn(lab: Lab, options: { configExtra?: string }): Promise<LabRig> {
  pointNamesAtServers(lab);
  const apiUrl = await lab.startFakeApi(baseTopology());
  const dir = join(lab.tmpDir, 'cachenat');
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, labConfig(apiUrl, dir, options.configExtra));
  const env = daemonEnv(dir);

  const control = async (method: string, path: string, body?: unknown): Promise<string> => {
    const script = 'const [u,m,b]=process.argv.slice(1);fetch(u,{method:m,body:b||undefined}).then(async r=>{const t=await r.text();if(!r.ok){console.error(t);process.exit(1)}console.log(t)})';
    const r = await lab.exec(lab.ns.nat, process.execPath, ['-e', script, `${apiUrl}${path}`, method, body === undefined ? '' : JSON.stringify(body)]);
    if (r.exitCode !== 0) throw new Error(`fake control ${method} ${path} failed: ${r.stderr}`);
    return r.stdout;
  };

  const rig: LabRig = {
    lab,
    down: () => lab.down(),
    apiUrl,
    dir,
    configPath,
    async start() {
      const proc = lab.spawnIn(lab.ns.nat, process.execPath, [CLI, 'run', '--config', configPath], { env, label: 'cachenat run' });
      await proc.waitForLine(/"msg":"ready/, 20_000);
      return { process: proc, configPath, dir };
    },
    async cli(args) {
      const r = await lab.exec(lab.ns.nat, process.execPath, [CLI, ...args, '--config', configPath], { env, reject: false });
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    },
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
      await control('PUT', '/_fake/fault', count === undefined ? { kind } : { kind, count });
    },
    async apiRequests() {
      const body = JSON.parse(await control('GET', '/_fake/requests')) as { count?: number; requests?: unknown[] } | unknown[];
      if (Array.isArray(body)) return body.length;
      return body.count ?? body.requests?.length ?? 0;
    },
    async probe(from, port, proto = port >= 11211 ? 'memcached' : 'redis', timeoutMs = 4000) {
      const host = from === 'side' ? lab.addr.natSide : lab.addr.natExt;
      const r = await lab.probe(lab.ns[from], host, port, proto, timeoutMs);
      return r.ok ? r.value : undefined;
    },
  };
  return rig;
}

/** Polls until `check` returns a truthy value; fails with the last value seen. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await check();
      if (last) return last as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * iptables-save without cachenat's own lines, the timestamp comments and the
 * policy packet counters (traffic moves those): what must never change.
 */
export const foreignLines = (save: string): string =>
  save
    .split('\n')
    .filter((l) => !l.startsWith('#') && !l.includes('CACHENAT-'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'))
    .join('\n');

export const portsOf = (status: Awaited<ReturnType<LabRig['status']>>): Record<string, number> =>
  Object.fromEntries(status.forwards.map((f) => [f.key, f.listenPort]));
