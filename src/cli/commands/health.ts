import type { CommandOptions } from './index.js';
import { runHealth } from '../../health/command.js';

export const healthCommand = (options: CommandOptions): Promise<number> =>
  runHealth({ ...(options.configFlag ? { configPath: options.configFlag } : {}), json: options.json === true, probe: options.probe === true });
