// Where audit lines go. The file: appended in batches, one line per record,
// created 0640 with its directory; reopened after logrotate moved it; a
// failing write is reported with how many lines it lost, and writing resumes
// once the file can be written again. The journal: the logger's line carries
// the record's keys, whatever log.level says.

import t from 'tap';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, JournalSink } from '../../src/audit/sinks.js';
import { gapRecordOf, parseAuditLine } from '../../src/core/audit/record.js';
import { createLogger } from '../../src/log/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'cachenat-audit-sink-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const gap = (n: number) => gapRecordOf('overrun', Date.parse('2026-12-07T13:00:00Z') + n, { lost: n });
const lostOf = (path: string) => readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => (parseAuditLine(l) as { lost: number }).lost);

t.test('the file: batches appended in order, a new file 0640 in a new directory', async (t) => {
  const path = join(dir, 'new', 'audit.jsonl');
  const failures: string[] = [];
  const sink = new FileSink(path, { failed: (n, e) => failures.push(`${n}: ${e}`), recovered: () => {} });
  for (let i = 0; i < 1000; i++) sink.write(gap(i));
  await sink.close();
  t.same(lostOf(path), [...Array(1000).keys()], 'every line, in order');
  t.equal(statSync(path).mode & 0o777, 0o640);
  t.equal(statSync(join(dir, 'new')).mode & 0o777, 0o750);
  t.same(failures, []);
});

t.test('reopen: after logrotate moved the file, lines go to a new one at the path', async (t) => {
  const path = join(dir, 'rotate.jsonl');
  const sink = new FileSink(path, { failed: () => {}, recovered: () => {} });
  sink.write(gap(1));
  await sink.reopen();
  sink.write(gap(2));
  await new Promise((r) => setTimeout(r, 20));
  renameSync(path, `${path}.1`);
  sink.write(gap(3)); // still the old file: it is open
  await sink.reopen();
  sink.write(gap(4));
  await sink.close();
  t.same(lostOf(`${path}.1`), [1, 2, 3]);
  t.same(lostOf(path), [4]);
});

t.test('a write that fails is reported with its lines; writing resumes when it can', async (t) => {
  // A plain file where the directory should be: mkdir and open both fail, for root too.
  const blocker = join(dir, 'blocked');
  writeFileSync(blocker, 'not a directory');
  const path = join(blocker, 'audit.jsonl');
  const failures: [number, string][] = [];
  let recovered = 0;
  const sink = new FileSink(path, { failed: (n, e) => failures.push([n, e]), recovered: () => recovered++ });
  sink.write(gap(1));
  sink.write(gap(2));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(failures.length, 1, 'one batch failed');
  t.equal(failures[0]![0], 2, 'with its two lines');
  t.match(failures[0]![1], /EEXIST|ENOTDIR/);
  rmSync(blocker);
  sink.write(gap(3));
  await sink.close();
  t.equal(recovered, 1, 'recovery reported once');
  t.same(lostOf(path), [3], 'the next line is written');
});

t.test('the journal: the logger line is the record plus the logger keys, at any log level', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'error', destination: { write: (l: string) => lines.push(l) } });
  const sink = new JournalSink(logger);
  sink.write(gapRecordOf('overrun', Date.parse('2026-12-07T13:00:00Z'), { lost: 7 }));
  t.equal(lines.length, 1, 'written although log.level is error');
  const parsed = JSON.parse(lines[0]!);
  t.equal(parsed.msg, 'audit: flows may be missing (overrun)');
  t.same(parseAuditLine(lines[0]!), gapRecordOf('overrun', Date.parse('2026-12-07T13:00:00Z'), { lost: 7 }), 'cachenat audit reads it back');
  t.equal(sink.where, 'journal');
});
