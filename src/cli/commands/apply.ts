// `apply` (one pass, writing) and `plan` (the same pass, writing nothing).

import { acquireLock } from '../../daemon/lock.js';
import { Reconciler, type PassReport } from '../../daemon/reconciler.js';
import { describeEvent } from '../../core/daemon/events.js';
import { buildEdges, ipForwardControl } from '../edges.js';
import { EXIT } from '../exit-codes.js';
import type { CommandOptions } from './index.js';
import { loadFor, print, stderrLogger } from './shared.js';

export async function applyCommand(options: CommandOptions): Promise<number> {
  const { config, warnings } = await loadFor(options);
  const logger = stderrLogger(config.log.level);
  for (const w of warnings) logger.warn(w);
  const release = await acquireLock(config.state.dir);
  try {
    await ipForwardControl(logger).ensure(config.ipForward);
    const report = await new Reconciler(config, buildEdges(config, logger)).pass({ discover: true, write: true });
    print(summary(report));
    if (report.discovery.status === 'failed') {
      process.stderr.write(`cachenat: ElastiCache API: ${report.discovery.error.message}; kept every forward as it was\n`);
      return EXIT.failure;
    }
    if (report.kernelError) {
      process.stderr.write(`cachenat: ${report.kernelError.message}\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    await release();
  }
}

export async function planCommand(options: CommandOptions): Promise<number> {
  const { config } = await loadFor(options);
  const logger = stderrLogger(config.log.level);
  const report = await new Reconciler(config, buildEdges(config, logger)).pass({ discover: true, write: false });
  if (report.discovery.status === 'failed') {
    process.stderr.write(`cachenat: ElastiCache API: ${report.discovery.error.message}; the plan below keeps every forward as it is\n`);
  }
  const lines = report.plan.events.map((e) => `  ${describeEvent(e).message}`);
  const restore = report.plan.changes.restore;
  if (lines.length === 0 && restore === null) {
    print(`nothing to do: ${report.plan.forwards.length} forwards are in place`);
    return report.discovery.status === 'failed' ? EXIT.failure : EXIT.ok;
  }
  if (lines.length > 0) print(`changes:\n${lines.join('\n')}`);
  if (restore !== null) print(`kernel update (iptables-restore --noflush input):\n${restore}`);
  else print('the kernel rules already match');
  return restore !== null ? EXIT.pending : EXIT.ok;
}

function summary(report: PassReport): string {
  const active = report.plan.forwards.filter((f) => f.state === 'active').length;
  const what = report.applied ? `rules updated (${report.plan.changes.chainsWritten.join(', ') || 'jumps'})` : 'rules already in place';
  return `${what}: ${report.plan.forwards.length} forwards, ${active} active, in ${Math.round(report.durationMs)} ms`;
}
