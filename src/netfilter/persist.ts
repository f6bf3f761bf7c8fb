// Keeps the distro's saved ruleset in step, so the rules are back at boot
// (restored by iptables.service or netfilter-persistent.service) before
// cachenat itself starts.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { Netfilter } from '../core/netfilter/types.js';

export type RulesFileChoice = { path: string; mode: number } | { path: null; warning?: string };

// Modes as the distros' own save scripts leave them.
const SYSCONFIG = { path: '/etc/sysconfig/iptables', mode: 0o600 }; // iptables-services
const PERSISTENT = { path: '/etc/iptables/rules.v4', mode: 0o640 }; // netfilter-persistent's 15-ip4tables

/** Where to persist the ruleset for the `persist.rulesFile` setting; `exists` is the only look at the system. */
export function chooseRulesFile(setting: 'auto' | 'none' | string, exists: (path: string) => boolean): RulesFileChoice {
  if (setting === 'none') return { path: null };
  if (setting !== 'auto') {
    if (!isAbsolute(setting)) throw new Error(`persist.rulesFile must be auto, none or an absolute path, got ${JSON.stringify(setting)}`);
    return { path: setting, mode: 0o600 };
  }
  if (exists(SYSCONFIG.path) || exists('/usr/libexec/iptables/iptables.init')) return { ...SYSCONFIG };
  if (exists('/etc/iptables') || exists('/usr/sbin/netfilter-persistent')) return { ...PERSISTENT };
  return {
    path: null,
    warning:
      'persist.rulesFile is auto but neither iptables-services (/etc/sysconfig/iptables) nor iptables-persistent (/etc/iptables) is installed: rules are not saved and come back only when cachenat starts after a reboot',
  };
}

// iptables-save stamps its output with the time; those lines say nothing about the rules.
const rulesOnly = (text: string): string =>
  text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n');

/** Writes the full ruleset to `path` atomically. Returns false when the file already held the same rules. */
export async function persistRules(netfilter: Netfilter, path: string, mode: number): Promise<boolean> {
  const text = await netfilter.saveAll();
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current !== undefined && rulesOnly(current) === rulesOnly(text)) return false;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, text, mode);
  return true;
}
