// One whole daemon pass at fleet scale, with the daemon's own wiring
// (buildEdges): every page of both API calls from the lab's fake API (AWS page size), every name
// through getaddrinfo (the namespace's hosts file), the kernel read and the
// restore. Runs inside a lab NAT namespace and prints one JSON line:
//
//   node dist/bench/daemon-pass.js --api URL --runs N --state DIR
//
// {"firstPassMs", "discoveryPassMs", "dnsPassMs", "describeMs", "resolveMs", "forwards", "runs"}
// then removes every rule it installed.

import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { buildEdges } from '../src/cli/edges.js';
import { Reconciler } from '../src/daemon/reconciler.js';
import type { Resolver } from '../src/core/discovery/types.js';
import { flushOwnedRules } from '../src/netfilter/owned-rules.js';
import { benchConfig, median, round } from './util.js';

const { values } = parseArgs({ options: { api: { type: 'string' }, runs: { type: 'string', default: '5' }, state: { type: 'string' }, allocations: { type: 'boolean', default: false } } });
if (values.api === undefined || values.state === undefined) {
  process.stderr.write('usage: daemon-pass --api URL --state DIR [--runs N]\n');
  process.exit(2);
}
const runs = Number(values.runs);

const config = benchConfig({ aws: { region: 'us-east-1', endpoint: values.api }, state: { dir: values.state }, persist: { rulesFile: 'none' } });
const edges = buildEdges(config, pino({ level: 'silent' }));

// Spans: how long describe() and the lookups of one pass take.
let describeMs = 0;
let resolveStarted: number | undefined;
let resolveEnded = 0;
const source = edges.source;
edges.source = {
  async describe(signal) {
    const started = performance.now();
    try {
      return await source.describe(signal);
    } finally {
      describeMs = performance.now() - started;
    }
  },
};
const resolver: Resolver = edges.resolver;
edges.resolver = {
  async resolve(name) {
    resolveStarted ??= performance.now();
    try {
      return await resolver.resolve(name);
    } finally {
      resolveEnded = performance.now();
    }
  },
};

// Passes run back to back here, and the Reconciler reuses an answer while it
// is younger than its name's period (node names: discovery.interval; others:
// dns.interval). Moving the clock on by the interval of the pass each one
// stands for makes it look up what the daemon's pass of that kind looks up:
// a discovery pass every name, a DNS-only pass the names that move.
let skewMs = 0;
edges.clock = { now: () => Date.now() + skewMs };

const reconciler = new Reconciler(config, edges);
const pass = async (discover: boolean) => {
  skewMs += discover ? config.discovery.interval : config.dns.interval;
  resolveStarted = undefined;
  const report = await reconciler.pass({ discover, write: true });
  if (report.discovery.status === 'failed') throw new Error(`discovery failed: ${report.discovery.error.message}`);
  if (report.kernelError) throw report.kernelError;
  return { ms: report.durationMs, resolveMs: resolveStarted === undefined ? 0 : resolveEnded - resolveStarted, forwards: report.plan.forwards.filter((f) => f.state === 'active').length, wrote: report.applied };
};

try {
  const first = await pass(true);
  const discovery: number[] = [];
  const describe: number[] = [];
  const resolve: number[] = [];
  const dns: number[] = [];
  let writes = 0;
  for (let r = 0; r < runs; r++) {
    const d = await pass(true);
    discovery.push(d.ms);
    describe.push(describeMs);
    resolve.push(d.resolveMs);
    const s = await pass(false);
    dns.push(s.ms);
    writes += Number(d.wrote) + Number(s.wrote);
  }
  if (values.allocations) {
    // Where a steady daemon's passes allocate (what keeps its garbage collector
    // busy): six passes, one of them asking the API, as in 30 s of the daemon.
    const thirtySeconds = async () => {
      for (let p = 0; p < 6; p++) await pass(p === 0);
    };
    process.stderr.write(`${await allocationSites(thirtySeconds)}\n`);
    // The same again, five times, counting the young generation's collections:
    // with the unit's 1 MB semi-spaces each is about 1 MB allocated.
    const { PerformanceObserver, constants } = await import('node:perf_hooks');
    let minor = 0;
    let major = 0;
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
        else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    for (let r = 0; r < 5; r++) await thirtySeconds();
    await new Promise((resolve) => setImmediate(resolve));
    observer.disconnect();
    process.stderr.write(`garbage collections in 30 passes (five times six): ${minor} minor, ${major} major\n`);
  }
  process.stdout.write(
    `${JSON.stringify({
      firstPassMs: round(first.ms),
      discoveryPassMs: round(median(discovery)),
      dnsPassMs: round(median(dns)),
      describeMs: round(median(describe)),
      resolveMs: round(median(resolve)),
      forwards: first.forwards,
      writesAfterFirst: writes,
      runs,
    })}\n`,
  );
} finally {
  await flushOwnedRules(edges.netfilter);
  (source as { destroy?: () => void }).destroy?.();
}

/** Bytes allocated by `work`, by allocating function (sampled every 4 kB, collected objects included). */
async function allocationSites(work: () => Promise<void>): Promise<string> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await work();
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: AllocationNode } };
  session.disconnect();
  interface AllocationNode {
    callFrame: { functionName: string; url: string; lineNumber: number };
    selfSize: number;
    children: AllocationNode[];
  }
  const bySite = new Map<string, number>();
  let total = 0;
  const name = ({ functionName, url, lineNumber }: AllocationNode['callFrame']) => `${functionName || '(anonymous)'} ${url.slice(url.lastIndexOf('/') + 1)}:${lineNumber + 1}`;
  // A built-in (sort, split, …) is named with the function that called it.
  const walk = (node: AllocationNode, caller: string) => {
    const own = name(node.callFrame);
    const site = node.callFrame.url === '' ? `${own} in ${caller}` : own;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) walk(child, node.callFrame.url === '' ? caller : own);
  };
  walk(profile.head, '(root)');
  const top = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25);
  return [`allocated in 6 passes: ${(total / 2 ** 20).toFixed(1)} MB`, ...top.map(([site, bytes]) => `  ${(bytes / 2 ** 20).toFixed(2).padStart(7)} MB  ${site}`)].join('\n');
}
