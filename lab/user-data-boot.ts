// Boots a NAT host of the HA lab (lab/ha-rig.ts) the way an instance of the
// CDK constructs boots: from the user data deploy/lib/user-data.ts renders,
// rendered here with the lab's values. This file plays the two programs an
// instance has and the lab does not:
//   - cloud-init: write_files, then runcmd (cfn-ready, run as rendered);
//   - systemd: `systemctl start cachenat` returns once the daemon has printed
//     "ready" (its READY=1 under Type=notify), or fails if it exits first;
// and records what cfn-ready hands to cfn-signal.
//
// The lab adds what a deployment never writes: where the fakes listen, its
// own directories, faster intervals and debug logs. They are copied from the
// rig's own config for that host, and may not touch a key the user data set.

import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { BOOT_CHECK_PATH, CONFIG_PATH, renderUserData, type RenderedConfig } from '../deploy/lib/user-data.js';
import type { HaRig, NatName } from './ha-rig.js';
import { CLI, daemonEnv, type Daemon } from './rig.js';
import { stretch } from './load.js';

/** The keys the lab adds to the rendered config (dotted paths); none of them is one the constructs write. */
export const LAB_ONLY_KEYS = [
  'aws.endpoint',
  'discovery',
  'dns',
  'ha.endpoint',
  'ha.ec2Endpoint',
  'ha.imdsEndpoint',
  'state',
  'persist',
  'log',
] as const;

/** What the constructs would render for the lab's pair: the rig's Elastic IP, table, group and lease, the lab's client and interface. */
export function labRenderedConfig(rig: HaRig, o: { table?: string; group?: string; lease?: string } = {}): RenderedConfig {
  return {
    region: 'us-east-1',
    inboundInterface: 'ext0',
    allowedSources: ['198.18.0.10/32'],
    publicAddress: rig.eip,
    redisPort: 6379,
    memcachedPort: 11211,
    ha: { table: o.table ?? 'cachenat', group: o.group ?? 'lab', lease: o.lease ?? '4s', elasticIp: rig.allocationId },
  };
}

/** The user data of that host's group (the signal names its own group, as the constructs render it). */
export const labUserData = (rig: HaRig, which: NatName, config: RenderedConfig = labRenderedConfig(rig)): string =>
  renderUserData(config, { stack: 'cachenat-lab', resource: `Group${which === 'nat' ? 1 : 2}`, region: 'us-east-1', healthWaitSeconds: 60 });

export interface Boot {
  /** cfn-ready's exit code. */
  exitCode: number | undefined;
  /** cfn-ready's output lines. */
  output: string[];
  /** Each cfn-signal call's arguments, in order. */
  signals: string[][];
  daemon: Daemon | undefined;
  /** The config the daemon runs with: the rendered one plus LAB_ONLY_KEYS. */
  config: Record<string, unknown>;
  /** When `systemctl start` was asked for, when the daemon said ready, when cfn-ready exited (epoch ms). */
  startAskedAt: number;
  readyAt: number;
  doneAt: number;
}

type Tree = Record<string, unknown>;
const at = (tree: Tree, path: string): unknown => path.split('.').reduce<unknown>((node, key) => (node as Tree | undefined)?.[key], tree);
function put(tree: Tree, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = tree;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Tree;
  node[keys.at(-1)!] = value;
}

/** The rendered config with the lab's own keys added from the rig's config for that host. */
export function withLabKeys(rendered: string, rigConfig: string): Tree {
  const config = parse(rendered) as Tree;
  const lab = parse(rigConfig) as Tree;
  for (const path of LAB_ONLY_KEYS) {
    if (at(config, path) !== undefined) throw new Error(`the user data sets ${path}, which the lab would override: take it out of LAB_ONLY_KEYS or out of the constructs`);
    const value = at(lab, path);
    if (value !== undefined) put(config, path, value);
  }
  return config;
}

/** Stand-ins on cfn-ready's PATH; `systemctl start` waits for the test's answer in `start-result`. */
function writeShims(bin: string, node: { dir: string; configPath: string }): void {
  rmSync(bin, { recursive: true, force: true });
  mkdirSync(join(bin, 'signals'), { recursive: true });
  const env = Object.entries(daemonEnv(node.dir))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');
  const shims: Record<string, string> = {
    systemctl: `case $1 in
  start) : > ${bin}/start-asked; while [ ! -e ${bin}/start-result ]; do sleep 0.1; done; exit "$(cat ${bin}/start-result)" ;;
  *) exit 0 ;;
esac`,
    journalctl: 'exit 0',
    cachenat: `exec env ${env} ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@" --config ${JSON.stringify(node.configPath)}`,
    'cfn-signal': `n=$(find ${bin}/signals -type f | wc -l); printf '%s\\0' "$@" > ${bin}/signals/$n`,
  };
  for (const [name, body] of Object.entries(shims)) {
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
}

/**
 * Boots `which` from `userData`: writes its files, runs its command in the
 * host's namespace, starts the daemon when cfn-ready asks systemd to, and
 * waits for cfn-ready to finish. The host's state dir is left as it is:
 * empty it first to boot a new instance.
 */
export async function bootFromUserData(rig: HaRig, which: NatName, userData: string, timeoutMs = stretch(90_000)): Promise<Boot> {
  const node = rig.nodes[which];
  const cloud = parse(userData) as { write_files?: { path: string; content: string }[]; runcmd?: string[][] };
  const files = new Map((cloud.write_files ?? []).map((f) => [f.path, f.content]));
  const rendered = files.get(CONFIG_PATH);
  const check = files.get(BOOT_CHECK_PATH);
  const [command, ...more] = cloud.runcmd ?? [];
  if (rendered === undefined || check === undefined || files.size !== 2) throw new Error(`the user data should write ${CONFIG_PATH} and ${BOOT_CHECK_PATH}, wrote ${[...files.keys()].join(', ')}`);
  if (command?.[0] !== BOOT_CHECK_PATH || more.length > 0) throw new Error(`the user data should run ${BOOT_CHECK_PATH} alone, runs ${JSON.stringify(cloud.runcmd)}`);

  // cloud-init's write_files: the config (with the lab's keys) and cfn-ready.
  rig.configure(which);
  const config = withLabKeys(rendered, readFileSync(node.configPath, 'utf8'));
  writeFileSync(node.configPath, stringify(config));
  const script = join(node.dir, 'cfn-ready');
  writeFileSync(script, check, { mode: 0o755 });
  const bin = join(node.dir, 'boot-bin');
  writeShims(bin, node);

  // cloud-init's runcmd.
  const proc = rig.lab.spawnIn(node.ns, '/bin/bash', [script, ...command.slice(1)], { label: `cfn-ready on ${which}`, env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` } });
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(bin, 'start-asked'))) {
    if (!proc.running) break;
    if (Date.now() > deadline) throw new Error(`cfn-ready on ${which} never ran systemctl start: ${proc.output.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const startAskedAt = Date.now();
  // systemd: Type=notify, so `systemctl start` returns at READY=1.
  let daemon: Daemon | undefined;
  try {
    daemon = proc.running ? await rig.start(which, { readyTimeoutMs: stretch(30_000) }) : undefined;
    writeFileSync(join(bin, 'start-result'), '0');
  } catch (err) {
    writeFileSync(join(bin, 'start-result'), '1');
    throw err;
  }
  const exit = await Promise.race([proc.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now())))]);
  if (exit === undefined) {
    proc.kill('SIGKILL');
    throw new Error(`cfn-ready on ${which} did not finish in ${timeoutMs} ms: ${proc.output.join('\n')}`);
  }
  const signals = readdirSync(join(bin, 'signals'))
    .sort((a, b) => Number(a) - Number(b))
    .map((f) => readFileSync(join(bin, 'signals', f), 'utf8').split('\0').slice(0, -1));
  return { exitCode: exit.exitCode, output: [...proc.output], signals, daemon, config, startAskedAt, readyAt: daemon?.readyAt ?? Number.NaN, doneAt: Date.now() };
}
