// Turning text into a validated Config. Pure except for loadConfigFile, which
// only reads the file.

import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from '../core/config/schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/cachenat/config.yaml';

export interface ConfigIssue {
  path: string;
  message: string;
}

/** A configuration that cannot be used. Terminal: exit 78, touch nothing. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid configuration in ${source}:\n${issues.map((i) => `  - ${i.path || '(top level)'}: ${i.message}`).join('\n')}\nFix the keys above and run "cachenat validate".`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  config: Config;
  /** Legal but risky choices, e.g. allowing the whole internet. */
  warnings: string[];
}

const pathOf = (path: readonly PropertyKey[]): string =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');

export function parseConfig(text: string, source: string): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  const raw: unknown = doc.toJS() ?? {};
  return validateConfig(raw, source);
}

export function validateConfig(raw: unknown, source: string): LoadedConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(source, result.error.issues.map(issueOf));
  }
  const config = result.data;
  const issues: ConfigIssue[] = [];
  if (config.ports.redis === config.ports.memcached) {
    issues.push({ path: 'ports', message: `ports.redis and ports.memcached are both ${config.ports.redis}; give each engine its own first port` });
  }
  if (config.health.syncCriticalIntervals < config.health.syncWarnIntervals) {
    issues.push({ path: 'health.syncCriticalIntervals', message: 'must not be below health.syncWarnIntervals' });
  }
  issues.push(...haIssues(config));
  if (issues.length > 0) throw new ConfigError(source, issues);

  const warnings: string[] = [];
  if (config.forward.allowedSources.includes('0.0.0.0/0')) {
    warnings.push('forward.allowedSources contains 0.0.0.0/0: every address on the internet can reach the caches through this host');
  }
  return { config, warnings };
}

/**
 * The ha section against the forward mode: port mode moves one Elastic IP
 * (ha.elasticIp), address mode one per listen address (its allocationId);
 * without ha no allocation id means anything, so none may be written.
 */
function haIssues(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const list = config.forward.listenAddresses;
  if (config.ha === undefined) {
    list?.forEach((entry, i) => {
      if (entry.allocationId !== undefined) issues.push({ path: `forward.listenAddresses[${i}].allocationId`, message: 'is used only with an ha section (the leader moves the Elastic IP); remove it, or add ha' });
    });
    return issues;
  }
  if (list === undefined) {
    if (config.ha.elasticIp === undefined) issues.push({ path: 'ha.elasticIp', message: "required in port mode: the allocation id of the Elastic IP clients dial, which the leader moves to itself (e.g. eipalloc-0123abcd)" });
    return issues;
  }
  if (config.ha.elasticIp !== undefined) issues.push({ path: 'ha.elasticIp', message: 'is for port mode; in address mode each forward.listenAddresses entry names its own allocationId' });
  list.forEach((entry, i) => {
    if (entry.allocationId === undefined) issues.push({ path: `forward.listenAddresses[${i}].allocationId`, message: `required with ha: the allocation id of ${entry.public}, which the leader associates with its own ${entry.address}` });
  });
  return issues;
}

function issueOf(issue: z.core.$ZodIssue): ConfigIssue {
  const path = pathOf(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return { path, message: `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return { path, message: issue.message.startsWith('required') ? issue.message : `required (${issue.message})` };
  }
  return { path, message: issue.message };
}

/** Where the config comes from: --config, then CACHENAT_CONFIG, then the default. */
export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.CACHENAT_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export async function loadConfigFile(path: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [{ path: '', message: code === 'ENOENT' ? 'file not found; copy config.example.yaml there, or pass --config PATH' : `cannot read the file (${code ?? String(err)})` }]);
  }
  return parseConfig(text, path);
}
