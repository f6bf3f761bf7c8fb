// Replaces the metrics textfile so node_exporter never reads half of it: the
// text goes to a temp file in the same directory (named so the collector,
// which reads only *.prom, skips it), then a rename swaps it in. No fsync: a
// file lost in a crash is rewritten by the next pass, and syncing the disk
// every few seconds would cost more than the rest of the metrics step.

import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function replaceTextfile(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const file = await open(temp, 'w', 0o644);
    try {
      await file.writeFile(text, 'utf8');
      // node_exporter runs as its own user: world-readable whatever the unit's umask (0027).
      await file.chmod(0o644);
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
