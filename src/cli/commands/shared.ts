import { ConfigError, configPathFrom, loadConfigFile, type LoadedConfig } from '../../config/load.js';
import { missingListenAddresses } from '../../core/config/listen-addresses.js';
import type { CliIo, TextSink } from '../io.js';
import type { CommandOptions } from '../command.js';

/** --config, else $CACHENAT_CONFIG, else the default path. */
export const configPathOf = (options: CommandOptions, io: CliIo): string => configPathFrom(options.configFlag, io.env);

/** A bad config throws ConfigError (exit 78) before the command has touched anything. */
export const loadFor = (options: CommandOptions, io: CliIo): Promise<LoadedConfig> => loadConfigFile(configPathOf(options, io));

export const print = (out: TextSink, text: string): void => {
  out.write(text.endsWith('\n') ? text : `${text}\n`);
};

/** One JSON document, indented, on its own. */
export const printJson = (out: TextSink, value: unknown): void => print(out, JSON.stringify(value, null, 2));

/**
 * For the commands that install rules (run, its reloads, apply, plan): a valid
 * config this host cannot serve, such as a listen address no interface holds,
 * is refused like a bad config (exit 78, nothing touched).
 */
export function checkHostFor(loaded: LoadedConfig, source: string, io: Pick<CliIo, 'interfaceAddresses'>): LoadedConfig {
  const issues = missingListenAddresses(loaded.config, io.interfaceAddresses());
  if (issues.length > 0) throw new ConfigError(source, issues);
  return loaded;
}

/** loadFor, then checkHostFor. */
export const loadForHost = async (options: CommandOptions, io: CliIo): Promise<LoadedConfig> =>
  checkHostFor(await loadFor(options, io), configPathOf(options, io), io);
