import { acquireLock } from '../../daemon/lock.js';
import { flushOwnedRules } from '../../netfilter/owned-rules.js';
import { EXIT } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { loadFor, print } from './shared.js';

/** Removes every CACHENAT- chain and the jumps to them; nothing else. The port map stays for the next start. */
export async function flushCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const logger = io.logger(config.log.level, 'stderr');
  const buildEdges = (await io.machine()).edgeFactory(logger);
  const release = await acquireLock(config.state.dir);
  try {
    const edges = buildEdges(config);
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
