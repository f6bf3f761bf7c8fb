// What a command is: one module under ./commands that says which flags and
// words it takes, explains itself for `cachenat <command> --help`, and runs.
// ./commands/index.ts registers each module with its one-line summary; cli.ts
// turns the lot into the command line (commander) and maps errors to exit codes.

import type { CliIo } from './io.js';

/** A flag a command takes, besides --config and --help, which every command takes. */
export interface FlagSpec {
  /** commander's syntax: '--json', '--format <format>'. */
  flags: string;
  help: string;
  /** The only values a flag with a value accepts; anything else is refused before the config is read. */
  choices?: readonly string[];
}

/** A word after the command (`ha init`). */
export interface WordSpec {
  name: string;
  help: string;
  choices: readonly string[];
}

/** What a command gets from its command line. */
export interface CommandOptions {
  /** --config / -c, if given (else $CACHENAT_CONFIG, else the default path). */
  configFlag?: string | undefined;
  /** Its flags by long name (`--format` → format): a string for a flag with a value, true for a switch. */
  flags: Readonly<Record<string, string | boolean | undefined>>;
  /** Its words, in the order of `words`. */
  words: readonly string[];
}

export interface CommandModule {
  flags: readonly FlagSpec[];
  words?: readonly WordSpec[];
  /** The text after the flags in `cachenat <command> --help`: what it does, what it prints, its exit codes. */
  details: string;
  /** Resolves to the exit code. Throws ConfigError (78), UsageError (64) or anything else (1). */
  run(options: CommandOptions, io: CliIo): Promise<number>;
}

/** How ./commands/index.ts registers a command: its summary (the overview) and its module, loaded only when used. */
export interface CommandEntry {
  summary: string;
  load(): Promise<CommandModule>;
}

/** `--json` for every command that prints data. */
export const JSON_FLAG: FlagSpec = { flags: '--json', help: 'print JSON (one document on stdout) instead of text' };

/** A switch's value: true when given. */
export const isSet = (options: CommandOptions, flag: string): boolean => options.flags[flag] === true;

/** A flag's value: the text when given. */
export const valueOf = (options: CommandOptions, flag: string): string | undefined => {
  const value = options.flags[flag];
  return typeof value === 'string' ? value : undefined;
};
