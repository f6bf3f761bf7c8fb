// Every exit code the CLI uses, in one place. `health` is the exception that
// proves the rule: it exits with the Nagios state (0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN) that src/core/health/evaluate.ts decides.

import type { PlanOutcome } from '../core/planner/plan-outcome.js';

export const EXIT = {
  ok: 0,
  /** The command could not do its job (API or kernel failure, lock held, no usable address). */
  failure: 1,
  /** `plan`: changes pending. */
  pending: 2,
  /** sysexits EX_USAGE: unknown command or option. */
  usage: 64,
  /** sysexits EX_CONFIG: bad configuration; systemd's RestartPreventExitStatus names it. */
  config: 78,
} as const;

/** `plan`: 0 nothing to do, 2 changes pending, 1 could not plan. */
export const PLAN_EXIT: Record<PlanOutcome, number> = {
  'nothing-to-do': EXIT.ok,
  'changes-pending': EXIT.pending,
  'could-not-plan': EXIT.failure,
};

export class UsageError extends Error {
  override name = 'UsageError';
}
