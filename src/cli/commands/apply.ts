// `cachenat apply`: one pass, written to the kernel and the port map.

import { acquireLock, lockPathFor } from '../../daemon/lock.js';
import type { PassReport } from '../../daemon/reconciler.js';
import { EXIT } from '../exit-codes.js';
import { isSet, JSON_FLAG, type CommandModule, type CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { onePass } from '../one-pass.js';
import { loadForHost, print, printJson } from './shared.js';

export const command: CommandModule = {
  flags: [JSON_FLAG],
  details: `Runs one reconcile pass and exits: asks the ElastiCache API, resolves the endpoints, writes the
port map and then cachenat's own chains in one iptables-restore --noflush. With an ha section it
installs the pair's shared map and never allocates a port. Refused while the daemon runs (it holds the lock).

Prints one line: what was written, how many forwards, how long it took (--json: the same as an object).
Exit codes: 0 done, 1 the API or the kernel failed (nothing half-written: the next pass retries),
78 bad config.`,
  run: applyCommand,
};

async function applyCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config, warnings } = await loadForHost(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  for (const w of warnings) logger.warn(w);
  const machine = await io.machine();
  const release = await acquireLock(lockPathFor(config.state.statusFile));
  try {
    await machine.ipForward(logger).ensure(config.ipForward);
    const report = await onePass(config, machine, logger, true);
    const failure =
      report.discovery.status === 'failed'
        ? `ElastiCache API: ${report.discovery.error.message}; kept every forward as it was`
        : report.kernelError
          ? report.kernelError.message
          : undefined;
    if (isSet(options, 'json')) printJson(io.stdout, { ...summaryOf(report), ...(failure ? { error: failure } : {}) });
    else print(io.stdout, summaryLine(report));
    if (failure !== undefined) {
      print(io.stderr, `cachenat: ${failure}`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    await release();
  }
}

function summaryOf(report: PassReport) {
  return {
    applied: report.applied,
    chainsWritten: report.plan.changes.chainsWritten,
    forwards: report.plan.forwards.length,
    active: report.plan.forwards.filter((f) => f.state === 'active').length,
    durationMs: Math.round(report.durationMs),
  };
}

function summaryLine(report: PassReport): string {
  const s = summaryOf(report);
  const what = s.applied ? `rules updated (${s.chainsWritten.join(', ') || 'jumps'})` : 'rules already in place';
  return `${what}: ${s.forwards} forwards, ${s.active} active, in ${s.durationMs} ms`;
}
