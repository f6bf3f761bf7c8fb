// A scratch directory that is gone when its test ends, pass or fail: test
// runs must not leave state files behind in /tmp.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface HasTeardown {
  teardown(fn: () => unknown): void;
}

export function scratchDir(t: HasTeardown, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cachenat-${prefix}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
