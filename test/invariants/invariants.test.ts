// The promise that a client always reaches the cache it dialled, checked as
// invariants (I1–I6, test/invariants/harness.ts) after every step of random
// sequences of events run through the real Reconciler: targets added,
// removed and returning; failovers, several addresses per name, DNS failures,
// AAAA-only names; TLS and forward.plaintext changes; allowedSources changes;
// port↔address mode switches and the pool growing and shrinking (SIGHUP);
// restarts with the map kept and lost; kernel writes failing; the process
// killed between saving the map and the kernel write, and between the write
// and the flow flush; the lease moving in a pair.
//
// INVARIANTS_RUNS (default 10,000) sequences, seeded; a failure prints the seed
// and a one-line replay command. The reproductions from the issue are kept as
// named examples in examples.test.ts.

import t from 'tap';
import fc from 'fast-check';
import { emptyStats, runSequence } from './harness.js';
import { sequenceArb } from './steps.js';

const RUNS = Number(process.env.INVARIANTS_RUNS ?? 10_000);
const MAX_STEPS = Number(process.env.INVARIANTS_STEPS ?? 16);
const SEED = process.env.INVARIANTS_SEED === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(process.env.INVARIANTS_SEED);
const PATH = process.env.INVARIANTS_PATH;

t.test(`a client always reaches the cache it dialled: I1–I6 over ${RUNS} random sequences`, async (t) => {
  const stats = emptyStats();
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(sequenceArb(MAX_STEPS), async ({ setup, steps }) => {
      await runSequence(setup, steps, stats);
    }),
    { numRuns: RUNS, seed: SEED, ...(PATH === undefined ? {} : { path: PATH }), endOnFailure: PATH !== undefined },
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (details.failed) {
    const replay = `INVARIANTS_SEED=${details.seed} INVARIANTS_STEPS=${MAX_STEPS} INVARIANTS_PATH=${details.counterexamplePath ?? ''} npx tap --disable-coverage test/invariants/invariants.test.ts`;
    const example = details.counterexample?.[0];
    t.fail(
      [
        `an invariant broke (seed ${details.seed}, after ${details.numRuns} sequences, shrunk ${details.numShrinks} times)`,
        String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance),
        `smallest sequence: ${JSON.stringify(example)}`,
        `replay: ${replay}`,
      ].join('\n'),
    );
    return;
  }
  t.equal(details.numRuns, PATH === undefined ? RUNS : details.numRuns, `${details.numRuns} sequences (seed ${SEED})`);
  t.comment(
    `seed ${SEED}: ${stats.sequences} sequences, ${stats.steps} steps (longest ${stats.longest}), ${stats.passes} passes, ${stats.faults} kernel faults, ${stats.recoveries} map losses, ` +
      `${stats.flowsOpened} connections opened (${stats.releasedDials} dials to released listeners), ${stats.flowsForgotten} forgotten, in ${seconds} s`,
  );
  t.ok(stats.recoveries > 0 && stats.faults > 0 && stats.flowsForgotten > 0 && stats.releasedDials > 0, 'the generator reaches recoveries, faults, forgotten flows and released listeners');
  if (PATH === undefined && RUNS >= 1000) t.equal(stats.longest, MAX_STEPS, `sequences reach ${MAX_STEPS} steps`);
});
