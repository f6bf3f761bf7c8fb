// The status snapshot on disk: world-readable, replaced atomically.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { StatusSnapshot } from '../core/daemon/status-snapshot.js';

export async function writeSnapshotFile(path: string, snapshot: StatusSnapshot): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  // Rewritten every pass, read by `health` and `status`: whole, but not worth two disk flushes each time.
  await writeFileAtomic(path, `${JSON.stringify(snapshot)}\n`, 0o644, { durable: false });
}

export async function readSnapshotFile(path: string): Promise<StatusSnapshot | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as StatusSnapshot;
    return parsed && parsed.version === 1 && Array.isArray(parsed.forwards) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
