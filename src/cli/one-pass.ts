// One pass of the daemon's planner for `apply` (writing) and `plan` (not).

import type { Config } from '../core/config/schema.js';
import { Reconciler, type PassReport } from '../daemon/reconciler.js';
import type { Logger } from '../log/logger.js';
import type { Machine } from './io.js';

/**
 * In an HA pair (config `ha`) a one-off command holds no lease, so it follows
 * the shared map as a standby does: it installs (or, for `plan`, shows) the
 * pair's ports and never allocates.
 */
export async function onePass(config: Config, machine: Machine, logger: Logger, write: boolean): Promise<PassReport> {
  const ha = await machine.haNode(config, logger);
  const edges = machine.edgeFactory(logger)(config);
  try {
    return await new Reconciler(config, ha ? { ...edges, ha } : edges).pass({ discover: true, write });
  } finally {
    ha?.close();
  }
}
