// The Python reader's decoder against ctnetlink messages built from random
// events (test/support/ctnetlink.ts encodes them as the kernel does): every
// event carrying the mark comes out as exactly the line the protocol
// (src/core/audit/reader-lines.ts) reads back into the same event; every
// other one (no mark, another address family) comes out as nothing. The
// kernel side (the socket filter, counts of drops) is in reader-kernel.test.ts.
//
// AUDIT_RUNS (default 3000) events per run; AUDIT_SEED replays one.

import t from 'tap';
import fc from 'fast-check';
import { execa } from 'execa';
import { READER_BOOTSTRAP, READER_PROGRAM } from '../../src/audit/reader-program.js';
import { parseReaderLine, readerLineOf } from '../../src/core/audit/reader-lines.js';
import { ctnetlinkMessage } from '../support/ctnetlink.js';
import { flowEvent, MARK } from '../support/audit-arbitraries.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 3000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);

const cases = fc.sample(fc.tuple(flowEvent, fc.nat(12), fc.boolean(), fc.constantFrom(2, 2, 2, 2, 10)), { numRuns: RUNS, seed: SEED });

t.test(`the reader decodes ${RUNS} kernel messages as the protocol reads them (seed ${SEED})`, async (t) => {
  // The program goes in on fd 3, as the daemon sends it.
  const child = execa('python3', ['-I', '-B', '-c', READER_BOOTSTRAP, '--decode', '--mark', `0x${MARK.toString(16)}`], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    reject: false,
  });
  (child.stdio[3] as unknown as NodeJS.WritableStream).end(READER_PROGRAM);
  child.stdin!.end(cases.map(([e, rotate, unknown, family]) => ctnetlinkMessage(e, { rotate, unknownAttribute: unknown, family }).toString('hex')).join('\n') + '\n');
  const result = await child;
  t.equal(result.exitCode, 0, String(result.stderr));
  const lines = String(result.stdout).split('\n');
  let decoded = 0;
  let filtered = 0;
  const wrong: string[] = [];
  cases.forEach(([e, , , family], i) => {
    const ours = family === 2 && (e.mark & MARK) === MARK;
    const expected = ours ? readerLineOf(e) : '-';
    if (lines[i] !== expected) wrong.push(`case ${i}: expected ${expected}\n  got ${lines[i]}`);
    else if (ours) {
      decoded++;
      const back = parseReaderLine(lines[i]!);
      if (back?.type !== 'event' || JSON.stringify(back.event, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) !== JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))) {
        wrong.push(`case ${i}: read back differently: ${lines[i]}`);
      }
    } else filtered++;
  });
  t.same(wrong.slice(0, 5), [], `replay: AUDIT_SEED=${SEED} npx tap test/audit/reader-program.test.ts`);
  t.equal(decoded + filtered, RUNS, `${decoded} decoded and read back identically, ${filtered} without the mark or not IPv4 dropped`);
  t.ok(decoded > RUNS / 3 && filtered > RUNS / 10, 'both kinds were exercised');
});
