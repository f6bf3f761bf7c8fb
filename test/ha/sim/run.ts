// Runs simulated scenarios and reports what broke: shared by the simulation
// test and by a by-hand replay of one seed.

import { scenarioFor, withLateCalls, type Scenario } from './scenario.js';
import { InvariantBroken, World, type RunResult } from './world.js';

export interface Failure {
  seed: number;
  scenario: Scenario;
  invariant: string;
  message: string;
  story: string;
}

export type Outcome = { ok: true; result: RunResult } | { ok: false; failure: Failure };

export const REPLAY = (seed: number, late = false): string => `${late ? 'SIM_LATE=1 ' : ''}SIM_SEED=${seed} AWS_EC2_METADATA_DISABLED=true npx tap --disable-coverage test/ha/simulation.test.ts`;

export async function runScenario(scenario: Scenario, storyLines = 80, ignored: readonly string[] = [], stacks = false): Promise<Outcome> {
  const world = new World(scenario);
  for (const name of ignored) world.ignored.add(name);
  // Errors are made by the thousand (timeouts); their stacks are never read, unless a run throws for another reason (then it runs again with them).
  const limit = Error.stackTraceLimit;
  if (!stacks) Error.stackTraceLimit = 0;
  try {
    return { ok: true, result: await world.run() };
  } catch (err) {
    if (!stacks && !(err instanceof InvariantBroken)) return runScenario(scenario, storyLines, ignored, true);
    const invariant = err instanceof InvariantBroken ? err.invariant : 'the run threw';
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    return { ok: false, failure: { seed: scenario.seed, scenario, invariant, message: err instanceof InvariantBroken ? err.message : message, story: world.storyText(storyLines) } };
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The seed's scenario; `late`: with calls applied after their caller gave up (withLateCalls). */
export const scenarioOf = (seed: number, late = false): Scenario => (late ? withLateCalls(scenarioFor(seed)) : scenarioFor(seed));

export const runSeed = (seed: number, storyLines?: number, ignored?: readonly string[], late = false): Promise<Outcome> => runScenario(scenarioOf(seed, late), storyLines, ignored);
