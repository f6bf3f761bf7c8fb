// The kernel settings the audit needs, set and persisted while audit is on:
// byte and packet counters (nf_conntrack_acct) and start/stop timestamps
// (nf_conntrack_timestamp) in every conntrack entry. Each takes effect for
// flows that begin after it is set; both are per network namespace. The
// sysctl.d file only helps at boot if nf_conntrack is loaded by then, so the
// daemon sets them again at every start.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

export const AUDIT_SYSCTLS = ['net.netfilter.nf_conntrack_acct', 'net.netfilter.nf_conntrack_timestamp'] as const;
export const AUDIT_SYSCTL_FILE_NAME = '91-cachenat-audit.conf';
const FILE_CONTENT = `# Written by cachenat (audit: enabled): byte counts and timestamps for each connection.\n${AUDIT_SYSCTLS.map((key) => `${key} = 1`).join('\n')}\n`;

export interface SysctlResult {
  /** Keys that were 0 and have been set to 1 now. */
  setNow: string[];
  /** The sysctl.d file was written (it was missing or different). */
  persistedIn: string | undefined;
}

const procPathOf = (key: string, procRoot: string): string => join(procRoot, ...key.split('.'));

export async function ensureAuditSysctls(options: { procRoot?: string; sysctlDir?: string } = {}): Promise<SysctlResult> {
  const procRoot = options.procRoot ?? '/proc/sys';
  const setNow: string[] = [];
  for (const key of AUDIT_SYSCTLS) {
    const path = procPathOf(key, procRoot);
    const value = (await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT' ? `${path} does not exist: the nf_conntrack module is not loaded yet` : `cannot read ${path}: ${err.message}`);
    })).trim();
    if (value !== '1') {
      await writeFile(path, '1\n');
      setNow.push(key);
    }
  }
  const file = join(options.sysctlDir ?? process.env.CACHENAT_SYSCTL_DIR ?? '/etc/sysctl.d', AUDIT_SYSCTL_FILE_NAME);
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === FILE_CONTENT) return { setNow, persistedIn: undefined };
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, FILE_CONTENT, 0o644);
  return { setNow, persistedIn: file };
}
