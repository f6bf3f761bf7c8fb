// Reading and writing the port map in state.dir. The file is untrusted on the
// way in (it may be truncated, hand-edited or from another version): anything
// that does not validate is treated as lost, and the map is rebuilt from the
// kernel's copy of it (src/core/netfilter/recover.ts).

import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { sameJson } from '../core/same-json.js';
import { isProcessAlive } from '../util/process-alive.js';
import type { PortState } from '../core/ports/port-state.js';
import { emptyPortState } from '../core/ports/port-state.js';
import { parseState, serializeState, type LoadedState } from '../core/ports/port-map-codec.js';

export const STATE_FILE_NAME = 'ports.json';

export { parseState, serializeState, type LoadedState } from '../core/ports/port-map-codec.js';

/** Where the port map is kept between runs: the state file, or (in tests) a stand-in with the same codec. */
export interface PortMapStore {
  /** Named in messages. */
  readonly path: string;
  load(): Promise<LoadedState>;
  /** Writes only when the content changed. Returns whether it wrote. */
  save(state: PortState): Promise<boolean>;
}

export class StateStore implements PortMapStore {
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
