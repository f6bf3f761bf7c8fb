import { runCommand } from './run.js';
import { applyCommand, planCommand } from './apply.js';
import { statusCommand, endpointsCommand } from './status.js';
import { flushCommand } from './flush.js';
import { validateCommand } from './validate.js';
import { healthCommand } from './health.js';

export interface CommandOptions {
  configFlag?: string | undefined;
  json?: boolean | undefined;
  format?: string | undefined;
  probe?: boolean | undefined;
}

export type Command = (options: CommandOptions) => Promise<number>;

export const commands = {
  run: runCommand,
  apply: applyCommand,
  plan: planCommand,
  status: statusCommand,
  endpoints: endpointsCommand,
  health: healthCommand,
  flush: flushCommand,
  validate: validateCommand,
} satisfies Record<string, Command>;

export type CommandName = keyof typeof commands;
