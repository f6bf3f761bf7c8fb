// This network namespace's interfaces, for the host checks and `health`.

import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { HostInterface } from '../core/config/host.js';
import { interfaceNames } from '../core/host/proc-net.js';

/**
 * Every interface of this network namespace: the names from /proc/self/net/dev
 * (which lists one with no address too), their MAC and IPv4 addresses from
 * getifaddrs.
 */
export function hostInterfaces(): HostInterface[] {
  const addressed = networkInterfaces();
  let names: string[];
  try {
    names = interfaceNames(readFileSync('/proc/self/net/dev', 'utf8'));
  } catch {
    names = [];
  }
  return [...new Set([...names, ...Object.keys(addressed)])].map((name) => {
    const list = addressed[name] ?? [];
    const mac = list.find((a) => a.mac !== '00:00:00:00:00:00')?.mac;
    return { name, ...(mac ? { mac: mac.toLowerCase() } : {}), ipv4: list.filter((a) => a.family === 'IPv4').map((a) => a.address) };
  });
}
