// `apply` (one pass, writing) and `plan` (the same pass, writing nothing).

import { acquireLock } from '../../daemon/lock.js';
import { Reconciler, type PassReport } from '../../daemon/reconciler.js';
import { describeEvent, describeFlows } from '../../core/daemon/events.js';
import { planOutcome } from '../../core/planner/plan-outcome.js';
import { EXIT, PLAN_EXIT } from '../exit-codes.js';
import type { CliIo, Machine } from '../io.js';
import type { Config } from '../../core/config/schema.js';
import type { Logger } from '../../log/logger.js';
import type { CommandOptions } from './types.js';
import { loadForHost, print } from './shared.js';

export async function applyCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config, warnings } = await loadForHost(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  for (const w of warnings) logger.warn(w);
  const machine = await io.machine();
  const release = await acquireLock(config.state.dir);
  try {
    await machine.ipForward(logger).ensure(config.ipForward);
    const report = await onePass(config, machine, logger, true);
    print(io.stdout, summary(report));
    if (report.discovery.status === 'failed') {
      print(io.stderr, `cachenat: ElastiCache API: ${report.discovery.error.message}; kept every forward as it was`);
      return EXIT.failure;
    }
    if (report.kernelError) {
      print(io.stderr, `cachenat: ${report.kernelError.message}`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    await release();
  }
}

/** Exit 0 nothing to do, 2 changes pending, 1 could not plan (see PLAN_EXIT). */
export async function planCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadForHost(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  const machine = await io.machine();
  const report = await onePass(config, machine, logger, false);
  const lines = report.plan.events.map((e) => `  ${describeEvent(e).message}`);
  const restore = report.plan.changes.restore;
  const outcome = planOutcome({ discoveryFailed: report.discovery.status === 'failed', events: lines.length, restore });
  if (report.discovery.status === 'failed') {
    print(io.stderr, `cachenat: could not plan: ElastiCache API: ${report.discovery.error.message}. A pass now would keep every forward as it is; run plan again once the API answers`);
  }
  if (lines.length === 0 && restore === null) {
    if (outcome === 'nothing-to-do') print(io.stdout, `nothing to do: ${report.plan.forwards.length} forwards are in place`);
    return PLAN_EXIT[outcome];
  }
  if (outcome === 'could-not-plan') print(io.stdout, "even without the API's answer, a pass would change:");
  if (lines.length > 0) print(io.stdout, `changes:\n${lines.join('\n')}`);
  if (report.plan.forget.length > 0) print(io.stdout, `open connections to cut once the rules are in:\n${report.plan.forget.map((f) => `  ${describeFlows(f)}`).join('\n')}`);
  print(io.stdout, restore !== null ? `kernel update (iptables-restore --noflush input):\n${restore}` : 'the kernel rules already match; only the port map changes');
  return PLAN_EXIT[outcome];
}

/**
 * One pass of the daemon's planner. In an HA pair (config `ha`) a one-off
 * command holds no lease, so it follows the shared map as a standby does: it
 * installs (or, for `plan`, shows) the pair's ports and never allocates.
 */
async function onePass(config: Config, machine: Machine, logger: Logger, write: boolean): Promise<PassReport> {
  const ha = machine.haNode(config, logger);
  const edges = machine.edgeFactory(logger)(config);
  try {
    return await new Reconciler(config, ha ? { ...edges, ha } : edges).pass({ discover: true, write });
  } finally {
    ha?.close();
  }
}

function summary(report: PassReport): string {
  const active = report.plan.forwards.filter((f) => f.state === 'active').length;
  const what = report.applied ? `rules updated (${report.plan.changes.chainsWritten.join(', ') || 'jumps'})` : 'rules already in place';
  return `${what}: ${report.plan.forwards.length} forwards, ${active} active, in ${Math.round(report.durationMs)} ms`;
}
