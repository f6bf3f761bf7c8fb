// Reading and writing the port map in state.dir. The file is untrusted on the
// way in (it may be truncated, hand-edited or from another version): anything
// that does not validate is treated as lost, and the map is rebuilt from the
// rules installed in the kernel.

import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { sameJson } from '../core/same-json.js';
import { parseTargetKey } from '../core/grammar.js';
import { isProcessAlive } from '../util/process-alive.js';
import type { PortEntry, PortState } from '../core/ports/port-state.js';
import { emptyPortState, listenerClash } from '../core/ports/port-state.js';
import { parseState, serializeState, type LoadedState } from '../core/ports/port-map-codec.js';
import type { RecoveredForward } from '../core/netfilter/recover.js';

export const STATE_FILE_NAME = 'ports.json';

export { parseState, serializeState, type LoadedState } from '../core/ports/port-map-codec.js';

export class StateStore {
  readonly path: string;
  /** What the file holds: its text, and the state it came from. */
  private lastWritten: { text: string; state: PortState } | undefined;

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
    if (loaded.status === 'ok') this.lastWritten = { text: serializeState(loaded.state), state: structuredClone(loaded.state) };
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

  /**
   * Writes only when the content changed. Returns whether it wrote. Every
   * pass calls this: a state equal to the last one written is recognised
   * without serialising it (at 1000 forwards that serialisation was a fifth
   * of all a steady daemon allocated).
   */
  async save(state: PortState): Promise<boolean> {
    if (this.lastWritten !== undefined && sameJson(state, this.lastWritten.state)) return false;
    const text = serializeState(state);
    const changed = text !== this.lastWritten?.text;
    if (changed) {
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
      await writeFileAtomic(this.path, text, 0o644);
    }
    // A copy: the state handed in belongs to the caller.
    this.lastWritten = { text, state: structuredClone(state) };
    return changed;
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
