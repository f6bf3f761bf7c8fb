// cachenat's command line: argv → command → exit code, with every error class
// mapped to its code in one place. commander parses, writes the help and the
// did-you-mean suggestions; the commands live in ./commands (registered in
// ./commands/index.ts). No process globals: the bin entry (main.ts) passes the
// real process as `io`, tests pass fakes.

import { Argument, Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../config/load.js';
import { LockHeldError } from '../daemon/lock.js';
import { versionLine } from '../version.js';
import type { CommandModule, CommandOptions } from './command.js';
import { COMMANDS, isCommandName, type CommandName } from './commands/index.js';
import { EXIT, UsageError } from './exit-codes.js';
import type { CliIo } from './io.js';

export { COMMANDS } from './commands/index.js';

/** What every command says after its own help. */
const CONFIG_HELP = `The config is read from --config (-c), else $CACHENAT_CONFIG, else /etc/cachenat/config.yaml.
A bad config exits 78 before anything is touched; a bad command line exits 64.`;

const OVERVIEW_AFTER = `
${CONFIG_HELP}
"cachenat help <command>" or "cachenat <command> --help" explains one command.`;

/** One parsed command line, ready to run. */
export interface CommandLine {
  command: CommandName;
  module: CommandModule;
  options: CommandOptions;
  /** The flags as written (`--config`, `-c`, `--format`), for the test that every flag is exercised. */
  written: string[];
}

/** A command line that was answered while parsing (help, version) or refused (usage error). */
export interface ParseExit {
  exit: number;
}

/** The command a command line asks for (or asks help for), before commander has parsed it. */
function requestedCommand(argv: readonly string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-c' || arg === '--config') i++; // its value is not a word
    else if (!arg.startsWith('-')) words.push(arg);
  }
  return words[0] === 'help' ? words[1] : words[0];
}

/**
 * The program: every registered command, the asked-for one with its flags,
 * words and help (its module is loaded), the others by name and summary only.
 */
function buildProgram(io: CliIo, asked: { name: CommandName; module: CommandModule } | undefined, onRun: (line: Omit<CommandLine, 'written'>) => void, errors: string[]): Command {
  const program = new Command('cachenat')
    .usage('<command> [options]')
    .description('Keeps iptables forwards on a NAT instance in step with ElastiCache, so clients outside the VPC reach the caches.')
    .version(versionLine(), '-V, --version', 'print the version and exit')
    .option('-c, --config <path>', 'the config file')
    .helpOption('-h, --help', 'explain the command line (after a command: that command)')
    .helpCommand('help [command]', 'explain a command')
    .configureHelp({ showGlobalOptions: true, helpWidth: io.columns ?? 100 })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Kept, and written by runCli with the hint that goes with it.
      outputError: (text) => void errors.push(text),
    })
    .addHelpText('after', OVERVIEW_AFTER)
    .showSuggestionAfterError(true)
    .exitOverride();

  for (const [name, entry] of Object.entries(COMMANDS)) {
    const command = program.command(name).summary(entry.summary).description(entry.summary).helpOption('-h, --help', 'explain this command').exitOverride();
    if (asked?.name !== name) {
      // Named for the overview and for did-you-mean; never run (the asked-for command is the only one defined in full).
      command.allowUnknownOption().allowExcessArguments();
      continue;
    }
    const module = asked.module;
    for (const flag of module.flags) {
      const option = new Option(flag.flags, flag.help);
      command.addOption(flag.choices ? option.choices(flag.choices) : option);
    }
    for (const word of module.words ?? []) command.addArgument(new Argument(`<${word.name}>`, word.help).choices(word.choices));
    command.addHelpText('after', `\n${module.details.trimEnd()}\n\n${CONFIG_HELP}`);
    command.action((...args: unknown[]) => {
      const words = args.slice(0, module.words?.length ?? 0) as string[];
      const flags = command.opts<Record<string, string | boolean | undefined>>();
      const configFlag = program.opts<{ config?: string }>().config;
      onRun({ command: asked.name, module, options: { configFlag, flags, words } });
    });
  }
  return program;
}

/**
 * Parses a command line: the command to run, or the exit code when parsing
 * answered it (help, version: 0) or refused it (64, with the message and a
 * hint on stderr). Loads only the module of the command asked for.
 */
export async function parseCommandLine(argv: readonly string[], io: CliIo): Promise<CommandLine | ParseExit> {
  if (argv.length === 0) {
    io.stderr.write(`cachenat: which command? One of: ${Object.keys(COMMANDS).join(', ')}.\n\n`);
    buildProgram(io, undefined, () => undefined, []).outputHelp({ error: true });
    return { exit: EXIT.usage };
  }
  const name = requestedCommand(argv);
  const asked = name !== undefined && isCommandName(name) ? { name, module: await COMMANDS[name].load() } : undefined;
  // `help <unknown>`: the same refusal (and suggestion) as the unknown command itself.
  const args = argv[0] === 'help' && name !== undefined && asked === undefined ? [name] : [...argv];
  let line: Omit<CommandLine, 'written'> | undefined;
  const errors: string[] = [];
  const program = buildProgram(io, asked, (parsed) => void (line = parsed), errors);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.exitCode === 0) return { exit: EXIT.ok }; // help or version, already written
    io.stderr.write(await usageMessage(err, errors, asked?.name));
    return { exit: EXIT.usage };
  }
  if (line === undefined) throw new Error('the command line named no command to run');
  return { ...line, written: argv.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]!) };
}

/** A usage error as one message: commander's words, prefixed with the program's name, and where to read more. */
async function usageMessage(err: CommanderError, written: string[], command: CommandName | undefined): Promise<string> {
  let text = (written.join('') || `${err.message}\n`).replace(/^error: /, 'cachenat: ');
  // A flag another command takes: say which (`status --probe` → health takes --probe).
  const flag = err.code === 'commander.unknownOption' ? /unknown option '(--[^'=]+)'/.exec(text)?.[1] : undefined;
  if (flag !== undefined && command !== undefined) {
    const takers: string[] = [];
    for (const [other, entry] of Object.entries(COMMANDS)) {
      if (other !== command && (await entry.load()).flags.some((f) => f.flags.split(/[ ,]+/).includes(flag))) takers.push(other);
    }
    if (takers.length > 0) text = text.replace(/\n?$/, ` (${command} takes no ${flag}; ${takers.join(' and ')} ${takers.length > 1 ? 'take' : 'takes'} it)\n`);
  }
  return `${text}${command ? `Run "cachenat ${command} --help" for its flags.` : 'Run "cachenat --help" for the commands.'}\n`;
}

/** Runs one command line; resolves to the exit code and never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const line = await parseCommandLine(argv, io);
    if ('exit' in line) return line.exit;
    return await line.module.run(line.options, io);
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
    io.stderr.write(`cachenat: ${err.message}\nRun "cachenat --help" for the commands.\n`);
    return EXIT.usage;
  }
  if (err instanceof LockHeldError) {
    io.stderr.write(`cachenat: ${err.message}\n`);
    return EXIT.failure;
  }
  // Unexpected: one line, and the way to the stack for whoever files the bug.
  const message = err instanceof Error ? err.message : String(err);
  if (io.env.CACHENAT_DEBUG === '1' && err instanceof Error && err.stack) {
    io.stderr.write(`cachenat: ${err.stack}\n`);
  } else {
    io.stderr.write(`cachenat: ${oneLine(message)} (unexpected error; run again with CACHENAT_DEBUG=1 for the stack trace)\n`);
  }
  return EXIT.failure;
}

const oneLine = (text: string): string => {
  const flat = text.replace(/\s*\n\s*/g, ' | ').trim();
  return flat.length > 500 ? `${flat.slice(0, 497)}...` : flat;
};
