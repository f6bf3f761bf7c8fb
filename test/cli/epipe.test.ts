// `cachenat status | head -1`: once the reader has closed the pipe the
// command ends quietly with its own exit code, not an unhandled EPIPE.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const MAIN = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

t.test('a closed stdout ends the command quietly', { skip: existsSync(MAIN) ? false : `${MAIN} is not built (npx tsc -p tsconfig.json)` }, async (t) => {
  const child = spawn(process.execPath, [MAIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy(); // the reader is gone before the first byte
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  t.equal(code, 0, 'exit 0, as --help alone');
  t.equal(stderr, '', 'nothing on stderr');
});
