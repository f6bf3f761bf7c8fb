// `cachenat health [--config PATH] [--json] [--probe]`: gathers the facts and
// prints the verdict of evaluate.ts. Works for an unprivileged user: without
// root it cannot read the kernel's rules and leans on the daemon's snapshot.

import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { hostInterfaces } from '../host/interfaces.js';
import { BUILD_INFO } from '../version.js';
import { configPathFrom, loadConfigFile } from '../config/load.js';
import { configSchema } from '../core/config/schema.js';
import type { StatusSnapshot } from '../core/daemon/status-snapshot.js';
import { digestRules, installedOwnedRules, missingJumps } from '../core/netfilter/digest.js';
import { IptablesNetfilter } from '../netfilter/iptables.js';
import { isProcessAlive } from '../util/process-alive.js';
import { readInstalledRules } from '../netfilter/owned-rules.js';
import type { Netfilter } from '../core/netfilter/types.js';
import { evaluateHealth, renderHealthJson, renderHealthText, UNKNOWN, type KernelView, type ProbeResult } from '../core/health/evaluate.js';

export interface HealthOptions {
  /** Config file (--config, else CACHENAT_CONFIG, else the default). */
  configPath?: string;
  json?: boolean;
  probe?: boolean;
}

export interface HealthDeps {
  env: NodeJS.ProcessEnv;
  now(): number;
  stdout: { write(text: string): void };
  readText(path: string): Promise<string>;
  /** Whether a process with this pid exists. */
  isAlive(pid: number): boolean;
  /** True when this process may read the kernel's rules (root). */
  privileged(): boolean;
  netfilter: Pick<Netfilter, 'saveAll'>;
  /** The names of this host's interfaces (this network namespace's). */
  interfaces(): string[];
  probe(ip: string, port: number, timeoutMs: number): Promise<{ ok: boolean; ms?: number; error?: string }>;
}

export const PROBE_TIMEOUT_MS = 2000;
const PROBE_CONCURRENCY = 32;

export const defaultHealthDeps = (): HealthDeps => ({
  env: process.env,
  now: () => Date.now(),
  stdout: process.stdout,
  readText: (path) => readFile(path, 'utf8'),
  isAlive: isProcessAlive,
  privileged: () => process.geteuid?.() === 0,
  netfilter: new IptablesNetfilter(),
  interfaces: () => hostInterfaces().map((i) => i.name),
  probe: tcpProbe,
});

/** Prints the health report; resolves to the Nagios exit code. */
export async function runHealth(options: HealthOptions, deps: Partial<HealthDeps> = {}): Promise<number> {
  const d: HealthDeps = { ...defaultHealthDeps(), ...deps };
  try {
    const notes: string[] = [];
    const statusFile = await statusFileFrom(options, d, notes);
    const { snapshot, error } = await readSnapshot(statusFile, d);
    const report = evaluateHealth({
      now: d.now(),
      snapshotPath: statusFile,
      snapshot,
      snapshotError: error,
      daemonAlive: snapshot !== undefined && d.isAlive(snapshot.pid),
      ipForward: await readIpForward(d),
      kernel: await readKernel(d),
      probes: options.probe && snapshot ? await probeAll(snapshot, d) : undefined,
      notes,
      interfaces: d.interfaces(),
      version: BUILD_INFO.version,
    });
    d.stdout.write(options.json ? renderHealthJson(report) : renderHealthText(report));
    return report.state;
  } catch (err) {
    // Nagios: a check that cannot decide says UNKNOWN, never OK.
    const message = err instanceof Error ? err.message : String(err);
    d.stdout.write(options.json ? JSON.stringify({ state: 'UNKNOWN', exitCode: UNKNOWN, summary: `UNKNOWN - ${message}` }) + '\n' : `UNKNOWN - ${message}\n`);
    return UNKNOWN;
  }
}

/** The status file named by the config; the default one when the config cannot be read (health must still answer). */
async function statusFileFrom(options: HealthOptions, d: HealthDeps, notes: string[]): Promise<string> {
  const path = options.configPath ?? configPathFrom(undefined, d.env);
  try {
    return (await loadConfigFile(path)).config.state.statusFile;
  } catch (err) {
    const fallback = configSchema.shape.state.parse(undefined).statusFile;
    const reason = err instanceof Error ? err.message.split('\n').slice(0, 3).join(' ') : String(err);
    notes.push(`config ${path} not usable (${reason}); reading the default status file ${fallback}`);
    return fallback;
  }
}

async function readSnapshot(path: string, d: HealthDeps): Promise<{ snapshot?: StatusSnapshot; error?: string }> {
  let text: string;
  try {
    text = await d.readText(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? `no status file at ${path}` : `cannot read ${path} (${code ?? String(err)})` };
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isSnapshot(parsed)) return { error: `${path} is not a cachenat status snapshot (version 1)` };
    return { snapshot: parsed };
  } catch {
    return { error: `${path} is not valid JSON` };
  }
}

function isSnapshot(value: unknown): value is StatusSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Record<string, unknown>;
  return (
    s.version === 1 &&
    Number.isInteger(s.pid) &&
    typeof s.startedAt === 'string' &&
    typeof s.discoveryIntervalMs === 'number' &&
    typeof s.dnsIntervalMs === 'number' &&
    typeof s.syncWarnIntervals === 'number' &&
    typeof s.syncCriticalIntervals === 'number' &&
    Array.isArray(s.forwards)
  );
}

async function readIpForward(d: HealthDeps): Promise<0 | 1 | undefined> {
  try {
    const value = (await d.readText('/proc/sys/net/ipv4/ip_forward')).trim();
    return value === '1' ? 1 : value === '0' ? 0 : undefined;
  } catch {
    return undefined;
  }
}

async function readKernel(d: HealthDeps): Promise<KernelView> {
  if (!d.privileged()) return { readable: false, reason: 'not root' };
  try {
    const installed = await readInstalledRules(d.netfilter);
    const owned = installedOwnedRules(installed);
    return {
      readable: true,
      digest: digestRules(owned),
      ownedChains: Object.keys(owned.nat).length + Object.keys(owned.filter).length,
      missingJumps: missingJumps(installed),
    };
  } catch (err) {
    return { readable: false, reason: `iptables-save failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function probeAll(snapshot: StatusSnapshot, d: HealthDeps): Promise<ProbeResult[]> {
  const targets = snapshot.forwards.filter((f) => f.targetIp !== undefined && f.state !== 'unresolved');
  const results: ProbeResult[] = [];
  for (let i = 0; i < targets.length; i += PROBE_CONCURRENCY) {
    const batch = targets.slice(i, i + PROBE_CONCURRENCY);
    results.push(
      ...(await Promise.all(
        batch.map(async (f) => ({ key: f.key, target: `${f.targetIp}:${f.targetPort}`, ...(await d.probe(f.targetIp!, f.targetPort, PROBE_TIMEOUT_MS)) })),
      )),
    );
  }
  return results;
}

/** A plain TCP connect, closed as soon as it is established. */
export function tcpProbe(ip: string, port: number, timeoutMs: number): Promise<{ ok: boolean; ms?: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port });
    const done = (result: { ok: boolean; ms?: number; error?: string }) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, error: `no answer within ${timeoutMs} ms` }));
    socket.once('connect', () => done({ ok: true, ms: Math.round(performance.now() - started) }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, error: err.code ?? err.message }));
  });
}
