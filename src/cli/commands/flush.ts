// `cachenat flush`: removes what cachenat installed, nothing else.

import { acquireLock, lockPathFor } from '../../daemon/lock.js';
import { flushOwnedRules } from '../../netfilter/owned-rules.js';
import { EXIT } from '../exit-codes.js';
import type { CommandModule, CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { loadFor, print } from './shared.js';

export const command: CommandModule = {
  flags: [],
  details: `Removes every CACHENAT-* chain and the jumps to them in one iptables-restore --noflush; no other rule
is touched. The port map stays, so the next start gives every target its old port back. Refused
while the daemon runs (stop it first, or it puts the rules back on its next pass).

Exit codes: 0 removed (or nothing was installed), 1 the kernel refused, 78 bad config.`,
  run: flushCommand,
};

/** Removes every CACHENAT- chain and the jumps to them; nothing else. The port map stays for the next start. */
async function flushCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  const machine = await io.machine();
  const release = await acquireLock(lockPathFor(config.state.statusFile));
  try {
    const edges = machine.ruleEdges(config, logger);
    if ((await flushOwnedRules(edges.netfilter)) === null) {
      print(io.stdout, 'nothing installed by cachenat');
      return EXIT.ok;
    }
    await edges.persistRules?.();
    print(io.stdout, 'removed every cachenat chain and jump; other rules untouched');
    return EXIT.ok;
  } finally {
    await release();
  }
}
