// `status` and `endpoints`: read-only views of the forwards.

import type { Forward } from '../../core/model.js';
import { renderSecurityGroupRulesAwsCli, renderSecurityGroupRulesTable, securityGroupRules } from '../../core/endpoints/security-group.js';
import { externalHost, readForwards } from '../forwards-view.js';
import { cacheNameOf } from '../../core/planner/plaintext-guard.js';
import { EXIT, UsageError } from '../exit-codes.js';
import type { CommandOptions } from './index.js';
import { loadFor, print } from './shared.js';

const idOf = (f: Forward): string => (f.kind === 'node' ? `${f.cacheClusterId}/${f.cacheNodeId}` : `${cacheNameOf(f)} (${f.kind})`);

/** tls is always stated (false when the API did not say: recovered from rules); TLS targets name the SNI clients must send. */
const withTls = <T extends Forward>(f: T) => ({ ...f, tls: f.tls === true, ...(f.tls === true ? { sni: f.address } : {}) });
const tlsCell = (f: Forward): string => (f.tls === true ? `yes (SNI ${f.address})` : 'no');

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export async function statusCommand(options: CommandOptions): Promise<number> {
  const { config } = await loadFor(options);
  const view = await readForwards(config);
  if (options.json) {
    print(JSON.stringify({ source: view.source, forwards: view.forwards.map(withTls) }, null, 2));
    return EXIT.ok;
  }
  if (view.forwards.length === 0) {
    print(view.source === 'none' ? 'no forwards: cachenat has not run a pass yet on this host' : 'no forwards');
    return EXIT.ok;
  }
  const rows = view.forwards.map((f) => [String(f.listenPort), f.engine, f.kind, idOf(f), f.targetIp ? (f.targetIps ?? [f.targetIp]).map((ip) => `${ip}:${f.targetPort}`).join(',') : '-', f.state, f.tls === true ? 'yes' : 'no', f.address]);
  print(renderTable(['PORT', 'ENGINE', 'KIND', 'TARGET', 'DESTINATION', 'STATE', 'TLS', 'ADDRESS'], rows));
  if (view.source !== 'daemon') print(`(from ${view.source === 'state' ? `the port map in ${config.state.dir}` : 'the last snapshot'}: the daemon is not running)`);
  return EXIT.ok;
}

export async function endpointsCommand(options: CommandOptions): Promise<number> {
  const { config } = await loadFor(options);
  const format = options.format ?? (options.json ? 'json' : 'table');
  const { forwards } = await readForwards(config);
  if (format === 'security-group') {
    const rules = securityGroupRules({ forwards, allowedSources: config.forward.allowedSources });
    print(`${renderSecurityGroupRulesTable(rules)}\n${renderSecurityGroupRulesAwsCli(rules)}`);
    return EXIT.ok;
  }
  const host = await externalHost(config);
  const endpoints = forwards.map((f) => withTls({ ...f, host, port: f.listenPort, endpoint: `${host}:${f.listenPort}` }));
  switch (format) {
    case 'json':
      print(JSON.stringify({ host, endpoints }, null, 2));
      return EXIT.ok;
    case 'natmap': {
      // Keys as cluster-mode clients see nodes: ip:port, and name:port with TLS;
      // the configuration endpoint's name:port is what clients are seeded with.
      const map: Record<string, { host: string; port: number }> = {};
      for (const f of forwards) {
        if (f.kind !== 'node') continue;
        if (f.targetIp) map[`${f.targetIp}:${f.targetPort}`] = { host, port: f.listenPort };
        map[`${f.address}:${f.targetPort}`] = { host, port: f.listenPort };
      }
      // Only by name: the configuration endpoint resolves to some node's address, whose ip:port key is that node's.
      for (const f of forwards) {
        if (f.kind === 'configuration') map[`${f.address}:${f.targetPort}`] ??= { host, port: f.listenPort };
      }
      print(JSON.stringify(map, null, 2));
      return EXIT.ok;
    }
    case 'table':
      print(renderTable(['ENDPOINT', 'ENGINE', 'KIND', 'TARGET', 'STATE', 'TLS'], endpoints.map((e) => [e.endpoint, e.engine, e.kind, idOf(e), e.state, tlsCell(e)])));
      return EXIT.ok;
    default:
      throw new UsageError(`--format must be table, json, natmap or security-group, got "${format}"`);
  }
}
