import { configPathFrom } from '../../config/load.js';
import { EXIT } from '../exit-codes.js';
import type { CommandOptions } from './index.js';
import { loadFor, print } from './shared.js';

/** Exit 0 or 78 (ConfigError, mapped in main). Touches nothing. */
export async function validateCommand(options: CommandOptions): Promise<number> {
  const { warnings } = await loadFor(options);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  print(`${configPathFrom(options.configFlag, process.env)}: configuration is valid`);
  return EXIT.ok;
}
