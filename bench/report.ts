// Turns results into the printed table, the verdict on every target, and
// BENCHMARKS.md. Every figure in the Markdown comes from the results; the
// prose around them says how they were taken.

import type { FootprintRow } from './footprint.js';
import type { HeapBreakdown } from './heap-snapshot.js';
import type { BenchResults } from './results.js';

/**
 * The footprint as it was before the memory and CPU work of BENCHMARKS.md §4
 * (bench/results/footprint-before.json): the same measurement, run on that
 * commit, kept so each regeneration shows before and after side by side.
 */
export interface FootprintBaseline {
  commit: string;
  date: string;
  /** 1-minute load average over that run (the machine was shared). */
  loadAverage: { before: number; max: number };
  windowS: number;
  sizes: FootprintRow[];
  heap: HeapBreakdown;
}

export interface Verdict {
  target: string;
  measured: string;
  ok: boolean;
}

const ms = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
const num = (v: number): string => Math.round(v).toLocaleString('en-US');

export function verdicts(r: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  const at = (n: number) => r.reconcile.find((row) => row.nodes === n);
  const k1 = at(1000);
  if (k1) {
    out.push({ target: 'reconcile, 1000 nodes: full apply ≤ 100 ms', measured: ms(k1.fullApplyMs), ok: k1.fullApplyMs <= 100 });
    out.push({ target: 'reconcile, 1000 nodes: no-op pass ≤ 30 ms with zero kernel writes', measured: `${ms(k1.noopPassMs)}, ${k1.noopRestores} writes`, ok: k1.noopPassMs <= 30 && k1.noopRestores === 0 });
    out.push({ target: 'reconcile, 1000 nodes: one change ≤ 40 ms', measured: ms(k1.oneChangeMs), ok: k1.oneChangeMs <= 40 });
    out.push({ target: 'reconcile, 1000 nodes: ≥ 20× faster than one iptables call per rule', measured: `${k1.speedup}× (${ms(k1.perRuleBaselineMs)} vs ${ms(k1.fullApplyMs)})`, ok: k1.speedup >= 20 });
  }
  const k5 = at(5000);
  if (k5) out.push({ target: 'reconcile, 5000 nodes: full apply ≤ 500 ms', measured: ms(k5.fullApplyMs), ok: k5.fullApplyMs <= 500 });

  const workloads = [...new Set(r.datapath.map((d) => d.workload))];
  let tput = 0;
  let p99 = 0;
  let ahead = 0;
  const misses: string[] = [];
  for (const w of workloads) {
    const direct = r.datapath.find((d) => d.workload === w && d.path === 'direct');
    const ours = r.datapath.find((d) => d.workload === w && d.path === 'cachenat');
    const proxies = r.datapath.filter((d) => d.workload === w && d.path === 'userspace-proxy');
    if (!direct || !ours) continue;
    if (ours.opsPerSec >= 0.95 * direct.opsPerSec) tput++;
    else misses.push(`${w} throughput ${((ours.opsPerSec / direct.opsPerSec) * 100).toFixed(0)}%`);
    if (ours.p99Ms <= 1.1 * direct.p99Ms) p99++;
    else misses.push(`${w} p99 ${(ours.p99Ms / direct.p99Ms).toFixed(2)}×`);
    if (proxies.every((p) => ours.opsPerSec > p.opsPerSec && ours.p99Ms < p.p99Ms)) ahead++;
    else misses.push(`${w} not ahead of every proxy on both`);
  }
  const n = workloads.length;
  if (n > 0) {
    out.push({ target: 'data path: cachenat ≥ 95% of direct throughput', measured: `${tput}/${n} workloads`, ok: tput === n });
    out.push({ target: 'data path: cachenat p99 ≤ 1.1× direct', measured: `${p99}/${n} workloads`, ok: p99 === n });
    out.push({ target: 'data path: ahead of socat and HAProxy on throughput and p99', measured: `${ahead}/${n} workloads`, ok: ahead === n });
  }

  const c = r.convergence;
  // A bound holds only if every run keeps it: the verdicts judge the worst run, the median is shown beside it.
  const spread = (median: number, runs: number[]) => `median ${ms(median)}, worst ${ms(Math.max(...runs))} of ${runs.length}`;
  const dns1 = c.dns.find((d) => d.intervalMs === 1000);
  if (dns1) out.push({ target: 'DNS change → new target, dns.interval 1 s: ≤ 1.5 s', measured: spread(dns1.medianMs, dns1.runsMs), ok: Math.max(...dns1.runsMs) <= 1500 });
  const dns5 = c.dns.find((d) => d.intervalMs === 5000);
  if (dns5) out.push({ target: 'DNS change → new target, dns.interval 5 s (default): ≤ 5.5 s', measured: spread(dns5.medianMs, dns5.runsMs), ok: Math.max(...dns5.runsMs) <= 5500 });
  out.push({ target: `API change → forward working, discovery.interval ${c.api.discoveryIntervalMs / 1000} s: ≤ interval + 0.5 s`, measured: spread(c.apiChangeMs, c.api.runsMs), ok: Math.max(...c.api.runsMs) <= c.api.discoveryIntervalMs + 500 });
  out.push({
    target: 'restart never drops a forward (rules untouched)',
    measured: `${c.restart.failedProbes} of ${c.restart.probes} probes failed, longest gap ${ms(c.restart.maxGapMs)}, rules ${c.restart.rulesUntouched ? 'untouched' : 'CHANGED'}`,
    ok: c.restart.failedProbes === 0 && c.restart.rulesUntouched,
  });

  out.push(...footprintVerdicts(r));
  return out;
}

/** The footprint goals: memory and CPU at 10 and 1000 targets, and a pass's cost against the kernel calls it cannot avoid. */
function footprintVerdicts(r: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  const rows = r.footprint.sizes ?? [{ nodes: r.footprint.nodes, rssPeakMb: r.footprint.rssMb, rssMedianMb: r.footprint.rssMedianMb, cpuPercent: r.footprint.cpuPercent, selfCpuPercent: r.footprint.selfCpuPercent, childCpuPercent: r.footprint.childCpuPercent }];
  const goals = [
    { nodes: 1000, rssMb: 64, cpuPercent: 1 },
    { nodes: 10, rssMb: 48, cpuPercent: 0.2 },
  ];
  for (const goal of goals) {
    const row = rows.find((x) => x.nodes === goal.nodes);
    if (!row) continue;
    out.push({ target: `footprint, ${goal.nodes} nodes: RSS ≤ ${goal.rssMb} MB`, measured: `${row.rssPeakMb} MB peak (median ${row.rssMedianMb} MB${'anonMedianMb' in row ? `, of which anonymous ${row.anonMedianMb} MB` : ''})`, ok: row.rssPeakMb <= goal.rssMb });
    out.push({
      target: `footprint, ${goal.nodes} nodes: CPU ≤ ${goal.cpuPercent}% of one core`,
      measured: `${row.cpuPercent}% (daemon ${row.selfCpuPercent}%, its iptables/conntrack children ${row.childCpuPercent}%)`,
      ok: row.cpuPercent <= goal.cpuPercent,
    });
  }
  const k1 = r.reconcile.find((row) => row.nodes === 1000);
  if (k1?.ratios && k1.floors) {
    out.push({ target: 'reconcile, 1000 nodes: no-op pass ≤ 1.2× the bare kernel read', measured: `${k1.ratios.noop}× (${ms(k1.noopPassMs)} against ${ms(k1.floors.readMs)})`, ok: k1.ratios.noop <= 1.2 });
    out.push({
      target: 'reconcile, 1000 nodes: one change ≤ 1.2× (one read + one restore)',
      measured: `${k1.ratios.oneChange}× (${ms(k1.oneChangeMs)} against ${ms(k1.floors.readMs)} + ${ms(k1.floors.restoreMs)})${
        k1.ratios.oneChangeEveryStep !== undefined && k1.floors.saveMs !== undefined && k1.floors.cutMs !== undefined
          ? `; ${k1.ratios.oneChangeEveryStep}× against every step a move takes, each alone (+ port map save ${ms(k1.floors.saveMs)} + conntrack cut ${ms(k1.floors.cutMs)})`
          : ''
      }`,
      ok: k1.ratios.oneChange <= 1.2,
    });
  }
  return out;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function mdTable(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => ' --- ').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

function reconcileRows(r: BenchResults): { headers: string[]; rows: string[][] } {
  return {
    headers: ['nodes', 'rules', 'full apply', 'no-op pass', 'writes (no-op)', 'one change', 'per-rule baseline', 'speedup'],
    rows: r.reconcile.map((row) => [
      String(row.nodes),
      String(row.rules),
      ms(row.fullApplyMs),
      ms(row.noopPassMs),
      String(row.noopRestores),
      ms(row.oneChangeMs),
      `${ms(row.perRuleBaselineMs)}${row.baseline.method === 'extrapolated' ? ' (sampled)' : ''}`,
      `${row.speedup}×`,
    ]),
  };
}

function datapathRows(r: BenchResults): { headers: string[]; rows: string[][] } {
  return {
    headers: ['workload', 'path', 'ops/s', 'vs direct', 'p50', 'p99'],
    rows: r.datapath.map((d) => {
      const direct = r.datapath.find((x) => x.workload === d.workload && x.path === 'direct');
      return [
        d.workload,
        d.path === 'userspace-proxy' ? `proxy (${d.proxy})` : d.path,
        num(d.opsPerSec),
        direct ? `${((d.opsPerSec / direct.opsPerSec) * 100).toFixed(0)}%` : '',
        ms(d.p50Ms),
        ms(d.p99Ms),
      ];
    }),
  };
}

export function printTable(r: BenchResults): string {
  const rec = reconcileRows(r);
  const dp = datapathRows(r);
  const c = r.convergence;
  const dns5 = c.dns.find((d) => d.intervalMs === 5000);
  const f = r.footprint;
  return [
    'Reconcile (medians)',
    table(rec.headers, rec.rows),
    '',
    'Data path (medians)',
    table(dp.headers, dp.rows),
    '',
    `Convergence: DNS 1 s ${ms(c.dnsChangeMs)}, DNS 5 s ${ms(dns5?.medianMs)}, API (${c.api.discoveryIntervalMs / 1000} s) ${ms(c.apiChangeMs)}, restart → READY ${ms(c.restartToReadyMs)} (${c.restart.failedProbes}/${c.restart.probes} probes failed)`,
    `Footprint (${f.nodes} nodes, ${f.windowS} s): RSS ${f.rssMb} MB peak, CPU ${f.cpuPercent}%`,
    '',
    'Targets',
    table(['', 'target', 'measured'], verdicts(r).map((v) => [v.ok ? 'MET ' : 'MISS', v.target, v.measured])),
  ].join('\n');
}

/**
 * Sections measured by benchmarks of their own (metrics cost, HA failover)
 * live between these markers in BENCHMARKS.md; a regeneration keeps them as
 * they are.
 */
export const OWN_SECTIONS = { start: '<!-- sections from their own benchmarks: kept as they are when this file is generated -->', end: '<!-- end of sections from their own benchmarks -->' } as const;

/** The kept block of an existing BENCHMARKS.md (markers included), or empty. */
export function ownSectionsOf(markdown: string): string {
  const start = markdown.indexOf(OWN_SECTIONS.start);
  const end = markdown.indexOf(OWN_SECTIONS.end);
  return start === -1 || end < start ? '' : `${markdown.slice(start, end + OWN_SECTIONS.end.length)}\n\n`;
}

export function benchmarksMarkdown(r: BenchResults, ownSections = '', baseline?: FootprintBaseline): string {
  const m = r.meta.machine;
  const rec = reconcileRows(r);
  const dp = datapathRows(r);
  const c = r.convergence;
  const f = r.footprint;
  const k1 = r.reconcile.find((row) => row.nodes === 1000);
  const pass = k1?.daemonPass;
  const v = verdicts(r);
  const met = v.filter((x) => x.ok).length;
  const sampled = r.reconcile.filter((row) => row.baseline.method === 'extrapolated').map((row) => row.nodes);

  return `# Benchmarks

Measured by \`npm run bench\`${r.meta.quick ? ' **in quick mode** (fewer runs, shorter windows)' : ''} on ${r.meta.date}, in ${Math.round(r.meta.durationS)} s. Raw figures: [bench/results/latest.json](bench/results/latest.json) (machine and run counts in latest.meta.json). Re-run with \`npm run bench\` (about 15 minutes on 2 cores) or \`npm run bench -- --quick\` (under 3 minutes); both need root, and install what they miss (redis-tools, socat, haproxy) with apt-get.

![benchmark chart](bench/results/chart.svg)

**Verdict: ${met} of ${v.length} targets met.**

${mdTable(['', 'target', 'measured'], v.map((x) => [x.ok ? '✅ met' : '❌ missed', x.target, x.measured]))}

## Machine

| | |
| --- | --- |
| CPUs (\`nproc\`) | ${m.cpus} × ${m.cpuModel} |
| memory | ${m.memory} |
| kernel | ${m.kernel} |
| iptables | ${m.iptables} |
| Node.js | ${m.node} |
| tools | ${m.redisBenchmark}; ${m.socat}; ${m.haproxy} |

Load average (1 min) when the run began: ${r.meta.loadAverage.before}, when it ended: ${r.meta.loadAverage.after}${r.meta.loadAverage.max === undefined ? '' : `, highest in between (sampled every 5 s): ${r.meta.loadAverage.max}, which counts the benchmark's own load generators and servers during the data-path section`}${r.meta.loadAverage.before > m.cpus || r.meta.loadAverage.after > m.cpus ? ` — **more than the ${m.cpus} cores: other work shared the machine during this run, and every figure is skewed by it**` : ''}.

Everything runs on this one machine: clients, NAT host and caches are network namespaces joined by veth pairs and bridges (lab/lab.ts), so client, kernel forwarding and servers share ${m.cpus} cores. Absolute figures are this box's; the comparisons are what carries over.

## 1. Reconcile cost against fleet size

Method: for each size, a fresh network namespace holding a few foreign rules (a MASQUERADE for another subnet, a FORWARD policy of DROP with an ESTABLISHED accept) that must survive. cachenat's own \`Reconciler\` runs there with the real \`IptablesNetfilter\` through \`inNamespace\`: one \`iptables-save\` read of both tables, the planner, render, diff and one \`iptables-restore --noflush\`, plus the port map saved to disk, as in the daemon. cachenat installs N + 10 rules for N nodes: one DNAT rule per node in CACHENAT-DNAT between two CONNMARK rules that tag the flows it takes, one connmark-matched SNAT rule and one FORWARD accept for all of them, one PREROUTING rule per allowed source, one OUTPUT rule, and four jumps from the built-in chains (README, "Rules it installs"). Discovery answers from memory with IP literals (this section times everything after the API; the whole pass with the API and DNS is below). Fleets are half Redis, half Memcached, ten nodes a cluster.
- *full apply*: first pass on a kernel without cachenat rules (the chains flushed and a fresh state directory each run, so the pass also reads the kernel once more to look for rules to recover ports from, as a first start does);
- *no-op pass*: the next pass, nothing changed; every kernel write is counted, and there must be none;
- *one change*: one node's address changes (a replacement or failover): its DNAT rule changes, so CACHENAT-DNAT is rewritten whole (the SNAT and FORWARD rules match the connmark and stay as they are), and its old flows are deleted from conntrack;
- *per-rule baseline*: AWS's documented way, one \`iptables\` command per rule (a DNAT in PREROUTING, a MASQUERADE in POSTROUTING, an ACCEPT in FORWARD per node: 3N commands), run as a shell script inside the namespace.${sampled.length > 0 ? ` For ${sampled.join(' and ')} nodes the baseline would take minutes per run, so it is sampled: ${r.reconcile.find((row) => row.nodes === sampled[0])?.baseline.sampledNodes ?? '?'} nodes timed at five fill levels of the table (0, ¼, ½, ¾, full), the cost per node integrated over the fill (each call re-reads the growing table, so it gets slower).` : ''}

Medians of ${r.meta.runs.reconcile}. Every kernel call includes the cost of \`ip netns exec\`, which a real host does not pay.

${mdTable(rec.headers, rec.rows)}

Where a pass at 1000 nodes spends its time (medians):
${k1 ? `${k1.fullApplySpans ? `- full apply: ${ms(k1.fullApplySpans.kernelReadMs)} reading the kernel (two \`iptables-save\`: a first start also looks for installed rules to recover ports from), ${ms(k1.fullApplySpans.restoreMs)} in \`iptables-restore\`, ${ms(k1.fullApplySpans.restMs)} for the rest;
` : ''}- no-op pass: ${ms(k1.noopSpans.kernelReadMs)} reading the kernel (one \`iptables-save\`), ${ms(k1.noopSpans.restMs)} for parsing, planning, rendering, diffing and saving the port map;
- one change: ${ms(k1.oneChangeSpans.kernelReadMs)} reading, ${ms(k1.oneChangeSpans.restoreMs)} in \`iptables-restore\`, ${ms(k1.oneChangeSpans.conntrackMs)} in \`conntrack -D\`, ${ms(k1.oneChangeSpans.restMs)} for the rest.` : '- (no 1000-node row in this run)'}
${pass ? `
A whole daemon pass at 1000 nodes, with the daemon's own wiring (\`buildEdges\`): the SDK reading every page of both API calls from a local fake that pages like AWS (100 records a page), 1000 names resolved with getaddrinfo from the namespace's hosts file, the kernel read and diff. First pass (everything installed): ${ms(pass.firstPassMs)}; a pass with discovery and nothing to change: ${ms(pass.discoveryPassMs)} (of which the API ${ms(pass.describeMs)} and the lookups ${ms(pass.resolveMs)}); a DNS-only pass (the one that runs every \`dns.interval\`): ${ms(pass.dnsPassMs)}. Medians of ${pass.runs}; kernel writes after the first pass: ${pass.writesAfterFirst}.
` : ''}
## 2. Data path

Method: one Redis and one Memcached server behind the NAT host, the client in its own namespace, all traffic inside the lab. The same client reaches the same server four ways:
- **direct**: plain routing through the NAT host, no DNAT (the cache namespaces get a route back to the clients): the same hops with nothing rewritten;
- **cachenat**: the daemon's DNAT + MASQUERADE on the NAT host's address (\`cachenat run\` with the fake API);
- **userspace-proxy**: socat (\`fork\`, one process per connection) and HAProxy (\`mode tcp\`, 2 threads), both listening on the NAT host.

Redis: \`redis-benchmark -c 50 -d 64 -r 10000 -t get|set\` at pipeline 1 and 16. Memcached: Debian has no memtier_benchmark, so bench/memcache-load.ts (50 connections, 64-byte values, 10000 keys, pipeline 1 and 16) measures the same way. Pipeline-1 runs send ${r.datapath.find((d) => d.pipeline === 1)?.requests ?? '?'} requests, pipeline-16 runs five times as many. Each workload runs on every path in each of ${r.meta.runs.datapath}, in a rotated order; the figures are medians.

${mdTable(dp.headers, dp.rows)}
${noiseNote(r)}
## 3. Convergence

Method: the real daemon in the lab; a prober in the client namespace opens a new connection every 10 ms and asks \`whoami\`, so a change counts as converged when a client command really reached the new target.
- **DNS change** (a failover): the primary's name is pointed at the replica in the NAT host's hosts file, at a random phase of the DNS cycle. dns.interval 1 s: ${c.dns[0]?.runsMs.map((x) => ms(x)).join(', ')}; the default 5 s: ${c.dns.find((d) => d.intervalMs === 5000)?.runsMs.map((x) => ms(x)).join(', ') ?? 'n/a'}.
- **API change**: a node added to the fake API; time until its new port answers. discovery.interval ${c.api.discoveryIntervalMs / 1000} s (the default 30 s would only stretch the wait): ${c.api.runsMs.map((x) => ms(x)).join(', ')}.
- **Restart**: while probing, SIGTERM, wait for the exit, start \`cachenat run\` again (as \`systemctl restart\` does), until it logs READY: ${c.restart.runsMs.map((x) => ms(x)).join(', ')}. Over the whole window ${c.restart.probes} probes ran and ${c.restart.failedProbes} failed (longest gap between two answers ${ms(c.restart.maxGapMs)}); the cachenat rules before and after were ${c.restart.rulesUntouched ? 'identical' : 'different'}. Forwarding never depends on the process: the rules stay in the kernel while it restarts.

For scale: an NLB whose targets a Lambda refreshes every 5 minutes points at a failed-over primary for up to 5 minutes.

${footprintSection(r, baseline)}
${ownSections}## Where the time goes, and what is left

${analysis(r)}
`;
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

const HEAP_KINDS: [keyof HeapBreakdown['byKind'], string][] = [
  ['code', 'compiled code, bytecode and function metadata'],
  ['sourceText', 'source text of loaded scripts'],
  ['strings', 'other strings'],
  ['objects', 'objects'],
  ['arrays', 'arrays and their backing stores'],
  ['system', 'V8 internals (maps, contexts, …)'],
];

function heapTables(after: HeapBreakdown, before: HeapBreakdown | undefined, beforeLabel: string): string {
  const cols = before ? ['', beforeLabel, 'now'] : ['', 'now'];
  const row = (label: string, pick: (h: HeapBreakdown) => number) => [label, ...(before ? [mb(pick(before))] : []), mb(pick(after))];
  const kinds = mdTable(cols, [row('**live heap, total**', (h) => h.totalBytes), ...HEAP_KINDS.map(([k, label]) => row(label, (h) => h.byKind[k]))]);
  const packages = [...new Set([...(before?.codeByPackage ?? []), ...after.codeByPackage].filter((p) => p.bytes >= 64 * 1024).map((p) => p.pkg))];
  const bytesOf = (h: HeapBreakdown | undefined, pkg: string) => h?.codeByPackage.find((p) => p.pkg === pkg)?.bytes ?? 0;
  packages.sort((a, b) => Math.max(bytesOf(before, b), bytesOf(after, b)) - Math.max(bytesOf(before, a), bytesOf(after, a)));
  const code = mdTable(
    before ? ['code and source text of', beforeLabel, 'now'] : ['code and source text of', 'now'],
    packages.map((pkg) => [pkg, ...(before ? [mb(bytesOf(before, pkg))] : []), mb(bytesOf(after, pkg))]),
  );
  const own = mdTable(
    ["cachenat's objects (count)", 'retained now'],
    after.retainedBy.filter((x) => x.retainedBytes >= 1024).map((x) => [`${x.name} (${x.count})`, mb(x.retainedBytes)]),
  );
  return `${kinds}\n\n${code}\n\n${own}`;
}

function footprintSection(r: BenchResults, baseline: FootprintBaseline | undefined): string {
  const f = r.footprint;
  const rows: FootprintRow[] = f.sizes ?? [];
  const before = (n: number) => baseline?.sizes.find((x) => x.nodes === n);
  const table = mdTable(
    ['nodes', 'RSS peak', 'RSS median', 'anonymous (median)', 'CPU', 'daemon', 'children', 'passes/min', ...(baseline ? ['before: RSS peak, CPU'] : [])],
    rows.map((x) => [
      String(x.nodes),
      `${x.rssPeakMb} MB`,
      `${x.rssMedianMb} MB`,
      `${x.anonMedianMb} MB`,
      `${x.cpuPercent}%`,
      `${x.selfCpuPercent}%`,
      `${x.childCpuPercent}%`,
      String(x.passesPerMinute),
      ...(baseline ? [before(x.nodes) ? `${before(x.nodes)!.rssPeakMb} MB, ${before(x.nodes)!.cpuPercent}%` : ''] : []),
    ]),
  );
  const beforeLabel = baseline ? `before (${baseline.commit})` : '';
  return `## 4. Footprint

Method: \`cachenat run\` in the lab at ${rows.map((x) => x.nodes).join(', ')} nodes, one after another in one lab, each from a clean start (no rules, no port map), with the default intervals (API every ${f.intervals.discoveryS} s, DNS every ${f.intervals.dnsS} s). The fake API pages like AWS; the endpoint names are answered by a DNS server in the NAT namespace (bench/fake-dns.ts), as the VPC resolver answers them on EC2. From 15 s after READY (the first passes, their garbage and V8's start-up collections left behind), RSS is sampled every second and CPU read from /proc over each window (${rows.map((x) => `${x.windowS} s`).join(', ')}${f.quick ? '; quick mode' : ''}). CPU counts the daemon and the programs it runs (iptables-save, iptables-restore, conntrack); passes per minute come from the status snapshot's counter. Kernel writes during the windows: ${rows.map((x) => x.rulesUpdated).reduce((a, b) => a + b, 0)}. ${f.nodeOptions ? `The daemon runs with the V8 flags systemd/cachenat.service gives it in production (\`NODE_OPTIONS=${f.nodeOptions}\`), and so does the whole-pass run above.` : 'The daemon runs with Node.js defaults (the systemd unit sets no NODE_OPTIONS).'} *Anonymous* is the part of RSS that is the process's own (heap, stacks, malloc); the rest are pages of the node binary and shared libraries, which other processes share and the kernel can drop and read back.

${table}
${baseline ? `\n*Before* is the same measurement on commit ${baseline.commit} (${baseline.date}, ${baseline.windowS} s windows, 1-minute load average ${baseline.loadAverage.before} to ${baseline.loadAverage.max} on this shared machine), before the daemon stopped loading the DynamoDB and EC2 clients without \`ha\`, looking up node names every API pass instead of every DNS pass, counting open connections only on API passes, and reusing an unchanged kernel read and a plan that still holds (see "Where the time goes").\n` : ''}
${f.heap ? `What the daemon's JavaScript heap holds at 1000 nodes, from a heap snapshot taken after the window (bench/heap-snapshot.ts: code and source text by the script they belong to, cachenat's own objects by the size they retain):

${heapTables(f.heap, baseline?.heap, beforeLabel)}
` : ''}`;
}

/** The data path cannot beat plain routing: when it seems to, the run's spread is larger than what it measures. */
function noiseNote(r: BenchResults): string {
  const above = [...new Set(r.datapath.filter((d) => d.path === 'cachenat').filter((d) => {
    const direct = r.datapath.find((x) => x.workload === d.workload && x.path === 'direct');
    return direct !== undefined && d.opsPerSec > 1.05 * direct.opsPerSec;
  }).map((d) => d.workload))];
  if (above.length === 0) return '';
  return `
cachenat measured more than 5% *above* direct routing on ${above.join(', ')}: DNAT adds work to the same hops and cannot make them faster, so the spread between runs here is larger than the differences the targets ask about. On ${r.meta.machine.cpus} cores shared by the load generator, the servers and the forwarding${r.meta.loadAverage.before > r.meta.machine.cpus ? ', with other work on the machine during this run,' : ''} the data-path verdicts need a quiet machine and more rounds to mean anything; the proxies' per-connection copies through user space (socat forks a process per connection) are the cost that does show.
`;
}

// Why each missed target is missed. The figures come from this run; the
// breakdowns in prose were measured by hand on this machine (2026-11-21) with
// node --cpu-prof, a heap snapshot, perf and single iptables calls timed in a
// namespace, and are kept here so BENCHMARKS.md regenerates with them.
function analysis(r: BenchResults): string {
  const k1 = r.reconcile.find((row) => row.nodes === 1000);
  const f = r.footprint;
  const v = verdicts(r);
  const missed = (prefix: string): boolean => v.some((x) => x.target.startsWith(prefix) && !x.ok);
  const out: string[] = [];
  if (k1) {
    out.push(`- **Reconcile at 1000 nodes is mostly three programs.** cachenat installs ${k1.rules} rules for 1000 nodes (one DNAT rule per node; one connmark-matched SNAT rule and one FORWARD accept for all of them), and a moved target rewrites only CACHENAT-DNAT. What is left is the cost of each \`iptables-save\`, \`iptables-restore\` and \`conntrack\` process. Timed by hand in a namespace at 1000 nodes (medians of 7): \`ip netns exec true\` 5.5 ms (the lab pays it on every kernel call, a real host does not), \`iptables-save\` 12.6 ms, restoring all 1010 rules 52 ms, rewriting CACHENAT-DNAT (1002 lines) 28.6 ms, and replacing only the changed line (\`-R CACHENAT-DNAT 2 …\`) 23.4 ms: iptables-restore on nf_tables reads the kernel's ruleset before it applies anything, so rewriting one line instead of the chain would save about 5 ms.`);
    out.push(`- **No-op pass: ${ms(k1.noopPassMs)}, ${k1.ratios ? `${k1.ratios.noop}× the bare read` : 'no floor measured'}${missed('reconcile, 1000 nodes: no-op pass ≤ 1.2') ? ', over the 1.2× target' : ''}.** ${ms(k1.noopSpans.kernelReadMs)} is the one \`iptables-save\`; the other ${ms(k1.noopSpans.restMs)} is ours. A read whose rules are those of the last read (its text with the packet counters and the date line left out, \`withoutCounters\`) is not parsed again: the pass gets the last read's tables back, and with them the plan it made from them. That plan is reused as long as nothing it was made from has changed (an equal API answer keeps the last answer's object, the same DNS answers, the same port map, the same config) and its next deadline has not come: a removal grace running out, a quarantine ending, an address given up (\`planHoldsUntil\`; a property test plans the same inputs again at random times before the deadline and must get the same plan). What is left is counting the DNAT rules' packets for the metrics and the per-name bookkeeping of the lookups.`);
    out.push(`- **One change: ${ms(k1.oneChangeMs)}${k1.ratios ? `, ${k1.ratios.oneChange}× one read + one restore${k1.ratios.oneChangeEveryStep !== undefined ? ` and ${k1.ratios.oneChangeEveryStep}× every step a move takes, each timed alone` : ''}` : ''}${missed('reconcile, 1000 nodes: one change ≤ 1.2') ? ', over the 1.2× target' : ''}.** A read (${ms(k1.oneChangeSpans.kernelReadMs)}), a restore (${ms(k1.oneChangeSpans.restoreMs)}) and \`conntrack -D\` for the moved target's old flows (${ms(k1.oneChangeSpans.conntrackMs)}) are three processes in a row; the rest (${ms(k1.oneChangeSpans.restMs)}) is planning, rendering and diffing 1000 forwards and the port map written and fsynced before the kernel${k1.floors?.saveMs !== undefined ? ` (${ms(k1.floors.saveMs)} alone)` : ''}. The 1.2× floor of the target leaves out two of the steps a move must take: the port map saved before the kernel write (so that a crash between the two never hands a port to another cache) and the cut of the old flows after it (so that clients reconnect to the new address instead of hanging on the old one). Both are promises the invariant tests hold the planner to; against every step, each timed alone, the pass is ${k1.ratios?.oneChangeEveryStep ?? '?'}×. Getting under 1.2× of read + restore would mean doing the cut inside the same kernel write (a rule that resets the old flows instead of \`conntrack -D\`), a change of mechanism not made here.`);
  }
  const dpMisses: string[] = [];
  for (const w of [...new Set(r.datapath.map((d) => d.workload))]) {
    const direct = r.datapath.find((d) => d.workload === w && d.path === 'direct');
    const ours = r.datapath.find((d) => d.workload === w && d.path === 'cachenat');
    if (!direct || !ours) continue;
    if (ours.p99Ms > 1.1 * direct.p99Ms) dpMisses.push(`${w}: p99 ${ms(ours.p99Ms)} against ${ms(direct.p99Ms)} direct (${(ours.p99Ms / direct.p99Ms).toFixed(2)}×)`);
    if (ours.opsPerSec < 0.95 * direct.opsPerSec) dpMisses.push(`${w}: ${((ours.opsPerSec / direct.opsPerSec) * 100).toFixed(0)}% of direct throughput`);
    for (const p of r.datapath.filter((d) => d.workload === w && d.path === 'userspace-proxy')) {
      if (ours.opsPerSec > p.opsPerSec && ours.p99Ms < p.p99Ms) continue;
      dpMisses.push(`${w}: ${p.proxy} ${num(p.opsPerSec)} ops/s at p99 ${ms(p.p99Ms)} (${((p.opsPerSec / direct.opsPerSec) * 100).toFixed(0)}% of direct), cachenat ${num(ours.opsPerSec)} at ${ms(ours.p99Ms)}`);
    }
  }
  if (dpMisses.length > 0) {
    out.push(`- **Data path: ${dpMisses.length} shortfall${dpMisses.length === 1 ? '' : 's'}.** ${dpMisses.join('; ')}. These gaps are of the size by which the same workloads moved between the full runs made for this report (p99 tails by 10% and more): the load generator, the servers, the proxies and the kernel's forwarding all share the ${r.meta.machine.cpus} cores. cachenat's path is the kernel's own NAT on the same hops as direct routing (one conntrack NAT lookup per packet more), so it has no user-space cost to cut; where HAProxy keeps up with direct routing on pipelined Memcached, it is the servers that set the pace, not the path. Telling these apart would need separate client, NAT and server machines; it was not profiled further.`);
  }
  const dnsWorst = r.convergence.dns.map((d) => `${ms(Math.max(...d.runsMs))} at ${d.intervalMs / 1000} s`).join(', ');
  out.push(`- **DNS failover${missed('DNS change') ? ' misses its bound in some runs' : ''}: worst runs ${dnsWorst}.** Passes run on a steady \`dns.interval\` beat from each pass's start, and each DNS answer is dated from the start of its pass (src/daemon/reconciler.ts). Dated from the lookup instead, an answer that a discovery pass looked up after its API call seemed a few ms younger than one interval on the next beat, so the pass after every discovery pass skipped its lookups and a failover that landed before it took up to two intervals (a run of this suite before the change measured 5.84 s at the 5 s default).${missed('DNS change') ? ' What is left over the bound is the time from the beat to the client\'s first answer (lookup, restore, conntrack, the prober\'s 10 ms period) on a loaded machine.' : ''}`);
  const sizeRow = (n: number) => (f.sizes ?? []).find((x) => x.nodes === n);
  const cpuAt = (n: number) => (sizeRow(n) ? `${sizeRow(n)!.cpuPercent}% at ${n} nodes` : undefined);
  out.push(`- **Footprint CPU: ${[cpuAt(10), cpuAt(100), cpuAt(1000), cpuAt(5000)].filter(Boolean).join(', ')}${missed('footprint, 1000 nodes: CPU') || missed('footprint, 10 nodes: CPU') ? ' (over a target)' : ''}.** With the default intervals a quiet daemon asks the API every 30 s and runs a pass every 5 s. The passes between API passes do almost nothing now: node names (whose address changes only when the node is replaced) are looked up every \`discovery.interval\`, the names a failover repoints every \`dns.interval\`; such a pass plans from the last kernel read when nothing was written since, and reuses the last plan while it holds (see the no-op pass); open connections are counted on API passes only. What is left is the API pass: the SDK's requests and XML parsing (10 pages at 1000 nodes), the lookups, one \`iptables-save\` and one \`conntrack -L\`, and V8's and libuv's helper threads. CPU figures of a few tenths of a percent move between runs on a shared 2-core machine by about as much as they are: two runs of this section on the same daemon code (commits d3b822f and a609d45, which changed only tests), hours apart, measured 1.56% and 0.17% at 10 nodes; the windows are minutes long, and a run that meets a noisy minute shows it; probes of 60 to 120 s at 10 nodes on the same day as this run measured the daemon itself at 0.13% to 0.36%, and a repeat of this section (\`--only footprint --sizes 10,1000\`) on the same commit about 80 minutes after this run, on a quiet machine, measured 0.74% at 10 nodes and 1.63% at 1000: the CPU targets are met in this run, not in every run, and the cause of the spread was not found. This section runs the daemon without a NOTIFY_SOCKET. Under systemd each sd_notify message is a \`systemd-notify\` process; a quiet daemon now sends one per 10 s (STATUS only when it changes, WATCHDOG=1 at most once per third of WatchdogSec): in a 90 s probe at 10 nodes with a notify socket, 11 messages and 0.10% in children, against 34 messages and 0.22% when every pass sent its STATUS and WATCHDOG=1.`);
  const rssAt = (n: number) => (sizeRow(n) ? `${sizeRow(n)!.rssPeakMb} MB at ${n} nodes (${sizeRow(n)!.anonMedianMb} MB of it anonymous)` : undefined);
  out.push(`- **Memory: ${[rssAt(10), rssAt(1000)].filter(Boolean).join(', ')}${missed('footprint, 1000 nodes: RSS') || missed('footprint, 10 nodes: RSS') ? ', over the 48 and 64 MB targets' : ''}; the floor is the runtime.** An idle Node.js 22 process (\`node -e 'setInterval(() => {}, 1e3)'\`) holds 41.9 MB here, 35.6 MB of it pages of the node binary; importing the daemon's modules and nothing else takes it to 57 MB (zod alone +7 MB, execa +8 MB, the ElastiCache client and its runtime +15 MB, each measured alone over a bare process); the running daemon adds its first API calls, compiled code and heap. The 48 MB target at 10 nodes leaves 6 MB over an idle Node.js for everything the daemon does, which no build of this daemon on Node.js reaches; 64 MB at 1000 nodes would need the AWS SDK, zod and execa replaced by code of our own, and even then the binary's pages stay. What the heap holds at 1000 nodes is in the table of §4: mostly code and the source text of the modules, not data (the port map and forwards of 1000 nodes are well under 2 MB). V8 and allocator settings measured at 10 nodes against the unit's own (76.3 MB, 30.5 MB anonymous, same day, 45 s windows): \`--jitless\` 73.8 MB, \`--v8-pool-size=1\` 75.8 MB, \`MALLOC_ARENA_MAX=2\` 76.1 MB, \`UV_THREADPOOL_SIZE=2\` 76.1 MB; none is worth adopting for 0 to 2.5 MB. Earlier rounds adopted \`--max-semi-space-size=1\` (unit NODE_OPTIONS: the peak at 1000 nodes from 118 to 90 MB) and \`--no-opt\` for \`cachenat run\` (about 13 MB less at 10 nodes, for about 0.1 point of CPU), and measured \`--max-old-space-size=48\` (no gain, a crash risk on larger fleets), \`--single-threaded-gc\` (no gain), \`--optimize-for-size\` (about 80 MB) and \`--lite-mode\` (about 67 MB peak).`);
  return out.join('\n');
}
