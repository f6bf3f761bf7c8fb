// Table cells and JSON fields `status` and `endpoints` share for one forward.

import type { Forward } from '../core/model.js';
import { cacheNameOf } from '../core/planner/plaintext-guard.js';

export const idOf = (f: Forward): string => (f.kind === 'node' ? `${f.cacheClusterId}/${f.cacheNodeId}` : `${cacheNameOf(f)} (${f.kind})`);

/** tls is always stated (false when the API did not say: recovered from rules); TLS targets name the SNI clients must send. */
export const withTls = <T extends Forward>(f: T) => ({ ...f, tls: f.tls === true, ...(f.tls === true ? { sni: f.address } : {}) });
export const tlsCell = (f: Forward): string => (f.tls === true ? `yes (SNI ${f.address})` : 'no');
/** Where clients' packets arrive: the port, or address:port in address mode. */
export const listenCell = (f: Forward): string => (f.listenAddress === undefined ? String(f.listenPort) : `${f.listenAddress}:${f.listenPort}${f.fallback ? ' (fallback)' : ''}`);
/** Every address of a name with several, else the one. */
export const destinationCell = (f: Forward): string => (f.targetIp ? (f.targetIps ?? [f.targetIp]).map((ip) => `${ip}:${f.targetPort}`).join(',') : '-');

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
