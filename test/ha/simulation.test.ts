// The HA pair under a deterministic simulation (test/ha/sim/): two real HA
// nodes (src/ha/) on one virtual clock, against a DynamoDB model with its
// condition semantics and a truthful EC2 model (a call that timed out may
// have been applied), with faults injected per instance and per service.
// After every event (test/ha/sim/world.ts):
//   - no AssociateAddress is sent by an instance without a confirmed hold,
//     nor applied while another holds the lease;
//   - the address moves at most once per term;
//   - never two confirmed leaders, and no instance counts its hold as
//     confirmed while the table names another (or nobody);
//   - only a confirmed leader says leader;
//   - no map write is accepted from a term older than the lease's;
//   - a present target keeps its port across every accepted map;
//   - an instance cut off from DynamoDB for a lease is not OK in health;
//   - slow calls alone (every one answered) never cause a takeover;
// and once the faults heal: one leader, the address on it, every target mapped.
//
// SIM_RUNS seeds (default 10,000) from SIM_FROM (default 1) on SIM_WORKERS
// threads (default 1), then every named counterexample
// (test/ha/sim/counterexamples.ts). SIM_SEED=n runs that one seed alone and
// prints its whole story; a failure prints that replay command.

import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { COUNTEREXAMPLES } from './sim/counterexamples.js';
import { REPLAY, runScenario, runSeed, type Failure } from './sim/run.js';
import type { RunResult } from './sim/world.js';
import { scenarioFor } from './sim/scenario.js';

const RUNS = Number(process.env.SIM_RUNS ?? 10_000);
const FROM = Number(process.env.SIM_FROM ?? 1);
const ONE = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);
/**
 * Threads the seeds run on, off the test runner's own thread (whose async
 * hooks would slow the runs). One by default: the runner keeps another test
 * file going beside this one, and lab tests time things.
 */
const WORKERS = Number(process.env.SIM_WORKERS ?? 1);

/** A failure: its seed, what broke and the one-line replay, then the scenario and the story (virtual ms) as comments. */
function fail(t: Test, f: Failure, name = `seed ${f.seed}`): void {
  t.fail(`${name}: ${f.message}; replay: ${REPLAY(f.seed)}`);
  t.comment(`scenario: ${JSON.stringify(f.scenario)}`);
  t.comment(`story (virtual ms, last lines):\n${f.story}`);
}

if (ONE !== undefined) {
  t.test(`seed ${ONE}`, async (t) => {
    const outcome = await runSeed(ONE, 400);
    t.comment(`scenario: ${JSON.stringify(scenarioFor(ONE))}`);
    if (outcome.ok) t.comment(`result: ${JSON.stringify(outcome.result)}`);
    if (outcome.ok) t.pass('every invariant held');
    else fail(t, outcome.failure);
  });
} else {
  t.test(`${RUNS} seeded runs from seed ${FROM}`, async (t) => {
    const started = performance.now();
    const failures: Failure[] = [];
    let ran = 0;
    const totals = { events: 0, virtualMs: 0, moves: 0, terms: 0, mapWrites: 0, takeovers: 0 };
    // The seeds split over WORKERS threads (each seed's run is the same wherever it runs).
    const share = Math.ceil(RUNS / WORKERS);
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, i) => {
        const runs = Math.max(0, Math.min(share, RUNS - i * share));
        if (runs === 0) return;
        const worker = new Worker(new URL('./sim/worker.ts', import.meta.url), { workerData: { from: FROM + i * share, runs } });
        await new Promise<void>((resolve, reject) => {
          worker.on('error', reject);
          worker.on('message', (m: { done: true } | { seed: number; ok: true; result: RunResult } | { seed: number; ok: false; failure: Failure }) => {
            if ('done' in m) return resolve();
            ran++;
            if (!m.ok) return void failures.push(m.failure);
            for (const key of ['events', 'virtualMs', 'moves', 'terms', 'mapWrites'] as const) totals[key] += m.result[key];
            if (m.result.terms > 1) totals.takeovers++;
          });
        });
        await worker.terminate();
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    t.comment(
      `${ran} runs in ${seconds.toFixed(1)} s: ${totals.events} events, ${Math.round(totals.virtualMs / 3_600_000)} h of virtual time, ` +
        `${totals.takeovers} runs with a change of leader, ${totals.moves} Elastic IP moves, ${totals.mapWrites} accepted map writes`,
    );
    for (const f of failures) fail(t, f);
    t.equal(ran, RUNS, `all ${RUNS} seeds ran${failures.length > 0 ? ' (a thread stops at its first failure)' : ''}`);
    t.ok(totals.takeovers > RUNS / 10, `the faults force changes of leader (${totals.takeovers} runs): the search is not idle`);
  });

  t.test('every counterexample found so far', async (t) => {
    t.ok(COUNTEREXAMPLES.length >= 5, `${COUNTEREXAMPLES.length} kept`);
    for (const ce of COUNTEREXAMPLES) {
      const outcome = await runScenario(ce.scenario, 200);
      if (outcome.ok) t.pass(`${ce.name} (broke: ${ce.broke})`);
      else fail(t, outcome.failure, ce.name);
    }
  });
}
