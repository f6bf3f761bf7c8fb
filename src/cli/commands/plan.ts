// `cachenat plan`: the pass `apply` would run, computed and shown, nothing written.

import { describeEvent, describeFlows } from '../../core/daemon/events.js';
import { planOutcome } from '../../core/planner/plan-outcome.js';
import { PLAN_EXIT } from '../exit-codes.js';
import { isSet, JSON_FLAG, type CommandModule, type CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { onePass } from '../one-pass.js';
import { loadForHost, print, printJson } from './shared.js';

export const command: CommandModule = {
  flags: [JSON_FLAG],
  details: `Computes the pass "cachenat apply" would run (the same planner) and prints what it would change:
each event (new target, moved address, removal grace...) and the exact iptables-restore --noflush
input. Writes nothing: not the kernel, not the port map. Needs root to read the kernel's rules.

--json prints {"outcome", "changes": [{"type", "message", ...}], "connectionsToCut"?, "restore", "forwards", "apiError"?}.
Exit codes: 0 nothing to do, 2 changes pending (rules, or only the port map), 1 could not plan
(the API failed: what DNS and the kernel alone would change is still shown), 78 bad config.`,
  run: planCommand,
};

async function planCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadForHost(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  const machine = await io.machine();
  const report = await onePass(config, machine, logger, false);
  const events = report.plan.events.map((e) => ({ type: e.type, ...describeEvent(e) }));
  const restore = report.plan.changes.restore;
  const apiError = report.discovery.status === 'failed' ? report.discovery.error.message : undefined;
  const outcome = planOutcome({ discoveryFailed: apiError !== undefined, events: events.length, restore });
  if (apiError !== undefined) {
    print(io.stderr, `cachenat: could not plan: ElastiCache API: ${apiError}. A pass now would keep every forward as it is; run plan again once the API answers`);
  }
  if (isSet(options, 'json')) {
    const changes = events.map(({ type, message, fields }) => ({ type, message, ...fields }));
    const cut = report.plan.forget.map((f) => describeFlows(f));
    printJson(io.stdout, { outcome, changes, ...(cut.length > 0 ? { connectionsToCut: cut } : {}), restore, forwards: report.plan.forwards.length, ...(apiError !== undefined ? { apiError } : {}) });
    return PLAN_EXIT[outcome];
  }
  if (events.length === 0 && restore === null) {
    if (outcome === 'nothing-to-do') print(io.stdout, `nothing to do: ${report.plan.forwards.length} forwards are in place`);
    return PLAN_EXIT[outcome];
  }
  if (outcome === 'could-not-plan') print(io.stdout, "even without the API's answer, a pass would change:");
  if (events.length > 0) print(io.stdout, `changes:\n${events.map((e) => `  ${e.message}`).join('\n')}`);
  if (report.plan.forget.length > 0) print(io.stdout, `open connections to cut once the rules are in:\n${report.plan.forget.map((f) => `  ${describeFlows(f)}`).join('\n')}`);
  print(io.stdout, restore !== null ? `kernel update (iptables-restore --noflush input):\n${restore}` : 'the kernel rules already match; only the port map changes');
  return PLAN_EXIT[outcome];
}
