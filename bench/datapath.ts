// Data-path cost: the same client, NAT host and cache servers, reached three
// ways. "direct" routes through the NAT host without DNAT (the caches get a
// route back), "cachenat" goes through the daemon's DNAT + MASQUERADE, and
// "userspace-proxy" through socat and HAProxy listening on the NAT host.
// All traffic stays inside the lab's namespaces.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../lab/lab.js';
import { benchFile, startDaemonLab } from './lab-daemon.js';
import { median, round, say, sleep } from './util.js';

export type PathName = 'direct' | 'cachenat' | 'userspace-proxy';

export interface DatapathRow {
  workload: string;
  path: PathName;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** For userspace-proxy rows: which proxy. */
  proxy?: 'socat' | 'haproxy';
  clients: number;
  pipeline: number;
  requests: number;
  tool: 'redis-benchmark' | 'bench/memcache-load';
  runs: number;
}

export interface DatapathOptions {
  rounds: number;
  /** Requests per run at pipeline 1; pipeline 16 runs five times as many. */
  requests: number;
}

const NAME = { redis: 'bench-rd.bnch01.0001.use1.cache.amazonaws.com', memcached: 'bench-mc.bnch01.0001.use1.cache.amazonaws.com' };
const CLIENTS = 50;

interface Route {
  path: PathName;
  proxy?: 'socat' | 'haproxy';
  redis: { host: string; port: number };
  memcached: { host: string; port: number };
}

interface Sample {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

async function redisBenchmark(lab: Lab, to: Route['redis'], op: 'get' | 'set', pipeline: number, requests: number): Promise<Sample> {
  const args = ['-h', to.host, '-p', String(to.port), '-c', String(CLIENTS), '-n', String(requests), '-P', String(pipeline), '-t', op, '-d', '64', '-r', '10000', '--csv'];
  const r = await lab.exec(lab.ns.client, 'redis-benchmark', args, { timeoutMs: 120_000 });
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = r.stdout.trim().split('\n').find((line) => line.startsWith(`"${op.toUpperCase()}"`));
  if (!row) throw new Error(`redis-benchmark printed no ${op} result: ${r.stdout} ${r.stderr}`);
  const cells = row.split(',').map((cell) => Number(cell.replace(/"/g, '')));
  return { opsPerSec: cells[1] as number, p50Ms: cells[4] as number, p99Ms: cells[6] as number };
}

async function memcacheLoad(lab: Lab, to: Route['memcached'], op: 'get' | 'set', pipeline: number, requests: number): Promise<Sample> {
  const args = [benchFile('memcache-load.js'), to.host, String(to.port), op, '--clients', String(CLIENTS), '--pipeline', String(pipeline), '--requests', String(requests)];
  const r = await lab.exec(lab.ns.client, process.execPath, args, { timeoutMs: 120_000, env: { NODE_OPTIONS: '' } });
  return JSON.parse(r.stdout.trim()) as Sample;
}

function haproxyConfig(): string {
  return `global
  maxconn 4096
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend redis
  bind 198.18.0.1:8379
  default_backend redis
backend redis
  server redis-11 198.19.0.11:6379
frontend memcached
  bind 198.18.0.1:8211
  default_backend memcached
backend memcached
  server memc-21 198.19.0.21:11211
`;
}

async function waitReachable(lab: Lab, host: string, port: number, protocol: 'redis' | 'memcached'): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await lab.probe(lab.ns.client, host, port, protocol, 1000);
    if (r.ok) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} (${protocol}) not reachable from the client: ${r.error}`);
    await sleep(200);
  }
}

export async function benchDatapath(options: DatapathOptions): Promise<DatapathRow[]> {
  const rig = await startDaemonLab({
    redis: 1,
    memcached: 1,
    topology: {
      clusters: [
        { id: 'bench-rd', engine: 'redis', nodes: [{ id: '0001', address: NAME.redis, port: 6379 }] },
        { id: 'bench-mc', engine: 'memcached', nodes: [{ id: '0001', address: NAME.memcached, port: 11211 }] },
      ],
    },
    hosts: { [NAME.redis]: '198.19.0.11', [NAME.memcached]: '198.19.0.21' },
    dnsInterval: '5s',
    discoveryInterval: '30s',
  });
  const { lab } = rig;
  try {
    say('datapath: lab up, starting cachenat, socat and HAProxy on the NAT host');
    await rig.startDaemon();
    // The plain-routing baseline needs the caches to know the way back.
    await lab.addReturnRoutes();
    lab.spawnIn(lab.ns.nat, 'socat', ['TCP-LISTEN:7379,bind=198.18.0.1,reuseaddr,fork,backlog=256', 'TCP:198.19.0.11:6379,nodelay'], { label: 'socat redis' });
    lab.spawnIn(lab.ns.nat, 'socat', ['TCP-LISTEN:7211,bind=198.18.0.1,reuseaddr,fork,backlog=256', 'TCP:198.19.0.21:11211,nodelay'], { label: 'socat memcached' });
    const haproxyCfg = join(rig.dir, 'haproxy.cfg');
    writeFileSync(haproxyCfg, haproxyConfig());
    lab.spawnIn(lab.ns.nat, 'haproxy', ['-f', haproxyCfg, '-db'], { label: 'haproxy' });

    const nat = lab.addr.natExt;
    const routes: Route[] = [
      { path: 'direct', redis: { host: '198.19.0.11', port: 6379 }, memcached: { host: '198.19.0.21', port: 11211 } },
      { path: 'cachenat', redis: { host: nat, port: 6379 }, memcached: { host: nat, port: 11211 } },
      { path: 'userspace-proxy', proxy: 'socat', redis: { host: nat, port: 7379 }, memcached: { host: nat, port: 7211 } },
      { path: 'userspace-proxy', proxy: 'haproxy', redis: { host: nat, port: 8379 }, memcached: { host: nat, port: 8211 } },
    ];
    for (const route of routes) {
      await waitReachable(lab, route.redis.host, route.redis.port, 'redis');
      await waitReachable(lab, route.memcached.host, route.memcached.port, 'memcached');
    }

    const workloads = [
      { name: 'redis-set', engine: 'redis', op: 'set', pipeline: 1 },
      { name: 'redis-get', engine: 'redis', op: 'get', pipeline: 1 },
      { name: 'redis-set-p16', engine: 'redis', op: 'set', pipeline: 16 },
      { name: 'redis-get-p16', engine: 'redis', op: 'get', pipeline: 16 },
      { name: 'memcached-set', engine: 'memcached', op: 'set', pipeline: 1 },
      { name: 'memcached-get', engine: 'memcached', op: 'get', pipeline: 1 },
      { name: 'memcached-set-p16', engine: 'memcached', op: 'set', pipeline: 16 },
      { name: 'memcached-get-p16', engine: 'memcached', op: 'get', pipeline: 16 },
    ] as const;

    const samples = new Map<string, Sample[]>();
    const keyOf = (workload: string, route: Route) => `${workload}|${route.path}|${route.proxy ?? ''}`;
    for (let round = 0; round < options.rounds; round++) {
      say(`datapath: round ${round + 1}/${options.rounds}`);
      for (const w of workloads) {
        const requests = w.pipeline === 1 ? options.requests : options.requests * 5;
        // Rotate the order each round so no path always runs first or last.
        const order = routes.map((_, i) => routes[(i + round) % routes.length] as Route);
        for (const route of order) {
          const sample =
            w.engine === 'redis'
              ? await redisBenchmark(lab, route.redis, w.op, w.pipeline, requests)
              : await memcacheLoad(lab, route.memcached, w.op, w.pipeline, requests);
          const key = keyOf(w.name, route);
          samples.set(key, [...(samples.get(key) ?? []), sample]);
        }
      }
    }

    const rows: DatapathRow[] = [];
    for (const w of workloads) {
      for (const route of routes) {
        const list = samples.get(keyOf(w.name, route)) ?? [];
        const row: DatapathRow = {
          workload: w.name,
          path: route.path,
          opsPerSec: round(median(list.map((s) => s.opsPerSec)), 0),
          p50Ms: round(median(list.map((s) => s.p50Ms)), 3),
          p99Ms: round(median(list.map((s) => s.p99Ms)), 3),
          clients: CLIENTS,
          pipeline: w.pipeline,
          requests: w.pipeline === 1 ? options.requests : options.requests * 5,
          tool: w.engine === 'redis' ? 'redis-benchmark' : 'bench/memcache-load',
          runs: list.length,
        };
        if (route.proxy) row.proxy = route.proxy;
        rows.push(row);
      }
    }
    return rows;
  } finally {
    await rig.down();
  }
}
