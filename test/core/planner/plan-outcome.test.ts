import t from 'tap';
import { planOutcome, type PlanFacts } from '../../../src/core/planner/plan-outcome.js';

const CASES: [string, PlanFacts, ReturnType<typeof planOutcome>][] = [
  ['nothing at all', { discoveryFailed: false, events: 0, restore: null }, 'nothing-to-do'],
  ['rules to write', { discoveryFailed: false, events: 0, restore: '*nat\nCOMMIT\n' }, 'changes-pending'],
  ['events only (the port map changes, the kernel does not)', { discoveryFailed: false, events: 1, restore: null }, 'changes-pending'],
  ['API failed, nothing else', { discoveryFailed: true, events: 0, restore: null }, 'could-not-plan'],
  ['API failed while rules are pending', { discoveryFailed: true, events: 2, restore: '*nat\nCOMMIT\n' }, 'could-not-plan'],
];

for (const [name, facts, expected] of CASES) {
  t.equal(planOutcome(facts), expected, name);
}
