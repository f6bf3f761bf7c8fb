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
// SIM_RUNS seeds (default 10,000) from SIM_FROM (default 1), then every named
// counterexample (test/ha/sim/counterexamples.ts). SIM_SEED=n runs that one
// seed alone and prints its whole story.

import t from 'tap';
import { COUNTEREXAMPLES } from './sim/counterexamples.js';
import { REPLAY, runScenario, runSeed, type Failure } from './sim/run.js';
import { scenarioFor } from './sim/scenario.js';

const RUNS = Number(process.env.SIM_RUNS ?? 10_000);
const FROM = Number(process.env.SIM_FROM ?? 1);
const ONE = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);

const report = (f: Failure): string =>
  [`seed ${f.seed}: ${f.message}`, `replay: ${REPLAY(f.seed)}`, `scenario: ${JSON.stringify(f.scenario)}`, 'story (virtual ms, last lines):', f.story].join('\n');

if (ONE !== undefined) {
  t.test(`seed ${ONE}`, async (t) => {
    const outcome = await runSeed(ONE, 400);
    t.comment(`scenario: ${JSON.stringify(scenarioFor(ONE))}`);
    if (outcome.ok) t.comment(`result: ${JSON.stringify(outcome.result)}`);
    t.ok(outcome.ok, outcome.ok ? 'every invariant held' : report(outcome.failure));
  });
} else {
  t.test(`${RUNS} seeded runs from seed ${FROM}`, async (t) => {
    const started = performance.now();
    const failures: Failure[] = [];
    let ran = 0;
    const totals = { events: 0, virtualMs: 0, moves: 0, terms: 0, mapWrites: 0, takeovers: 0 };
    for (let seed = FROM; seed < FROM + RUNS; seed++) {
      const outcome = await runSeed(seed);
      ran++;
      if (!outcome.ok) {
        failures.push(outcome.failure);
        if (failures.length >= 3) break;
        continue;
      }
      for (const key of ['events', 'virtualMs', 'moves', 'terms', 'mapWrites'] as const) totals[key] += outcome.result[key];
      if (outcome.result.terms > 1) totals.takeovers++;
    }
    const seconds = (performance.now() - started) / 1000;
    t.comment(
      `${ran} runs in ${seconds.toFixed(1)} s: ${totals.events} events, ${Math.round(totals.virtualMs / 3_600_000)} h of virtual time, ` +
        `${totals.takeovers} runs with a change of leader, ${totals.moves} Elastic IP moves, ${totals.mapWrites} accepted map writes`,
    );
    for (const f of failures) t.fail(report(f));
    t.equal(ran, RUNS, `all ${RUNS} seeds ran`);
    t.ok(totals.takeovers > RUNS / 10, `the faults force changes of leader (${totals.takeovers} runs): the search is not idle`);
  });

  t.test('every counterexample found so far', async (t) => {
    t.ok(COUNTEREXAMPLES.length >= 5, `${COUNTEREXAMPLES.length} kept`);
    for (const ce of COUNTEREXAMPLES) {
      const outcome = await runScenario(ce.scenario, 200);
      t.ok(outcome.ok, outcome.ok ? `${ce.name} (broke: ${ce.broke})` : `${ce.name}: ${report(outcome.failure)}`);
    }
  });
}
