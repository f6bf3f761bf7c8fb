// Which cachenat this is: the version in package.json (shipped next to dist/
// in every install), and the Node runtime it runs on. Shown by --version, the
// start-up log line, `status --json`, `health --json` and the
// cachenat_build_info metric.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  /** package.json's version, e.g. 0.1.0; "unknown" when no package.json of cachenat is found. */
  version: string;
  /** The Node runtime, e.g. v22.12.0. */
  node: string;
}

/** The nearest package.json named cachenat above this module (dist/src/ when built, src/ under the test runner). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'cachenat' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // none here, or not readable: look one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export const BUILD_INFO: BuildInfo = { version: packageVersion(), node: process.version };

/** What `cachenat --version` prints. */
export const versionLine = (info: BuildInfo = BUILD_INFO): string => `cachenat ${info.version} (node ${info.node}, ${process.platform}-${process.arch})`;
