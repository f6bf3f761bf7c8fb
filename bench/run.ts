// `npm run bench [-- --quick] [-- --only reconcile,datapath,convergence,footprint] [-- --sizes 10,1000]`:
// runs the benchmark sections one after another, prints a table, and writes
// bench/results/latest.json (the contract), latest.meta.json, chart.svg and
// BENCHMARKS.md. `--report` only renders the last results again. Needs root: everything runs in network namespaces it makes
// and removes again, even when a section fails.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderChart } from './chart.js';
import { benchConvergence, type ConvergenceResult } from './convergence.js';
import { benchDatapath, type DatapathRow } from './datapath.js';
import { benchFootprint, type DaemonPassResult, type FootprintResult } from './footprint.js';
import { benchReconcile, type ReconcileRow } from './reconcile.js';
import { benchmarksMarkdown, ownSectionsOf, printTable, type FootprintBaseline } from './report.js';
import { readMachine, type BenchMeta, type BenchResults, type ContractResults } from './results.js';
import { say } from './util.js';

const SECTIONS = ['reconcile', 'datapath', 'convergence', 'footprint'] as const;
type Section = (typeof SECTIONS)[number];

// From dist/bench/run.js up to the repository.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');

const PLAN = {
  full: {
    reconcile: { sizes: [10, 100, 1000, 5000], runs: 5, sampleBaselineFrom: 5000, baselineRuns: 3, sampleFraction: 0.02 },
    datapath: { rounds: 3, requests: 100_000 },
    convergence: { dnsRuns1s: 5, dnsRuns5s: 3, apiRuns: 3, restartRuns: 3 },
    footprint: { sizes: [10, 100, 1000, 5000], windowS: { 10: 120, 100: 120, 1000: 240, 5000: 120 } as Record<number, number>, passRuns: 5 },
  },
  quick: {
    reconcile: { sizes: [10, 100, 1000, 5000], runs: 3, sampleBaselineFrom: 1000, baselineRuns: 1, sampleFraction: 0.01 },
    datapath: { rounds: 1, requests: 20_000 },
    convergence: { dnsRuns1s: 3, dnsRuns5s: 1, apiRuns: 1, restartRuns: 1 },
    footprint: { sizes: [10, 100, 1000, 5000], windowS: { 10: 20, 100: 20, 1000: 30, 5000: 20 } as Record<number, number>, passRuns: 2 },
  },
};

function runCounts(plan: (typeof PLAN)['full']): BenchMeta['runs'] {
  const r = plan.reconcile;
  return {
    reconcile: `${r.runs} runs per figure; the per-rule baseline ${r.baselineRuns} run(s) below ${r.sampleBaselineFrom} nodes, sampled from ${r.sampleBaselineFrom} up`,
    datapath: `${plan.datapath.rounds} round(s)`,
    convergence: `DNS 1 s: ${plan.convergence.dnsRuns1s} runs, DNS 5 s: ${plan.convergence.dnsRuns5s}, API: ${plan.convergence.apiRuns}, restart: ${plan.convergence.restartRuns}`,
    footprint: `one window per size (${plan.footprint.sizes.map((n) => `${n}: ${plan.footprint.windowS[n]} s`).join(', ')}); daemon pass: ${plan.footprint.passRuns} runs`,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, sizes: { type: 'string' }, report: { type: 'boolean', default: false } } });
  if (values.report) return rerender();
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run bench needs root: it creates network namespaces and iptables rules inside them\n');
    return 1;
  }
  const only = values.only === undefined ? [...SECTIONS] : values.only.split(',').map((s) => s.trim());
  const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) {
    process.stderr.write(`unknown section(s) ${unknown.join(', ')}; choose from ${SECTIONS.join(', ')}\n`);
    return 2;
  }
  const want = (s: Section) => only.includes(s);
  const quick = values.quick === true;
  const plan = quick ? PLAN.quick : PLAN.full;
  const started = Date.now();
  const loadBefore = loadavg()[0] as number;
  // Other work that starts mid-run shows only here: before and after can both look quiet.
  let loadMax = loadBefore;
  const loadSampler = setInterval(() => {
    loadMax = Math.max(loadMax, loadavg()[0] as number);
  }, 5000).unref();
  say(`cachenat benchmarks, ${quick ? 'quick' : 'full'} run: ${only.join(', ')}`);

  // Sections not run keep their previous figures, so --only can refresh one part.
  const previous = readPrevious();
  let reconcile: ReconcileRow[] | undefined = previous?.reconcile;
  let datapath: DatapathRow[] | undefined = previous?.datapath;
  let convergence: ConvergenceResult | undefined = previous?.convergence;
  let footprint: FootprintResult | undefined = previous?.footprint;
  let daemonPass: DaemonPassResult | undefined = previous?.reconcile.find((r) => r.nodes === 1000)?.daemonPass;

  // --sizes 10,1000: measure only these fleet sizes (reconcile and footprint); the others keep their previous rows.
  const sizesOf = (all: number[]) => (values.sizes === undefined ? all : values.sizes.split(',').map(Number).filter((n) => all.includes(n)));
  if (want('reconcile')) {
    const measured = await benchReconcile({ ...plan.reconcile, sizes: sizesOf(plan.reconcile.sizes) });
    reconcile = [...(reconcile ?? []).filter((row) => !measured.some((m) => m.nodes === row.nodes)), ...measured].sort((a, b) => a.nodes - b.nodes);
  }
  if (want('datapath')) datapath = await benchDatapath(plan.datapath);
  if (want('convergence')) convergence = await benchConvergence(plan.convergence);
  if (want('footprint')) {
    const sizes = sizesOf(plan.footprint.sizes);
    const measured = await benchFootprint({ ...plan.footprint, sizes, quick });
    const kept = (footprint?.sizes ?? []).filter((row) => !sizes.includes(row.nodes));
    const rows = [...kept, ...(measured.footprint.sizes ?? [])].sort((a, b) => a.nodes - b.nodes);
    footprint = sizes.includes(1000) || !footprint ? { ...measured.footprint, sizes: rows } : { ...footprint, sizes: rows };
    if (measured.daemonPass) daemonPass = measured.daemonPass;
  }

  if (!reconcile || !datapath || !convergence || !footprint) {
    process.stderr.write('some sections have no results yet (run without --only first)\n');
    return 1;
  }
  const contract: ContractResults = {
    reconcile: reconcile.map((row) => (row.nodes === 1000 && daemonPass ? { ...row, daemonPass } : row)),
    datapath,
    convergence,
    footprint,
  };
  const meta: BenchMeta = {
    date: new Date().toISOString().slice(0, 10),
    quick,
    durationS: (Date.now() - started) / 1000,
    machine: await readMachine(),
    loadAverage: { before: Number(loadBefore.toFixed(2)), after: Number((loadavg()[0] as number).toFixed(2)), max: Number(loadMax.toFixed(2)) },
    runs: runCounts(plan),
  };
  const results: BenchResults = { ...contract, meta };
  clearInterval(loadSampler);

  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(contract, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'latest.meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  writeReport(results);
  process.stdout.write(`${printTable(results)}\n\nwrote bench/results/latest.json, bench/results/chart.svg and BENCHMARKS.md in ${Math.round(meta.durationS)} s\n`);
  return 0;
}

function writeReport(results: BenchResults): void {
  writeFileSync(join(RESULTS, 'chart.svg'), renderChart(results));
  const path = join(ROOT, 'BENCHMARKS.md');
  const kept = existsSync(path) ? ownSectionsOf(readFileSync(path, 'utf8')) : '';
  const before = join(RESULTS, 'footprint-before.json');
  writeFileSync(path, benchmarksMarkdown(results, kept, existsSync(before) ? (JSON.parse(readFileSync(before, 'utf8')) as FootprintBaseline) : undefined));
}

function rerender(): number {
  const contract = readPrevious();
  if (!contract) {
    process.stderr.write('no bench/results/latest.json yet: run the benchmark first\n');
    return 1;
  }
  const meta = JSON.parse(readFileSync(join(RESULTS, 'latest.meta.json'), 'utf8')) as BenchMeta;
  const results: BenchResults = { ...contract, meta };
  writeReport(results);
  process.stdout.write(`${printTable(results)}\n\nrendered bench/results/chart.svg and BENCHMARKS.md again from the last results\n`);
  return 0;
}

function readPrevious(): ContractResults | undefined {
  try {
    return JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8')) as ContractResults;
  } catch {
    return undefined;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
