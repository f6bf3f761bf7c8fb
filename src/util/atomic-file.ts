// Crash-safe file replacement: write a temp file in the same directory, fsync
// it, rename it over the target, fsync the directory. A reader sees either the
// old file or the new one, never half of either.

import { open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/**
 * `durable: false` leaves out both fsyncs: for a file rewritten every pass
 * that need not outlive a power cut (the status snapshot in /run), readers
 * still see it whole, and the pass spares two disk flushes.
 */
export async function writeFileAtomic(path: string, data: string, mode = 0o644, options: { durable?: boolean } = {}): Promise<void> {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const file = await open(temp, 'w', mode);
  try {
    await file.writeFile(data, 'utf8');
    await file.chmod(mode); // umask must not loosen or tighten what the caller asked for
    if (durable) await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  await file.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  if (!durable) return;
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
