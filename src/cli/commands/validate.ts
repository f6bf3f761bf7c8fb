// `cachenat validate`: the config checked, nothing touched.

import { ConfigError } from '../../config/load.js';
import { EXIT } from '../exit-codes.js';
import { isSet, JSON_FLAG, type CommandModule, type CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { configPathOf, loadFor, print, printJson } from './shared.js';

export const command: CommandModule = {
  flags: [JSON_FLAG],
  details: `Reads the config and checks every key: types, ranges, and combinations that validate but cannot
work (overlapping port ranges, a state file on top of the port map, ...). Every problem is listed
at once with its key. Touches nothing, needs no root and no AWS access; what only the host can tell
(does forward.inboundInterface exist, is a port in use) is checked by run, apply and plan.

--json prints {"path", "valid", "issues": [{"path", "message"}], "warnings"}.
Exit codes: 0 valid (warnings on stderr), 78 invalid.`,
  run: validateCommand,
};

async function validateCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const path = configPathOf(options, io);
  if (!isSet(options, 'json')) {
    const { warnings } = await loadFor(options, io);
    for (const w of warnings) print(io.stderr, `warning: ${w}`);
    print(io.stdout, `${path}: configuration is valid`);
    return EXIT.ok;
  }
  try {
    const { warnings } = await loadFor(options, io);
    printJson(io.stdout, { path, valid: true, issues: [], warnings });
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printJson(io.stdout, { path, valid: false, issues: err.issues, warnings: [] });
    return EXIT.config;
  }
}
