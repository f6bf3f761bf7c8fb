// What `cachenat plan` concludes from one pass computed without writing. One
// definition, so the printed verdict and the exit code cannot disagree.

export type PlanOutcome = 'nothing-to-do' | 'changes-pending' | 'could-not-plan';

export interface PlanFacts {
  /** The API gave no complete answer: membership changes cannot be known. */
  discoveryFailed: boolean;
  /** Forward events the pass would log (ports assigned, draining, moved…), state-only ones included. */
  events: number;
  /** The iptables-restore input the pass would write, null when the kernel already matches. */
  restore: string | null;
}

export function planOutcome(facts: PlanFacts): PlanOutcome {
  // Without the API's answer "nothing to do" would be a guess: whatever else is pending, the plan is incomplete.
  if (facts.discoveryFailed) return 'could-not-plan';
  return facts.events > 0 || facts.restore !== null ? 'changes-pending' : 'nothing-to-do';
}
