#!/usr/bin/env node
// cachenat's command line: argv → command. The only place that exits the process.

import { parseArgs } from 'node:util';
import { ConfigError } from '../config/load.js';
import { LockHeldError } from '../daemon/lock.js';
import { commands, type CommandName } from './commands/index.js';
import { EXIT, UsageError } from './exit-codes.js';

const USAGE = `usage: cachenat <command> [--config PATH] [options]

commands:
  run         the daemon, in the foreground (systemd runs this)
  apply       one reconcile pass, then exit
  plan        show what a pass would change; exit 0 nothing to do, 2 changes pending
  status      what is forwarded now             [--json]
  endpoints   how clients connect               [--format table|json|natmap|security-group]
  health      Nagios-style check for ssh         [--json] [--probe]
  flush       remove everything cachenat installed, nothing else
  validate    check the configuration; exit 0, or 78 when invalid

The config is read from --config, else $CACHENAT_CONFIG, else /etc/cachenat/config.yaml.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      format: { type: 'string' },
      probe: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const name = positionals[0];
  if (values.help || name === undefined || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  if (!(name in commands)) throw new UsageError(`unknown command "${name}"`);
  return commands[name as CommandName]({ ...values, configFlag: values.config });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`cachenat: ${err.message}\n`);
      process.exitCode = EXIT.config;
    } else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`cachenat: ${(err as Error).message}\n${USAGE}\n`);
      process.exitCode = EXIT.usage;
    } else if (err instanceof LockHeldError) {
      process.stderr.write(`cachenat: ${err.message}\n`);
      process.exitCode = EXIT.failure;
    } else {
      process.stderr.write(`cachenat: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT.failure;
    }
  },
);
