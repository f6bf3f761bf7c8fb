// Small helpers shared by the benchmark sections: statistics, timing, a
// throwaway network namespace, and progress lines on stderr (stdout carries
// only the final table).

import { spawnSync } from 'node:child_process';
import { execa } from 'execa';
import { rmSync } from 'node:fs';
import { configSchema, type Config } from '../src/core/config/schema.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Rounds a figure for the JSON. */
export const round = (value: number, digits = 2): number => (Number.isFinite(value) ? Number(value.toFixed(digits)) : value);

export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

const benchStarted = Date.now();

/** A progress line on stderr, with the time since the run began. */
export function say(text: string): void {
  process.stderr.write(`[${((Date.now() - benchStarted) / 1000).toFixed(1).padStart(6)}s] ${text}\n`);
}

/** Runs a program and throws with its stderr when it fails. */
export async function must(file: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await execa(file, args, {
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    env: { LC_ALL: 'C' },
  });
  if (result.exitCode !== 0) throw new Error(`${[file, ...args].join(' ')} exited ${result.exitCode ?? result.signal}: ${String(result.stderr).trim() || '(no output)'}`);
  return String(result.stdout);
}

/**
 * Network namespaces the benchmark makes for itself (`cnb-<pid>-<n>`). They
 * are deleted by `dispose`, and by an exit handler if the run dies first.
 */
const liveNamespaces = new Set<string>();
let namespaceCount = 0;

export async function makeNamespace(): Promise<string> {
  const ns = `cnb-${process.pid}-${++namespaceCount}`;
  liveNamespaces.add(ns);
  installExitCleanup();
  await must('ip', ['netns', 'add', ns]);
  await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

export async function dropNamespace(ns: string): Promise<void> {
  await execa('ip', ['netns', 'delete', ns], { reject: false });
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  liveNamespaces.delete(ns);
}

let cleanupInstalled = false;
function installExitCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const removeAll = () => {
    for (const ns of liveNamespaces) {
      // 'exit' and signal handlers cannot wait: only a synchronous spawn finishes.
      spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    liveNamespaces.clear();
  };
  process.on('exit', removeAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      removeAll();
      process.removeListener(signal, onSignal);
      // Die of the signal unless someone else (the lab's own cleanup) still listens.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** A full config, as the daemon would load it, from the few keys a benchmark sets. */
export function benchConfig(overrides: Record<string, unknown> = {}): Config {
  return configSchema.parse({
    aws: { region: 'us-east-1' },
    forward: { inboundInterface: 'ext0', allowedSources: ['198.18.0.10/32'] },
    ...overrides,
  });
}
