// The shape of bench/results/latest.json (a contract for tools outside this
// repo: exactly these four top-level keys; extra fields only inside objects)
// and of latest.meta.json beside it (machine, date, mode, run counts).

import { execa } from 'execa';
import { cpus, totalmem } from 'node:os';
import type { ConvergenceResult } from './convergence.js';
import type { DatapathRow } from './datapath.js';
import type { DaemonPassResult, FootprintResult } from './footprint.js';
import type { ReconcileRow } from './reconcile.js';

export interface ContractResults {
  reconcile: (ReconcileRow & { daemonPass?: DaemonPassResult })[];
  datapath: DatapathRow[];
  convergence: ConvergenceResult;
  footprint: FootprintResult;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  kernel: string;
  iptables: string;
  node: string;
  redisBenchmark: string;
  socat: string;
  haproxy: string;
}

export interface BenchMeta {
  date: string;
  quick: boolean;
  durationS: number;
  machine: Machine;
  /** 1-minute load average when the run began and ended, and the highest seen every 5 s in between: other work on the box skews every figure. */
  loadAverage: { before: number; after: number; max?: number };
  /** How many runs each median is taken over, per section. */
  runs: Record<string, string>;
}

export type BenchResults = ContractResults & { meta: BenchMeta };

/** A program's output lines (stdout and stderr), or none when it is missing or fails. */
const linesOf = async (file: string, args: string[]): Promise<string[]> => {
  const r = await execa(file, args, { reject: false, all: true });
  return String(r.all ?? '').split('\n').map((line) => line.trim()).filter((line) => line !== '');
};

export async function readMachine(): Promise<Machine> {
  const nproc = Number((await linesOf('nproc', []))[0]);
  const mem = (await linesOf('free', ['-h'])).find((line) => line.startsWith('Mem:'));
  return {
    cpus: Number.isInteger(nproc) ? nproc : cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memory: mem ? `free -h: ${mem.replace(/\s+/g, ' ')}` : `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: (await linesOf('uname', ['-r']))[0] ?? 'unknown',
    iptables: (await linesOf('iptables', ['--version']))[0] ?? 'unknown',
    node: process.version,
    redisBenchmark: (await linesOf('redis-benchmark', ['--version']))[0] ?? 'missing',
    socat: (await linesOf('socat', ['-V'])).find((line) => line.startsWith('socat version')) ?? 'missing',
    haproxy: (await linesOf('haproxy', ['-v']))[0]?.split(' - ')[0] ?? 'missing',
  };
}
