import { runHealth } from '../../health/command.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { configPathOf } from './shared.js';

/** Exits with the Nagios state. The config is read by runHealth itself: an unusable one still gets an answer. */
export const healthCommand = (options: CommandOptions, io: CliIo): Promise<number> =>
  runHealth(
    { configPath: configPathOf(options, io), json: options.json === true, probe: options.probe === true },
    { ...io.health, env: io.env, stdout: io.stdout, isAlive: io.isAlive, now: io.now },
  );
