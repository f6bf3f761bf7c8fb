import { acquireLock } from '../../daemon/lock.js';
import { flushOwnedRules } from '../../netfilter/owned-rules.js';
import { buildEdges } from '../edges.js';
import { EXIT } from '../exit-codes.js';
import type { CommandOptions } from './index.js';
import { loadFor, print, stderrLogger } from './shared.js';

/** Removes every CACHENAT- chain and the jumps to them; nothing else. The port map stays for the next start. */
export async function flushCommand(options: CommandOptions): Promise<number> {
  const { config } = await loadFor(options);
  const logger = stderrLogger(config.log.level);
  const release = await acquireLock(config.state.dir);
  try {
    const edges = buildEdges(config, logger);
    if ((await flushOwnedRules(edges.netfilter)) === null) {
      print('nothing installed by cachenat');
      return EXIT.ok;
    }
    await edges.persistRules?.();
    print('removed every cachenat chain and jump; other rules untouched');
    return EXIT.ok;
  } finally {
    await release();
  }
}
