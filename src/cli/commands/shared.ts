import { configPathFrom, loadConfigFile, type LoadedConfig } from '../../config/load.js';
import { createLogger, type Logger } from '../../log/logger.js';
import type { CommandOptions } from './index.js';

export const loadFor = (options: CommandOptions): Promise<LoadedConfig> => loadConfigFile(configPathFrom(options.configFlag, process.env));

/** One-shot commands log to stderr, so stdout stays clean for their output. */
export const stderrLogger = (level: string): Logger => createLogger({ level, destination: { write: (line: string) => void process.stderr.write(line) } });

export const print = (text: string): void => {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
};
