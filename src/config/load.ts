// Turning text into a validated Config. Pure except for loadConfigFile, which
// only reads the file.

import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { Config } from '../core/config/schema.js';
import { validateConfigObject, type ConfigIssue } from '../core/config/validate.js';

export type { ConfigIssue } from '../core/config/validate.js';

export const DEFAULT_CONFIG_PATH = '/etc/cachenat/config.yaml';

/** A configuration that cannot be used. Terminal: exit 78, touch nothing. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid configuration in ${source}:\n${issues.map((i) => `  - ${i.path || '(the file)'}: ${i.message}`).join('\n')}\nFix the keys above and run "cachenat validate".`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  config: Config;
  /** Legal but risky choices, e.g. allowing the whole internet. */
  warnings: string[];
  /** How the keys the file leaves to the host (aws.region, forward.inboundInterface: auto) were decided. */
  notes?: string[];
}

export function parseConfig(text: string, source: string): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        const line = at ? text.split('\n')[at.line - 1] : undefined;
        return { path: '', message: `YAML syntax error${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${what}${line !== undefined ? ` (${JSON.stringify(line.trimEnd())})` : ''}` };
      }),
    );
  }
  return validateConfig(doc.toJS() ?? {}, source);
}

export function validateConfig(raw: unknown, source: string): LoadedConfig {
  const result = validateConfigObject(raw);
  if ('issues' in result) throw new ConfigError(source, result.issues);
  return result;
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
