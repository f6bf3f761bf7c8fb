// sameJson(a, b) must agree with comparing the sorted-key JSON texts (what
// the port map's serialisation does), for any plain data: the state store
// skips a write on its word.

import t from 'tap';
import fc from 'fast-check';
import { sameJson } from '../../src/core/same-json.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 2_000);
const SEED = process.env.HARDENING_SEED === undefined ? undefined : Number(process.env.HARDENING_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

const sortedJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));

// Small values so that equal pairs come up often; undefined inside objects, as optional fields leave them.
const leaf = fc.oneof(fc.constantFrom(0, 1, 6379, 'a', 'b', '', true, false, null), fc.constant(undefined));
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(fc.constantFrom('k', 'l', 'm', 'port'), tie('value'), { maxKeys: 3 })),
}));

/** The same data built again with its keys in another order (and any undefined fields dropped). */
function rebuilt(v: unknown, reverse: boolean): unknown {
  if (Array.isArray(v)) return v.map((x) => rebuilt(x, reverse));
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return Object.fromEntries((reverse ? entries.reverse() : entries).map(([k, x]) => [k, rebuilt(x, reverse)]));
  }
  return v;
}

t.test('agrees with the sorted-key JSON texts on any pair', async (t) => {
  let runs = 0;
  let equalPairs = 0;
  const out = fc.check(
    fc.property(value, value, fc.boolean(), (a, b, sameData) => {
      runs++;
      const other = sameData ? rebuilt(a, true) : b;
      const expected = sortedJson(a) === sortedJson(other);
      if (expected) equalPairs++;
      return sameJson(a, other) === expected && sameJson(other, a) === expected;
    }),
    params,
  );
  if (out.failed) t.fail(`counterexample ${JSON.stringify(out.counterexample)}; replay: HARDENING_SEED=${out.seed} npx tap test/core/same-json.test.ts`);
  t.equal(runs >= RUNS, true, `${runs} cases`);
  t.ok(equalPairs > RUNS / 4 && equalPairs < runs, `${equalPairs} of them equal: both answers were tried`);
});

t.test('named examples', async (t) => {
  t.ok(sameJson({ a: 1, b: undefined }, { a: 1 }), 'an undefined field counts as absent');
  t.notOk(sameJson({ a: 1 }, { a: 1, b: null }), 'null does not');
  t.notOk(sameJson([1, 2], [2, 1]), 'arrays are ordered');
  t.notOk(sameJson([], {}), 'an array is not an object');
  t.ok(sameJson({ x: [{ p: 1, q: 'a' }] }, { x: [{ q: 'a', p: 1 }] }), 'key order does not matter');
  t.notOk(sameJson({ p: 1 }, { p: '1' }));
  t.notOk(sameJson({ k: {} }, {}), 'found by the search when the key count was not compared: a key only one side has');
});
