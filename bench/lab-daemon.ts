// The lab rig (lab/rig.ts) configured per benchmark: a topology served with
// AWS's page size, names in the NAT namespace's hosts file, the daemon's
// intervals as asked, and the daemon run with the systemd unit's NODE_OPTIONS.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AWS_DEFAULT_PAGE_SIZE, type FakeTopology } from '../lab/fake-elasticache.js';
import type { Lab, LabOptions } from '../lab/lab.js';
import type { LabProcess } from '../lab/process.js';
import { daemonEnv, startRig, type LabSettings } from '../lab/rig.js';

/** A compiled file of this folder (the benchmark always runs from dist/bench). */
export const benchFile = (name: string): string => fileURLToPath(new URL(name, import.meta.url));

/**
 * The NODE_OPTIONS the systemd unit gives the daemon (V8 heap flags), so the
 * benchmark measures the daemon as it runs in production; empty when the unit sets none.
 */
export function unitNodeOptions(): string {
  const unit = readFileSync(fileURLToPath(new URL('../../systemd/cachenat.service', import.meta.url)), 'utf8');
  return /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1]?.trim().replace(/^"(.*)"$/, '$1') ?? '';
}

export interface DaemonLab {
  lab: Lab;
  apiUrl: string;
  dir: string;
  configPath: string;
  /** The daemon's environment, NODE_OPTIONS from the systemd unit included. */
  env: Record<string, string>;
  /**
   * Starts `cachenat run`; resolves once it logged "ready", with that line's own timestamp.
   * `nodeFlags` go into NODE_OPTIONS after the unit's (profiling flags).
   */
  startDaemon(timeoutMs?: number, nodeFlags?: string): Promise<{ process: LabProcess; readyAt: number }>;
  setTopology(topology: FakeTopology): Promise<void>;
  /** Restarts the fake API serving `topology` (same URL): for topologies too large for setTopology's control request. */
  serveTopology(topology: FakeTopology): Promise<void>;
  /** Rewrites the config file; a daemon started afterwards uses these intervals. */
  configure(intervals: { dnsInterval: string; discoveryInterval: string }): void;
  down(): Promise<void>;
}

export interface DaemonLabOptions extends LabOptions {
  topology: FakeTopology;
  hosts: Record<string, string>;
  /** YAML durations. */
  dnsInterval: string;
  discoveryInterval: string;
  logLevel?: string;
}

/** What the benchmarks measure is the daemon as shipped: its own defaults for everything but the intervals. */
const PRODUCT_DEFAULTS = { removalGrace: '10m', apiTimeout: '10s', reuseAfter: '24h', logLevel: 'info' } as const satisfies LabSettings;

export async function startDaemonLab(options: DaemonLabOptions): Promise<DaemonLab> {
  const settings = (intervals: { dnsInterval: string; discoveryInterval: string }): LabSettings => ({
    ...PRODUCT_DEFAULTS,
    ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
    dnsInterval: intervals.dnsInterval,
    discoveryInterval: intervals.discoveryInterval,
  });
  const rig = await startRig({
    lab: { redis: options.redis ?? 2, memcached: options.memcached ?? 1 },
    topology: options.topology,
    hosts: options.hosts,
    pageSize: AWS_DEFAULT_PAGE_SIZE,
    settings: settings(options),
  });
  const nodeOptions = { NODE_OPTIONS: unitNodeOptions() };
  return {
    lab: rig.lab,
    apiUrl: rig.apiUrl,
    dir: rig.dir,
    configPath: rig.configPath,
    env: { ...daemonEnv(rig.dir), ...nodeOptions },
    async startDaemon(timeoutMs = 60_000, nodeFlags = '') {
      const env = nodeFlags === '' ? nodeOptions : { NODE_OPTIONS: `${nodeOptions.NODE_OPTIONS} ${nodeFlags}`.trim() };
      const daemon = await rig.start({ env, readyTimeoutMs: timeoutMs });
      return { process: daemon.process, readyAt: daemon.readyAt };
    },
    setTopology: (topology) => rig.setTopology(topology),
    async serveTopology(topology) {
      await rig.lab.fakeApi?.process.stop();
      const url = await rig.lab.startFakeApi(topology, { pageSize: AWS_DEFAULT_PAGE_SIZE });
      if (url !== rig.apiUrl) throw new Error(`the fake API came back on ${url}, not ${rig.apiUrl}`);
    },
    configure: (intervals) => rig.configure(settings(intervals)),
    down: () => rig.down(),
  };
}
