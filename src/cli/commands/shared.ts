import { ConfigError, configPathFrom, loadConfigFile, type LoadedConfig } from '../../config/load.js';
import { configForHost, decideInterface, decideRegion, imdsQuestions, type HostFacts } from '../../core/config/host.js';
import type { Config } from '../../core/config/schema.js';
import type { CommandOptions } from '../command.js';
import type { CliIo, TextSink } from '../io.js';

/** --config, else $CACHENAT_CONFIG, else the default path. */
export const configPathOf = (options: CommandOptions, io: CliIo): string => configPathFrom(options.configFlag, io.env);

/** A bad config throws ConfigError (exit 78) before the command has touched anything. */
export const loadFor = (options: CommandOptions, io: CliIo): Promise<LoadedConfig> => loadConfigFile(configPathOf(options, io));

export const print = (out: TextSink, text: string): void => {
  out.write(text.endsWith('\n') ? text : `${text}\n`);
};

/** One JSON document, indented, on its own. */
export const printJson = (out: TextSink, value: unknown): void => print(out, JSON.stringify(value, null, 2));

/** What the host says, asking IMDS only for what the file leaves to it. */
export async function hostFacts(file: Config, io: Pick<CliIo, 'host' | 'env'>, ask = imdsQuestions(file)): Promise<HostFacts> {
  const imds = io.host.imds(file.ha?.imdsEndpoint);
  const [defaultRoute, listeners, imdsRegion, primaryMac] = await Promise.all([
    io.host.defaultRoute(),
    io.host.listeners(),
    ask.region ? imds.region() : undefined,
    ask.primaryMac ? imds.primaryMac() : undefined,
  ]);
  return {
    interfaces: io.host.interfaces(),
    defaultRoute,
    envRegion: io.env.AWS_REGION,
    ...(listeners ? { listeners } : {}),
    ...(imdsRegion ? { imdsRegion } : {}),
    ...(primaryMac ? { primaryMac } : {}),
  };
}

/** The config with what is left to the host decided, and notes on how; every problem as a ConfigError (exit 78). */
export interface HostConfig extends LoadedConfig {
  /** How aws.region and forward.inboundInterface were decided, when the file left them open. */
  notes: string[];
}

/**
 * For the commands that install rules (run, its reloads, apply, plan): a valid
 * config this host cannot serve (an interface it lacks, a listen address no
 * interface holds, a port range over a local service) is refused like a bad
 * config (exit 78, nothing touched).
 */
export async function checkHostFor(loaded: LoadedConfig, source: string, io: Pick<CliIo, 'host' | 'env'>): Promise<HostConfig> {
  const decided = configForHost(loaded.config, await hostFacts(loaded.config, io));
  if ('issues' in decided) throw new ConfigError(source, decided.issues);
  return { config: decided.config, warnings: loaded.warnings, notes: decided.notes };
}

/** loadFor, then checkHostFor. */
export const loadForHost = async (options: CommandOptions, io: CliIo): Promise<HostConfig> => checkHostFor(await loadFor(options, io), configPathOf(options, io), io);

/** aws.region decided (the file's, IMDS's, $AWS_REGION), for commands that call AWS but install nothing. */
export async function regionFor(file: Config, source: string, io: Pick<CliIo, 'host' | 'env'>): Promise<string> {
  const region = decideRegion(file, await hostFacts(file, io, { region: file.aws.region === 'auto', primaryMac: false }));
  if ('path' in region) throw new ConfigError(source, [region]);
  return region.value;
}

/** forward.inboundInterface decided, or undefined when auto finds none (for views that only fall back on it). */
export async function inboundInterfaceFor(file: Config, io: Pick<CliIo, 'host' | 'env'>): Promise<string | undefined> {
  const decided = decideInterface(file, await hostFacts(file, io, { region: false, primaryMac: file.forward.inboundInterface === 'auto' }));
  return 'path' in decided ? undefined : decided.value;
}
