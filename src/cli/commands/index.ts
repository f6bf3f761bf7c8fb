// Each command is loaded only when asked for: `health` and `status` are run
// over SSH by monitoring and must not pay for loading the AWS SDK.

import type { Command } from './types.js';

export const commands = {
  run: async (o, io) => (await import('./run.js')).runCommand(o, io),
  apply: async (o, io) => (await import('./apply.js')).applyCommand(o, io),
  plan: async (o, io) => (await import('./apply.js')).planCommand(o, io),
  status: async (o, io) => (await import('./status.js')).statusCommand(o, io),
  endpoints: async (o, io) => (await import('./status.js')).endpointsCommand(o, io),
  health: async (o, io) => (await import('./health.js')).healthCommand(o, io),
  flush: async (o, io) => (await import('./flush.js')).flushCommand(o, io),
  validate: async (o, io) => (await import('./validate.js')).validateCommand(o, io),
  ha: async (o, io) => (await import('./ha.js')).haCommand(o, io),
  audit: async (o, io) => (await import('./audit.js')).auditCommand(o, io),
} satisfies Record<string, Command>;

export type CommandName = keyof typeof commands;
