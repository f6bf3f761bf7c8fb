import { configPathFrom, loadConfigFile, type LoadedConfig } from '../../config/load.js';
import type { CliIo, TextSink } from '../io.js';
import type { CommandOptions } from './types.js';

/** --config, else $CACHENAT_CONFIG, else the default path. */
export const configPathOf = (options: CommandOptions, io: CliIo): string => configPathFrom(options.configFlag, io.env);

/** A bad config throws ConfigError (exit 78) before the command has touched anything. */
export const loadFor = (options: CommandOptions, io: CliIo): Promise<LoadedConfig> => loadConfigFile(configPathOf(options, io));

export const print = (out: TextSink, text: string): void => {
  out.write(text.endsWith('\n') ? text : `${text}\n`);
};
