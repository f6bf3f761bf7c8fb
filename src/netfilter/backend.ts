// iptables comes in two backends (nf_tables and legacy) whose rules both run.
// cachenat saves and restores with one; rules in the other are invisible to
// it, so a NAT rule there can silently override or shadow its forwards.

import { runCommand, type CommandRunner } from './iptables.js';
import { parseSaveAll } from '../core/netfilter/parse-save.js';

export type Backend = 'nf_tables' | 'legacy';

export interface BackendReport {
  backend: Backend | 'unknown';
  /** Set when the other backend holds nat rules. */
  warning?: string;
}

export async function detectBackend(run: CommandRunner = runCommand): Promise<BackendReport> {
  const version = await run('iptables', ['-V']);
  const found = /\((nf_tables|legacy)\)/.exec(version.stdout);
  if (version.exitCode !== 0 || !found) return { backend: 'unknown' };
  const backend = found[1] as Backend;

  // Without -t, the legacy save lists only tables already loaded, so this
  // check never loads kernel modules as a side effect.
  const other = backend === 'nf_tables' ? 'iptables-legacy-save' : 'iptables-nft-save';
  const saved = await run(other, []);
  if (saved.exitCode !== 0) return { backend };
  let rules = 0;
  try {
    for (const chain of parseSaveAll(saved.stdout).get('nat')?.chains.values() ?? []) rules += chain.rules.length;
  } catch {
    return { backend };
  }
  if (rules === 0) return { backend };
  return {
    backend,
    warning: `iptables uses the ${backend} backend, but ${other} shows ${rules} nat rule(s) in the other backend; those run too and may shadow cachenat's forwards. Move them to one backend (see iptables-legacy-save / iptables-nft-save)`,
  };
}
