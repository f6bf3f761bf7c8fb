// The shipped logrotate snippet, run for real by logrotate on a copy pointed
// at a temp dir (its postrotate replaced by a marker): it rotates, and the
// names it leaves are the ones `cachenat audit` reads back.

import t from 'tap';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditFiles } from '../../src/audit/log-reader.js';

const SNIPPET = fileURLToPath(new URL('../../etc/logrotate.d/cachenat-audit', import.meta.url));
const missing = (await execa('logrotate', ['--version'], { reject: false })).exitCode === 0 ? false : 'logrotate is not installed (apt-get install logrotate)';

t.test('rotates, signals the daemon, and leaves names cachenat audit reads', { skip: missing }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cachenat-logrotate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'audit.jsonl');
  const marker = join(dir, 'reloaded');
  const text = readFileSync(SNIPPET, 'utf8');
  t.match(text, /^\/var\/log\/cachenat\/audit\.jsonl \{$/m, 'the snippet names the default audit.file');
  t.match(text, /^\s+systemctl reload cachenat\.service/m, 'and reopens it with a reload (SIGHUP)');
  const config = join(dir, 'logrotate.conf');
  writeFileSync(
    config,
    text
      .replace('/var/log/cachenat/audit.jsonl', log)
      .replace(/systemctl reload cachenat\.service.*$/m, `touch ${marker}`)
      .replace(/^\s+create .*$/m, '    create 0640'),
  );
  const state = join(dir, 'state');
  const rotate = async () => {
    const r = await execa('logrotate', ['--force', '--state', state, config], { reject: false });
    t.equal(r.exitCode, 0, r.stderr || 'logrotate ran');
  };
  writeFileSync(log, '{"audit":true}\n');
  await rotate();
  t.ok(existsSync(marker), 'postrotate ran');
  t.ok(existsSync(log), 'a new, empty audit.file');
  // Dated names carry the hour: the first copy is made an hour older, as if rotated then.
  const first = readdirSync(dir).find((n) => /^audit\.jsonl-\d{10}$/.test(n))!;
  t.ok(first, `the copy has a dated name: ${first}`);
  renameSync(join(dir, first), join(dir, 'audit.jsonl-2026120600'));
  writeFileSync(log, '{"audit":true}\n');
  rmSync(state);
  await rotate();
  const names = readdirSync(dir).filter((n) => n.startsWith('audit.jsonl')).sort();
  t.ok(names.some((n) => n.endsWith('.gz')), `the older copy compressed: ${names.join(', ')}`);
  t.ok(names.some((n) => /^audit\.jsonl-\d+$/.test(n)), 'the newest copy not yet (delaycompress)');
  const found = (await auditFiles(log, 0)).map((p) => p.slice(dir.length + 1)).sort();
  t.same(found, names, 'cachenat audit reads every copy');
});
