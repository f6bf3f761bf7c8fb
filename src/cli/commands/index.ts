// Every command, registered here and nowhere else: its name, the line the
// overview shows, and its module. A module is loaded only when its command
// runs (or its help is asked for): `health` and `status` are run over SSH by
// monitoring and must not pay for loading the daemon or the AWS SDK.
//
// To add a command: write commands/<name>.ts exporting `command: CommandModule`
// (its flags, its help text, its run), and add one line below.

import type { CommandEntry } from '../command.js';

export const COMMANDS = {
  run: { summary: 'the daemon, in the foreground (systemd runs this)', load: async () => (await import('./run.js')).command },
  apply: { summary: 'one reconcile pass, then exit', load: async () => (await import('./apply.js')).command },
  plan: { summary: 'show what a pass would change, changing nothing', load: async () => (await import('./plan.js')).command },
  status: { summary: 'what is forwarded now', load: async () => (await import('./status.js')).command },
  endpoints: { summary: 'how clients connect (address:port per cache, client maps, security group rules)', load: async () => (await import('./endpoints.js')).command },
  health: { summary: 'Nagios-style check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN', load: async () => (await import('./health.js')).command },
  flush: { summary: 'remove everything cachenat installed, nothing else', load: async () => (await import('./flush.js')).command },
  validate: { summary: 'check the configuration, touching nothing', load: async () => (await import('./validate.js')).command },
  ha: { summary: 'HA pair: create the DynamoDB table (init), hand the lease to the standby (handover)', load: async () => (await import('./ha.js')).command },
  audit: { summary: 'who reached which cache: connections, bytes, top clients per cache, revoked flows', load: async () => (await import('./audit.js')).command },
} as const satisfies Record<string, CommandEntry>;

export type CommandName = keyof typeof COMMANDS;

export const isCommandName = (name: string): name is CommandName => Object.hasOwn(COMMANDS, name);
