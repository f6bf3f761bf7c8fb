// How loaded the machine is, for the lab's time bounds. Kept apart so the lab
// (lab.ts) and the rig around it (rig.ts) share one definition.

import { cpus, loadavg } from 'node:os';

/** Load average per core, never below 1: how much slower than an idle machine timers and spawns run now. */
export const loadFactor = (): number => Math.max(1, (loadavg()[0] ?? 0) / cpus().length);

/**
 * A time bound that must stretch under load: `ms` on an idle machine, times
 * the load average per core. Say so in the message of whatever uses it.
 */
export const stretch = (ms: number): number => Math.round(ms * loadFactor());
