// How fast a change out there becomes a working forward, measured from the
// client's side: a prober in the client namespace opens a new connection
// every 10 ms and asks `whoami`, so "converged" means a real command reached
// the new target.
//   - DNS: the primary's name moves to the replica (a failover), at a random
//     phase of the DNS interval; 1 s and the default 5 s.
//   - API: a node appears in the API; time until its new port answers.
//   - Restart: SIGTERM and a fresh `cachenat run` while probing all along;
//     time from the signal to READY, and every probe must succeed.

import type { FakeTopology } from '../lab/fake-elasticache-model.js';
import type { LabProcess } from '../lab/process.js';
import { NAME, baseTopology } from '../lab/rig.js';
import { benchFile, startDaemonLab, type DaemonLab } from './lab-daemon.js';
import { median, round, say, sleep } from './util.js';

export interface ConvergenceResult {
  dnsChangeMs: number;
  apiChangeMs: number;
  restartToReadyMs: number;
  /** dns.interval 1 s (dnsChangeMs is this one) and the default 5 s: medians and every run. */
  dns: { intervalMs: number; medianMs: number; runsMs: number[] }[];
  api: { discoveryIntervalMs: number; runsMs: number[] };
  restart: { runsMs: number[]; probes: number; failedProbes: number; maxGapMs: number; rulesUntouched: boolean };
}

export interface ConvergenceOptions {
  dnsRuns1s: number;
  dnsRuns5s: number;
  apiRuns: number;
  restartRuns: number;
}

const API_INTERVAL = { text: '5s', ms: 5000 };

interface ProbeLine {
  t: number;
  value: string | null;
}

/** Starts the prober in the client namespace; resolves once it printed its first answer or failure. */
async function startProber(rig: DaemonLab, port: number, forMs: number): Promise<{ proc: LabProcess; lines(): ProbeLine[]; summary(): Promise<{ probes: number; failures: number; maxGapMs: number }> }> {
  const { lab } = rig;
  const proc = lab.spawnIn(lab.ns.client, process.execPath, [benchFile('prober.js'), lab.addr.natExt, String(port), 'redis', '--every', '10', '--for', String(forMs)], {
    label: 'prober',
    env: { NODE_OPTIONS: '' },
  });
  await proc.waitForLine(/^\{"t"/, 10_000);
  const lines = () => proc.stdout.filter((l) => l.startsWith('{"t"')).map((l) => JSON.parse(l) as ProbeLine);
  return {
    proc,
    lines,
    async summary() {
      await proc.exited;
      const last = proc.stdout.find((l) => l.startsWith('{"summary"'));
      if (!last) throw new Error(`prober printed no summary: ${proc.output.slice(-5).join(' | ')}`);
      return (JSON.parse(last) as { summary: { probes: number; failures: number; maxGapMs: number } }).summary;
    },
  };
}

/** First time at or after `since` the prober saw `value`. */
async function firstSeen(prober: { lines(): ProbeLine[] }, value: string, since: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = prober.lines().find((l) => l.value === value && l.t >= since);
    if (hit) return hit.t;
    if (Date.now() > deadline) throw new Error(`the client never reached ${value} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Where the primary's name points now: each failover moves it to the other server. */
const primary = { ip: '198.19.0.11' };

async function dnsFailovers(rig: DaemonLab, intervalMs: number, runs: number): Promise<number[]> {
  const results: number[] = [];
  for (let r = 0; r < runs; r++) {
    const next = primary.ip === '198.19.0.11' ? '198.19.0.12' : '198.19.0.11';
    const prober = await startProber(rig, 6379, intervalMs * 2 + 5000);
    // A random phase: the change lands anywhere in the daemon's DNS cycle.
    await sleep(Math.random() * intervalMs);
    const t0 = Date.now();
    rig.lab.setHost(NAME.primary, next);
    const seen = await firstSeen(prober, next === '198.19.0.11' ? 'redis-11' : 'redis-12', t0, intervalMs * 2 + 4000);
    results.push(seen - t0);
    prober.proc.kill();
    await prober.proc.exited;
    primary.ip = next;
  }
  return results;
}

async function apiAdds(rig: DaemonLab, runs: number): Promise<number[]> {
  const topology = baseTopology();
  const sessions = topology.clusters.find((c) => c.id === 'sessions');
  const results: number[] = [];
  for (let r = 0; r < runs; r++) {
    // Base ports run 6379-6383; each run's new node takes the next one.
    const nodeId = String(r + 2).padStart(4, '0');
    const port = 6384 + r;
    const name = `sessions.abc123.${nodeId}.use1.cache.amazonaws.com`;
    rig.lab.setHost(name, '198.19.0.14');
    sessions?.nodes?.push({ id: nodeId, address: name, port: 6379 });
    const prober = await startProber(rig, port, API_INTERVAL.ms * 2 + 5000);
    await sleep(Math.random() * API_INTERVAL.ms);
    const t0 = Date.now();
    await rig.setTopology(topology as FakeTopology);
    const seen = await firstSeen(prober, 'redis-14', t0, API_INTERVAL.ms * 2 + 4000);
    results.push(seen - t0);
    prober.proc.kill();
    await prober.proc.exited;
  }
  return results;
}

async function cachenatRules(rig: DaemonLab): Promise<string> {
  const r = await rig.lab.exec(rig.lab.ns.nat, 'iptables-save', []);
  return r.stdout
    .split('\n')
    .filter((l) => l.includes('CACHENAT') || l.includes('cachenat'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
    .join('\n');
}

async function restarts(rig: DaemonLab, daemon: { process: LabProcess }, runs: number) {
  const results: number[] = [];
  const before = await cachenatRules(rig);
  const prober = await startProber(rig, 6379, runs * 15_000 + 4000);
  let current = daemon.process;
  for (let r = 0; r < runs; r++) {
    await sleep(1000);
    // As `systemctl restart` does: stop (SIGTERM, wait for exit), then start.
    const t0 = Date.now();
    current.kill('SIGTERM');
    await current.exited;
    const next = await rig.startDaemon();
    results.push(next.readyAt - t0);
    current = next.process;
  }
  await sleep(1000);
  prober.proc.kill('SIGTERM');
  const summary = await prober.summary();
  const after = await cachenatRules(rig);
  return { runsMs: results, daemon: current, ...summary, rulesUntouched: before === after };
}

export async function benchConvergence(options: ConvergenceOptions): Promise<ConvergenceResult> {
  const hosts: Record<string, string> = {
    [NAME.primary]: '198.19.0.11',
    [NAME.reader]: '198.19.0.12',
    [NAME.orders1]: '198.19.0.11',
    [NAME.orders2]: '198.19.0.12',
    [NAME.sessions1]: '198.19.0.13',
    [NAME.mc(1)]: '198.19.0.21',
    [NAME.mc(2)]: '198.19.0.21',
    [NAME.mc(3)]: '198.19.0.21',
  };
  primary.ip = hosts[NAME.primary] as string;
  const rig = await startDaemonLab({ redis: 4, memcached: 1, topology: baseTopology(), hosts, dnsInterval: '1s', discoveryInterval: API_INTERVAL.text });
  try {
    const daemon = await rig.startDaemon();

    say(`convergence: DNS failover at dns.interval 1s (${options.dnsRuns1s} runs)`);
    const dns1 = await dnsFailovers(rig, 1000, options.dnsRuns1s);

    say(`convergence: API change at discovery.interval ${API_INTERVAL.text} (${options.apiRuns} runs)`);
    const api = await apiAdds(rig, options.apiRuns);

    say(`convergence: restart while probing (${options.restartRuns} runs); the restarted daemon uses the default intervals`);
    rig.configure({ dnsInterval: '5s', discoveryInterval: '30s' });
    const restart = await restarts(rig, daemon, options.restartRuns);

    say(`convergence: DNS failover at the default dns.interval 5s (${options.dnsRuns5s} runs)`);
    const dns5 = await dnsFailovers(rig, 5000, options.dnsRuns5s);

    return {
      dnsChangeMs: round(median(dns1), 0),
      apiChangeMs: round(median(api), 0),
      restartToReadyMs: round(median(restart.runsMs), 0),
      dns: [
        { intervalMs: 1000, medianMs: round(median(dns1), 0), runsMs: dns1 },
        { intervalMs: 5000, medianMs: round(median(dns5), 0), runsMs: dns5 },
      ],
      api: { discoveryIntervalMs: API_INTERVAL.ms, runsMs: api },
      restart: { runsMs: restart.runsMs, probes: restart.probes, failedProbes: restart.failures, maxGapMs: restart.maxGapMs, rulesUntouched: restart.rulesUntouched },
    };
  } finally {
    await rig.down();
  }
}
