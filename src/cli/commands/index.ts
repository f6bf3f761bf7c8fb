// Each command is loaded only when asked for: `health` and `status` are run
// over SSH by monitoring and must not pay for loading the AWS SDK.

export interface CommandOptions {
  configFlag?: string | undefined;
  json?: boolean | undefined;
  format?: string | undefined;
  probe?: boolean | undefined;
}

export type Command = (options: CommandOptions) => Promise<number>;

export const commands = {
  run: async (o) => (await import('./run.js')).runCommand(o),
  apply: async (o) => (await import('./apply.js')).applyCommand(o),
  plan: async (o) => (await import('./apply.js')).planCommand(o),
  status: async (o) => (await import('./status.js')).statusCommand(o),
  endpoints: async (o) => (await import('./status.js')).endpointsCommand(o),
  health: async (o) => (await import('./health.js')).healthCommand(o),
  flush: async (o) => (await import('./flush.js')).flushCommand(o),
  validate: async (o) => (await import('./validate.js')).validateCommand(o),
} satisfies Record<string, Command>;

export type CommandName = keyof typeof commands;
