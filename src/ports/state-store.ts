// Reading and writing the port map in state.dir. The file is untrusted on the
// way in (it may be truncated, hand-edited or from another version): anything
// that does not validate is treated as lost, and the map is rebuilt from the
// rules installed in the kernel.

import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-file.js';
import { isIpv4 } from '../core/ipv4.js';
import { ENGINES, endpointAddressProblem, isEngine, isId, isPort, keyProblem, listenAddressProblem, parseTargetKey, TARGET_KINDS } from '../core/grammar.js';
import { isProcessAlive } from '../util/process-alive.js';
import type { PortEntry, PortState } from '../core/ports/port-state.js';
import { emptyPortState, listenerClash, listenerText } from '../core/ports/port-state.js';
import type { RecoveredForward } from '../core/netfilter/recover.js';

export const STATE_FILE_NAME = 'ports.json';

// Ids, keys, engines, ports and addresses follow the grammar (src/core/grammar.ts),
// so a file entry is valid exactly when the renderer and recovery accept it too.
const port = z.number().refine(isPort, 'expected a TCP port (1-65535)');
const time = z.number().int().nonnegative();
const id = z.string().refine(isId, 'expected an AWS id');
const listenAddress = z.string().refine((address) => listenAddressProblem(address) === undefined, 'expected a unicast IPv4 address');

const entrySchema = z.strictObject({
  key: z.string().refine((key) => keyProblem(key) === undefined, 'expected a target key such as node/<cluster>/<node>, primary/<group> or serverless/<name>'),
  kind: z.enum(TARGET_KINDS),
  engine: z.string().refine(isEngine, `expected one of ${ENGINES.join(', ')}`),
  cacheClusterId: id.optional(),
  cacheNodeId: id.optional(),
  replicationGroupId: id.optional(),
  serverlessCacheName: id.optional(),
  tls: z.boolean().optional(),
  address: z.string().refine((address) => endpointAddressProblem(address) === undefined, 'expected an IPv4 address or a DNS name'),
  targetPort: port,
  listenPort: port,
  listenAddress: listenAddress.optional(),
  fallback: z.literal(true).optional(),
  ip: z.string().refine(isIpv4).optional(),
  ips: z.array(z.string().refine(isIpv4)).min(2).max(64).optional(),
  resolvedAt: time.optional(),
  unresolvedSince: time.optional(),
  goneSince: time.optional(),
});

const stateSchema = z.strictObject({
  version: z.literal(1),
  entries: z.array(entrySchema),
  released: z.array(z.strictObject({ port, key: z.string().max(200), releasedAt: time })),
  releasedAddresses: z.array(z.strictObject({ address: listenAddress, key: z.string().max(200), releasedAt: time })).optional(),
});

export type LoadedState =
  | { status: 'ok'; state: PortState }
  | { status: 'missing'; state: PortState }
  | { status: 'corrupt'; state: PortState; problem: string };

/** Pure: text of the state file → state, or why it cannot be used. */
export function parseState(text: string): LoadedState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { status: 'corrupt', state: emptyPortState(), problem: `not JSON (${(err as Error).message})` };
  }
  const result = stateSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    return { status: 'corrupt', state: emptyPortState(), problem: `${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}` };
  }
  const clash = listenerClash(result.data.entries);
  if (clash) return { status: 'corrupt', state: emptyPortState(), problem: `${clash[0].key} and ${clash[1].key} both listen on ${listenerText(clash[1])}` };
  return { status: 'ok', state: result.data as PortState };
}

/** Keys in a fixed order, so the same state is always the same bytes (and an idle pass writes nothing). */
export const serializeState = (state: PortState): string =>
  `${JSON.stringify(state, (_key, value: unknown) => (value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1))) : value), 1)}\n`;

export class StateStore {
  readonly path: string;
  private lastWritten: string | undefined;

  constructor(readonly dir: string) {
    this.path = join(dir, STATE_FILE_NAME);
  }

  async load(): Promise<LoadedState> {
    await this.removeStaleTempFiles();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing', state: emptyPortState() };
      return { status: 'corrupt', state: emptyPortState(), problem: `cannot read ${this.path}: ${(err as Error).message}` };
    }
    const loaded = parseState(text);
    if (loaded.status === 'ok') this.lastWritten = serializeState(loaded.state);
    return loaded;
  }

  /** A writer killed mid-write leaves its temp file behind; it is never read, only tidied here. */
  private async removeStaleTempFiles(): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    // Named .ports.json.<pid>.<ms>.tmp: a live writer's file is left alone.
    const stale = names.filter((n) => {
      const match = /^\.ports\.json\.(\d+)\.\d+\.tmp$/.exec(n);
      return match !== null && !isProcessAlive(Number(match[1]));
    });
    await Promise.all(stale.map((n) => rm(join(this.dir, n), { force: true }).catch(() => undefined)));
  }

  /** Writes only when the content changed. Returns whether it wrote. */
  async save(state: PortState): Promise<boolean> {
    const text = serializeState(state);
    if (text === this.lastWritten) return false;
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    await writeFileAtomic(this.path, text, 0o644);
    this.lastWritten = text;
    return true;
  }
}

/**
 * Pure: rebuilds port entries from the owner comments of installed DNAT rules,
 * so a lost state file does not reshuffle ports. The address is the last IP
 * until the API names the endpoint again.
 */
export function stateFromRecoveredRules(recovered: readonly RecoveredForward[], now: number): PortState {
  const state = emptyPortState();
  for (const r of recovered) {
    const parsed = parseTargetKey(r.key);
    if (!parsed || listenerClash([...state.entries, r]) || state.entries.some((e) => e.key === r.key)) continue;
    const entry: PortEntry = { key: r.key, ...parsed, engine: r.engine, address: r.targetIp, targetPort: r.targetPort, listenPort: r.listenPort, ip: r.targetIp, resolvedAt: now };
    if (r.listenAddress !== undefined) {
      entry.listenAddress = r.listenAddress;
      // Address mode listens on the native port; any other port is a fallback on the first address.
      if (r.listenPort !== r.targetPort) entry.fallback = true;
    }
    state.entries.push(entry);
  }
  state.entries.sort((a, b) => (a.key < b.key ? -1 : 1));
  return state;
}
