// Reads the audit log back for `cachenat audit`: audit.file with the copies
// logrotate left beside it (audit.jsonl.1, audit.jsonl.2.gz, or dated ones),
// or the journal. Lines stream through, so a month of log is never held in
// memory; files last written before the window are skipped unread.

import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** audit.file and its rotated copies in its directory, oldest first, leaving out those last written before `fromMs`. */
export async function auditFiles(path: string, fromMs: number): Promise<string[]> {
  const dir = dirname(path);
  const rotated = new RegExp(`^${escapeRegExp(basename(path))}(\\.\\d+|-\\d{8,10})?(\\.gz)?$`);
  const names = (await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  })).filter((name) => rotated.test(name));
  const files = await Promise.all(names.map(async (name) => ({ path: join(dir, name), mtimeMs: (await stat(join(dir, name))).mtimeMs })));
  return files
    .filter((f) => f.mtimeMs >= fromMs)
    .sort((a, b) => a.mtimeMs - b.mtimeMs)
    .map((f) => f.path);
}

/** Every line of the files, in turn (gzip-compressed ones unpacked). */
export async function* fileLines(paths: readonly string[]): AsyncGenerator<string> {
  for (const path of paths) {
    const raw = createReadStream(path);
    const input: Readable = path.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
    yield* createInterface({ input, crlfDelay: Infinity });
  }
}

/**
 * The daemon's journal lines between two times (journalctl -o cat prints each
 * line as the daemon wrote it). A flow's line is written after it ends, so the
 * end of the range waits a minute more than the window.
 */
export async function* journalLines(unit: string, fromMs: number, toMs: number): AsyncGenerator<string> {
  const seconds = (ms: number) => `@${Math.floor(ms / 1000)}`;
  const child = execa('journalctl', ['--unit', unit, '--output', 'cat', '--no-pager', '--since', seconds(fromMs), '--until', seconds(toMs + 60_000)], {
    buffer: false,
    reject: false,
    stdin: 'ignore',
    env: { LC_ALL: 'C' },
  });
  yield* createInterface({ input: child.stdout!, crlfDelay: Infinity });
  const result = await child;
  if (result.exitCode !== 0) {
    throw new Error(result.code === 'ENOENT' ? 'journalctl is not installed: without audit.file, audit lines are only in the journal' : `journalctl exited ${result.exitCode}: ${String(result.stderr ?? '').trim()}`);
  }
}
