// cachenat's command line: argv → command → exit code, with every error class
// mapped to its code in one place. No process globals: the bin entry (main.ts)
// passes the real process as `io`, tests pass fakes.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/load.js';
import { LockHeldError } from '../daemon/lock.js';
import { commands, type CommandName } from './commands/index.js';
import type { CommandOptions } from './commands/types.js';
import { EXIT, UsageError } from './exit-codes.js';
import type { CliIo } from './io.js';

interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The only values a string flag accepts. */
  choices?: readonly string[];
  help: string;
}

/** Flags every command takes. */
export const GLOBAL_FLAGS = {
  config: { type: 'string', short: 'c', help: 'the config file' },
  help: { type: 'boolean', short: 'h', help: 'this text' },
} as const satisfies Record<string, FlagSpec>;

const FLAGS = {
  json: { type: 'boolean', help: 'JSON output' },
  format: { type: 'string', choices: ['table', 'json', 'natmap', 'security-group', 'hosts', 'dnsmasq'], help: 'output format' },
  probe: { type: 'boolean', help: 'also TCP-connect to every target' },
  since: { type: 'string', help: 'from this long ago (90m, 24h, 7d) or this ISO 8601 time' },
  until: { type: 'string', help: 'until this long ago or this ISO 8601 time (default now)' },
  file: { type: 'string', help: 'read this audit log file instead of audit.file or the journal' },
} as const satisfies Record<string, FlagSpec>;

type FlagName = keyof typeof FLAGS;

/** Every command and the flags it takes, besides the global ones. */
export const COMMANDS: Record<CommandName, { flags: readonly FlagName[]; help: string; actions?: readonly string[] }> = {
  run: { flags: [], help: 'the daemon, in the foreground (systemd runs this)' },
  apply: { flags: [], help: 'one reconcile pass, then exit; exit 1 on API or kernel failure' },
  plan: { flags: [], help: 'show what a pass would change; exit 0 nothing to do, 2 changes pending, 1 could not plan' },
  status: { flags: ['json'], help: 'what is forwarded now' },
  endpoints: { flags: ['format', 'json'], help: 'how clients connect; exit 1 when no address for them is found' },
  health: { flags: ['json', 'probe'], help: 'Nagios-style check for ssh; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN' },
  flush: { flags: [], help: 'remove everything cachenat installed, nothing else' },
  validate: { flags: [], help: 'check the configuration; exit 0, or 78 when invalid' },
  ha: { flags: [], actions: ['init', 'handover'], help: 'HA pair: `ha init` creates the DynamoDB table; `ha handover` gives the lease to the standby' },
  audit: { flags: ['since', 'until', 'file', 'json'], help: 'who reached which cache: connections, bytes, top clients per cache, revoked flows (default: the last 24h)' },
};

export const FLAG_SPECS: Record<string, FlagSpec> = { ...GLOBAL_FLAGS, ...FLAGS };

const PARSE_OPTIONS: NonNullable<ParseArgsConfig['options']> = Object.fromEntries(
  Object.entries(FLAG_SPECS).map(([name, spec]) => [name, { type: spec.type, ...(spec.short ? { short: spec.short } : {}) }]),
);

const usageOf = (flag: string): string => {
  const spec = FLAG_SPECS[flag]!;
  return spec.type === 'boolean' ? `--${flag}` : `--${flag} ${spec.choices?.join('|') ?? flag.toUpperCase()}`;
};

export const USAGE = `usage: cachenat <command> [--config PATH] [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, { flags, help, actions }]) => `  ${(actions ? `${name} ${actions.join('|')}` : name).padEnd(10)}  ${help}${flags.length ? `\n${' '.repeat(14)}[${flags.map(usageOf).join('] [')}]` : ''}`)
  .join('\n')}

The config is read from --config (-c), else $CACHENAT_CONFIG, else /etc/cachenat/config.yaml.
A bad config exits 78 before anything is touched; a bad command line exits 64.`;

export interface CommandLine {
  /** undefined: print the usage (with `help` true, as asked for). */
  command: CommandName | undefined;
  help: boolean;
  options: CommandOptions;
  /** The flags as written (`--config`, `-c`), for the test that every flag is exercised. */
  written: string[];
}

/** Throws UsageError for an unknown command, a flag the command does not take, or a value not among its choices. */
export function parseCommandLine(argv: string[]): CommandLine {
  const parse = () => parseArgs({ args: argv, allowPositionals: true, strict: true, tokens: true, options: PARSE_OPTIONS });
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals, tokens } = parsed;
  const written = tokens.flatMap((token) => (token.kind === 'option' ? [token.rawName] : []));
  const help = values.help === true || positionals[0] === 'help';
  const name = positionals[0] === 'help' ? undefined : positionals[0];
  if (name !== undefined && !Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
  const command = name as CommandName | undefined;
  const actions = command === undefined ? undefined : COMMANDS[command].actions;
  const action = actions ? positionals[1] : undefined;
  if (action !== undefined && !actions!.includes(action)) throw new UsageError(`${command} takes ${actions!.join(' or ')}, not "${action}"`);
  if (positionals.length > (actions ? 2 : 1)) throw new UsageError(`unexpected argument "${positionals[actions ? 2 : 1]}"`);
  for (const flag of Object.keys(values)) {
    if (flag in GLOBAL_FLAGS || command === undefined) continue;
    if (!(COMMANDS[command].flags as readonly string[]).includes(flag)) throw new UsageError(`${command} takes no --${flag}`);
    const choices = FLAG_SPECS[flag]?.choices;
    const value = values[flag];
    if (choices && typeof value === 'string' && !choices.includes(value)) throw new UsageError(`--${flag} must be ${choices.join(', ')}; got "${value}"`);
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const bool = (v: unknown) => (v === true ? true : undefined);
  return {
    command,
    help,
    written,
    options: { configFlag: str(values.config), json: bool(values.json), format: str(values.format), probe: bool(values.probe), action, since: str(values.since), until: str(values.until), file: str(values.file) },
  };
}

/** Runs one command line; resolves to the exit code and never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const line = parseCommandLine(argv);
    if (line.command === undefined || line.help) {
      io.stdout.write(`${USAGE}\n`);
      return line.help ? EXIT.ok : EXIT.usage;
    }
    return await commands[line.command](line.options, io);
  } catch (err) {
    return exitCodeFor(err, io);
  }
}

/** The one place an error becomes an exit code and a message on stderr. */
function exitCodeFor(err: unknown, io: CliIo): number {
  if (err instanceof ConfigError) {
    io.stderr.write(`cachenat: ${err.message}\n`);
    return EXIT.config;
  }
  if (err instanceof UsageError) {
    io.stderr.write(`cachenat: ${err.message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (err instanceof LockHeldError) {
    io.stderr.write(`cachenat: ${err.message}\n`);
    return EXIT.failure;
  }
  io.stderr.write(`cachenat: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.failure;
}
