// The reader's keeper: lines are parsed and passed on in order, a reader that
// dies is reported down (with its last words) and started again after pauses
// that double while it keeps dying and start over once it stayed up, and
// stop() ends it for good. A fake reader stands in for python3.

import t from 'tap';
import { PassThrough } from 'node:stream';
import { EventReader, readerArguments, type ReaderChild } from '../../src/audit/event-reader.js';
import type { ReaderLine } from '../../src/core/audit/reader-lines.js';

interface FakeChild extends ReaderChild {
  out: PassThrough;
  err: PassThrough;
  exit(code: number | null, signal?: string): void;
  args: readonly string[];
}

function fakeChild(args: readonly string[]): FakeChild {
  const out = new PassThrough();
  const err = new PassThrough();
  let resolve!: (value: { code: number | null; signal: string | null }) => void;
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => (resolve = r));
  const child: FakeChild = {
    stdout: out,
    stderr: err,
    exited,
    args,
    out,
    err,
    exit(code, signal) {
      out.end();
      err.end();
      resolve({ code, signal: signal ?? null });
    },
    stop: () => child.exit(0),
  };
  return child;
}

const settle = () => new Promise((r) => setTimeout(r, 20));

t.test('arguments: the mark in hex, the events, the buffer; nothing else reaches the command line', async (t) => {
  const args = readerArguments({ mark: 0x1000000, starts: false, bufferBytes: 16 << 20 });
  t.same(args.slice(0, 3), ['-I', '-B', '-c']);
  t.same(args.slice(4), ['--mark', '0x1000000', '--events', 'destroy', '--buffer', '16777216']);
  t.same(readerArguments({ mark: 0x80, starts: true, bufferBytes: 0 }).slice(4), ['--mark', '0x80', '--events', 'new,destroy', '--buffer', '0']);
  t.throws(() => readerArguments({ mark: 0, starts: false, bufferBytes: 0 }), /invalid connmark/);
  t.throws(() => readerArguments({ mark: 1.5, starts: false, bufferBytes: 0 }), /invalid connmark/);
  t.throws(() => readerArguments({ mark: 1, starts: false, bufferBytes: -1 }), /invalid buffer/);
});

t.test('lines in order; a death is reported and the reader comes back after growing pauses', async (t) => {
  const children: FakeChild[] = [];
  const lines: ReaderLine[] = [];
  const downs: string[] = [];
  const invalid: string[] = [];
  const pauses: number[] = [];
  let now = 0;
  const reader = new EventReader(
    { mark: 0x1000000, starts: false, bufferBytes: 1 << 20 },
    { line: (l) => lines.push(l), down: (reason) => downs.push(reason), invalid: (l) => invalid.push(l) },
    (args) => {
      const c = fakeChild(args);
      children.push(c);
      return c;
    },
    () => now,
    async (ms) => {
      pauses.push(ms);
      await new Promise((r) => setImmediate(r));
    },
  );
  const started = async (n: number) => {
    while (children.length < n) await new Promise((r) => setTimeout(r, 2));
  };
  reader.start();
  await started(1);
  children[0]!.out.write('R 1 buffer=2097152 filter=kernel events=destroy\nL 3 3 17\nnot a line\n');
  await settle();
  t.same(lines.map((l) => l.type), ['ready', 'overrun']);
  t.same(invalid, ['not a line'], 'a line outside the protocol is reported, not used');

  children[0]!.err.write('PermissionError: [Errno 1] Operation not permitted\n');
  children[0]!.exit(1);
  await started(2);
  t.same(downs, ['exited 1: PermissionError: [Errno 1] Operation not permitted'], 'down, with its last words');
  for (let i = 1; i <= 7; i++) {
    children[i]!.exit(null, 'SIGKILL');
    await started(i + 2);
  }
  t.same(downs.slice(1), Array(7).fill('killed by SIGKILL'));
  t.same(pauses, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000], 'pauses double from 1 s up to a minute');

  // A reader that stayed up a minute was healthy: the next pause is the first one again.
  now += 60_000;
  children[8]!.exit(0);
  await started(10);
  t.equal(pauses.at(-1), 1_000, 'after a healthy run the pause starts over');

  await reader.stop();
  await settle();
  t.equal(children.length, 10, 'stopped: no new reader');
});

t.test('a reader that cannot start at all (python3 missing) is down with that reason, and retried', async (t) => {
  const downs: string[] = [];
  let tries = 0;
  const reader = new EventReader(
    { mark: 0x1000000, starts: false, bufferBytes: 0 },
    { line: () => {}, down: (reason) => downs.push(reason), invalid: () => {} },
    (args) => {
      tries++;
      const c = fakeChild(args);
      c.exited = Promise.resolve({ code: null, signal: null, error: 'python3 is not installed (apt-get install python3, or dnf install python3)' });
      c.out.end();
      c.err.end();
      return c;
    },
    Date.now,
    () => new Promise((r) => setImmediate(r)),
  );
  reader.start();
  while (tries < 3) await new Promise((r) => setTimeout(r, 5));
  await reader.stop();
  t.match(downs[0], /python3 is not installed/);
  t.ok(downs.length >= 2, `retried (${downs.length} tries)`);
});
