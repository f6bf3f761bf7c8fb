// IPv4 forwarding: off by default on most images, and nothing is forwarded
// without it. Enabling also persists it, so it survives a reboot.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

export const IP_FORWARD_PROC = '/proc/sys/net/ipv4/ip_forward';
export const SYSCTL_FILE_NAME = '90-cachenat.conf';
const SYSCTL_CONTENT = '# Written by cachenat: its DNAT forwards need IPv4 forwarding.\nnet.ipv4.ip_forward = 1\n';

const defaultSysctlDir = (): string => process.env.CACHENAT_SYSCTL_DIR ?? '/etc/sysctl.d';

/** True when the kernel forwards IPv4 now. */
export async function readIpForward(procPath = IP_FORWARD_PROC): Promise<boolean> {
  return (await readFile(procPath, 'utf8')).trim() === '1';
}

export interface IpForwardResult {
  /** Forwarding was off and has been switched on. */
  enabledNow: boolean;
  /** The sysctl.d file was created or corrected. */
  persisted: boolean;
  sysctlFile: string;
}

export async function enableIpForward(options: { procPath?: string; sysctlDir?: string } = {}): Promise<IpForwardResult> {
  const procPath = options.procPath ?? IP_FORWARD_PROC;
  const sysctlFile = join(options.sysctlDir ?? defaultSysctlDir(), SYSCTL_FILE_NAME);

  const enabledNow = !(await readIpForward(procPath));
  // A /proc/sys file takes a plain write; it cannot be replaced by rename.
  if (enabledNow) await writeFile(procPath, '1\n');

  const current = await readFile(sysctlFile, 'utf8').catch(() => undefined);
  const persisted = current !== SYSCTL_CONTENT;
  if (persisted) {
    await mkdir(dirname(sysctlFile), { recursive: true, mode: 0o755 });
    await writeFileAtomic(sysctlFile, SYSCTL_CONTENT, 0o644);
  }
  return { enabledNow, persisted, sysctlFile };
}
