// `status` and `endpoints`: read-only views of the forwards.

import type { Forward } from '../../core/model.js';
import { isIpv4 } from '../../core/ipv4.js';
import { renderSecurityGroupRulesAwsCli, renderSecurityGroupRulesTable, securityGroupRules } from '../../core/endpoints/security-group.js';
import { findPublicAddress, readForwards } from '../forwards-view.js';
import { cacheNameOf } from '../../core/planner/plaintext-guard.js';
import { EXIT } from '../exit-codes.js';
import { describeHa } from '../../core/health/evaluate.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { configPathOf, loadFor, print } from './shared.js';
import { withConnections, connectionsCell } from '../status-connections.js';

const idOf = (f: Forward): string => (f.kind === 'node' ? `${f.cacheClusterId}/${f.cacheNodeId}` : `${cacheNameOf(f)} (${f.kind})`);

/** tls is always stated (false when the API did not say: recovered from rules); TLS targets name the SNI clients must send. */
const withTls = <T extends Forward>(f: T) => ({ ...f, tls: f.tls === true, ...(f.tls === true ? { sni: f.address } : {}) });
const tlsCell = (f: Forward): string => (f.tls === true ? `yes (SNI ${f.address})` : 'no');
/** Where clients' packets arrive: the port, or address:port in address mode. */
const listenCell = (f: Forward): string => (f.listenAddress === undefined ? String(f.listenPort) : `${f.listenAddress}:${f.listenPort}${f.fallback ? ' (fallback)' : ''}`);
/** Every address of a name with several, else the one. */
const destinationCell = (f: Forward): string => (f.targetIp ? (f.targetIps ?? [f.targetIp]).map((ip) => `${ip}:${f.targetPort}`).join(',') : '-');

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export async function statusCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const view = await readForwards(config, io);
  const forwards = withConnections(view.forwards, view.connections);
  if (options.json) {
    print(io.stdout, JSON.stringify({ source: view.source, forwards: forwards.map(withTls), ...(view.withoutPort ? { withoutPort: view.withoutPort } : {}), ...(view.ha ? { ha: view.ha } : {}) }, null, 2));
    return EXIT.ok;
  }
  if (view.ha) print(io.stdout, `HA: ${describeHa(io.now(), view.ha)}`);
  const withoutPort = view.withoutPort?.length ? `not forwarded, no free port (lower ports.redis / ports.memcached or exclude clusters): ${view.withoutPort.join(', ')}` : undefined;
  if (view.forwards.length === 0) {
    print(io.stdout, view.source === 'none' ? 'no forwards: cachenat has not run a pass yet on this host' : 'no forwards');
    if (withoutPort) print(io.stdout, withoutPort);
    return EXIT.ok;
  }
  const stateCell = (f: Forward): string => (f.ipv6Only ? `${f.state} (IPv6 only: not served)` : f.state);
  const rows = forwards.map((f) => [listenCell(f), f.engine, f.kind, idOf(f), destinationCell(f), stateCell(f), f.tls === true ? 'yes' : 'no', connectionsCell(f), f.address]);
  print(io.stdout, renderTable([config.forward.listenAddresses ? 'LISTEN' : 'PORT', 'ENGINE', 'KIND', 'TARGET', 'DESTINATION', 'STATE', 'TLS', 'CONNS OPEN/NEW', 'ADDRESS'], rows));
  if (withoutPort) print(io.stdout, withoutPort);
  if (view.source !== 'daemon') print(io.stdout, `(from ${view.source === 'state' ? `the port map in ${config.state.dir}` : 'the last snapshot'}: the daemon is not running)`);
  return EXIT.ok;
}

/** Exit 0, or 1 when no address for clients could be found (nothing is printed on stdout then). */
export async function endpointsCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const format = options.format ?? (options.json ? 'json' : 'table');
  const { forwards } = await readForwards(config, io);
  if (format === 'security-group') {
    // Security groups match ports, not the instance's own addresses: in address mode the native ports.
    const rules = securityGroupRules({ forwards, allowedSources: config.forward.allowedSources });
    print(io.stdout, `${renderSecurityGroupRulesTable(rules)}\n${renderSecurityGroupRulesAwsCli(rules)}`);
    return EXIT.ok;
  }
  const listen = config.forward.listenAddresses;
  if (format === 'hosts' || format === 'dnsmasq') {
    if (listen === undefined) {
      print(
        io.stderr,
        `cachenat: --format ${format} needs address mode: in port mode every target shares one address and differs by port, which a resolver cannot express. Set forward.listenAddresses in ${configPathOf(options, io)} (docs/aws-setup.md, address mode), or use --format natmap for clients with a remap hook`,
      );
      return EXIT.failure;
    }
    print(io.stdout, nameLines(forwards, publicOf(listen), format));
    return EXIT.ok;
  }

  let hostOf: (f: Forward) => string;
  let portModeHost: string | undefined;
  if (listen !== undefined) {
    const publicAddress = publicOf(listen);
    hostOf = (f) => publicAddress(f) ?? f.listenAddress ?? '';
  } else {
    const found = await findPublicAddress(config, io);
    if (found.address === undefined) {
      print(io.stderr, `cachenat: no address for clients to dial: ${found.notes.join('; ')}. Set forward.publicAddress in ${configPathOf(options, io)} to the address clients connect to (the Elastic IP)`);
      return EXIT.failure;
    }
    if (found.from === 'interface') {
      print(io.stderr, `cachenat: note: showing ${config.forward.inboundInterface}'s own address ${found.address} (${found.notes.join('; ')}); clients outside the VPC need forward.publicAddress`);
    }
    const host = found.address;
    portModeHost = host;
    hostOf = () => host;
  }
  // Address mode also names the Elastic IP each endpoint is dialled at (`host`, under the name the config uses).
  const endpoints = forwards.map((f) =>
    withTls({ ...f, host: hostOf(f), port: f.listenPort, endpoint: `${hostOf(f)}:${f.listenPort}`, ...(listen === undefined ? {} : { publicAddress: hostOf(f) }) }),
  );
  switch (format) {
    case 'json':
      // Port mode keeps its one top-level host; address mode has one per endpoint.
      print(io.stdout, JSON.stringify(portModeHost !== undefined ? { host: portModeHost, endpoints } : { mode: 'address', endpoints }, null, 2));
      return EXIT.ok;
    case 'natmap': {
      // Keys as cluster-mode clients see nodes: ip:port, and name:port with TLS;
      // the configuration endpoint's name:port is what clients are seeded with.
      const map: Record<string, { host: string; port: number }> = {};
      for (const f of forwards) {
        if (f.kind !== 'node') continue;
        if (f.targetIp) map[`${f.targetIp}:${f.targetPort}`] = { host: hostOf(f), port: f.listenPort };
        map[`${f.address}:${f.targetPort}`] = { host: hostOf(f), port: f.listenPort };
      }
      // Only by name: the configuration endpoint resolves to some node's address, whose ip:port key is that node's.
      for (const f of forwards) {
        if (f.kind === 'configuration') map[`${f.address}:${f.targetPort}`] ??= { host: hostOf(f), port: f.listenPort };
      }
      print(io.stdout, JSON.stringify(map, null, 2));
      return EXIT.ok;
    }
    default: {
      // 'table'; cli.ts accepts no other value
      const header = ['ENDPOINT', 'ENGINE', 'KIND', 'TARGET', 'STATE', 'TLS'];
      const rows = endpoints.map((e) => [e.endpoint, e.engine, e.kind, idOf(e), e.state, tlsCell(e)]);
      if (listen !== undefined) {
        header.push('NAME', 'LISTEN');
        rows.forEach((row, i) => row.push(endpoints[i]!.fallback ? '(by port only)' : endpoints[i]!.address, listenCell(endpoints[i]!)));
      }
      print(io.stdout, renderTable(header, rows));
      return EXIT.ok;
    }
  }
}

/** Address mode: the Elastic IP clients dial for a forward, by its private listen address. */
const publicOf =
  (listen: readonly { address: string; public: string }[]) =>
  (f: Pick<Forward, 'listenAddress'>): string | undefined =>
    listen.find((l) => l.address === f.listenAddress)?.public;

/**
 * Address mode: one line per endpoint name, pointing it at its Elastic IP
 * (`/etc/hosts` lines, or dnsmasq `address=` lines). A name an IPv4 literal
 * stands for needs none. Targets that fell back to port mode share the first
 * address with another target's native port, so a name for them would lead
 * clients astray: they are listed as comments with the endpoint to dial.
 */
function nameLines(forwards: Forward[], publicAddress: (f: Forward) => string | undefined, format: 'hosts' | 'dnsmasq'): string {
  const lines = new Map<string, string>();
  const notes: string[] = [];
  for (const f of [...forwards].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))) {
    const dial = publicAddress(f);
    if (dial === undefined || isIpv4(f.address)) continue;
    if (f.fallback) {
      notes.push(`# ${f.address} (${f.key}) has no listen address of its own: dial ${dial}:${f.listenPort}`);
      continue;
    }
    lines.set(f.address, format === 'hosts' ? `${dial} ${f.address}` : `address=/${f.address}/${dial}`);
  }
  const body = [...lines.values(), ...notes];
  return body.length > 0 ? body.join('\n') : '# no endpoints yet: cachenat has not discovered any target';
}
