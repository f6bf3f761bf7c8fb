import { EXIT } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { configPathOf, loadFor, print } from './shared.js';

/** Exit 0 or 78 (ConfigError, mapped in cli.ts). Touches nothing. */
export async function validateCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { warnings } = await loadFor(options, io);
  for (const w of warnings) print(io.stderr, `warning: ${w}`);
  print(io.stdout, `${configPathOf(options, io)}: configuration is valid`);
  return EXIT.ok;
}
