// The lab with the real `cachenat run` in its NAT namespace, configured per
// benchmark: the bench API (AWS paging) serving a topology, names in the NAT
// namespace's hosts file, and the daemon's intervals as asked.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeTopology } from '../lab/fake-elasticache-model.js';
import { startLab, type Lab, type LabOptions } from '../lab/lab.js';
import type { LabProcess } from '../lab/process.js';
import { CLI, daemonEnv } from '../lab/rig.js';

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
  /** Starts `cachenat run`; resolves once it logged "ready", with that line's own timestamp. */
  startDaemon(timeoutMs?: number): Promise<{ process: LabProcess; readyAt: number }>;
  setTopology(topology: FakeTopology): Promise<void>;
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

export async function startDaemonLab(options: DaemonLabOptions): Promise<DaemonLab> {
  const lab = await startLab({ redis: options.redis ?? 2, memcached: options.memcached ?? 1 });
  try {
    for (const [name, ip] of Object.entries(options.hosts)) lab.setHost(name, ip);

    const dir = join(lab.tmpDir, 'bench');
    mkdirSync(dir, { recursive: true });
    const topologyFile = join(dir, 'topology.json');
    writeFileSync(topologyFile, JSON.stringify(options.topology));
    const api = lab.spawnIn(lab.ns.nat, process.execPath, [benchFile('fake-api.js'), '--listen', '127.0.0.1:4566', '--topology', topologyFile], { label: 'bench-api' });
    const line = await api.waitForLine(/bench-api listening on (http:\/\/\S+)/, 15_000);
    const apiUrl = /(http:\/\/\S+)/.exec(line)?.[1] as string;

    const configPath = join(dir, 'config.yaml');
    const configure = (intervals: { dnsInterval: string; discoveryInterval: string }) =>
      writeFileSync(configPath, configText(apiUrl, dir, intervals, options.logLevel ?? 'info'));
    configure(options);
    const env = { ...daemonEnv(dir), NODE_OPTIONS: unitNodeOptions() };

    const control = async (method: string, path: string, body: string): Promise<void> => {
      const script = 'const [u,m,b]=process.argv.slice(1);fetch(u,{method:m,body:b}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))';
      const r = await lab.exec(lab.ns.nat, process.execPath, ['-e', script, `${apiUrl}${path}`, method, body], { reject: false });
      if (r.exitCode !== 0) throw new Error(`bench API ${method} ${path} failed: ${r.stderr}`);
    };

    return {
      lab,
      apiUrl,
      dir,
      configPath,
      env,
      async startDaemon(timeoutMs = 60_000) {
        const proc = lab.spawnIn(lab.ns.nat, process.execPath, [CLI, 'run', '--config', configPath], { env, label: 'cachenat run' });
        const ready = await proc.waitForLine(/"msg":"ready/, timeoutMs);
        return { process: proc, readyAt: (JSON.parse(ready) as { time: number }).time };
      },
      setTopology: (topology) => control('PUT', '/_bench/topology', JSON.stringify(topology)),
      configure,
      down: () => lab.down(),
    };
  } catch (err) {
    await lab.down();
    throw err;
  }
}

function configText(apiUrl: string, dir: string, intervals: { dnsInterval: string; discoveryInterval: string }, logLevel: string): string {
  return `aws:
  region: us-east-1
  endpoint: ${apiUrl}
discovery:
  interval: ${intervals.discoveryInterval}
dns:
  interval: ${intervals.dnsInterval}
forward:
  inboundInterface: ext0
  allowedSources: [198.18.0.10/32]
  publicAddress: 198.18.0.1
ipForward: enable
state:
  dir: ${dir}/state
  statusFile: ${dir}/run/status.json
persist:
  rulesFile: ${dir}/rules.v4
log:
  level: ${logLevel}
`;
}
