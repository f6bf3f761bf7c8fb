import type { CliIo } from '../io.js';

/** The parsed flags a command may read; which command takes which is defined in ../cli.ts. */
export interface CommandOptions {
  configFlag?: string | undefined;
  json?: boolean | undefined;
  format?: string | undefined;
  probe?: boolean | undefined;
  /** The second word of commands that take one (`ha init`). */
  action?: string | undefined;
  /** `audit`: the window and the log to read. */
  since?: string | undefined;
  until?: string | undefined;
  file?: string | undefined;
}

export type Command = (options: CommandOptions, io: CliIo) => Promise<number>;
