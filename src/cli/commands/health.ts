// `cachenat health`: the Nagios-style check.

import { runHealth } from '../../health/command.js';
import { isSet, JSON_FLAG, type CommandModule, type CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { configPathOf } from './shared.js';

export const command: CommandModule = {
  flags: [JSON_FLAG, { flags: '--probe', help: 'also TCP-connect to every target (2 s each, 32 at a time)' }],
  details: `One line for Nagios/Icinga over SSH ("ssh nat cachenat health"), then one line per check: the
daemon alive and its loop moving, the last API sync, ip_forward, the rules (as root: the kernel's
own chains against the daemon's digest), each forward, disk writes, HA, standing warnings.
Works as any user: it reads the daemon's status file; as root it also reads the kernel.

--json prints {"state", "exitCode", "summary", "checks": [{"name", "state", "message"}], ...}.
Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A config it cannot read still gets
an answer (from the default status file), with a note.`,
  /** Exits with the Nagios state. The config is read by runHealth itself: an unusable one still gets an answer. */
  run: (options: CommandOptions, io: CliIo) =>
    runHealth(
      { configPath: configPathOf(options, io), json: isSet(options, 'json'), probe: isSet(options, 'probe') },
      { ...io.health, env: io.env, stdout: io.stdout, isAlive: io.isAlive, now: io.now },
    ),
};
