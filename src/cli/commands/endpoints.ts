// `cachenat endpoints`: how clients connect.

import type { Forward } from '../../core/model.js';
import { isIpv4 } from '../../core/ipv4.js';
import { renderSecurityGroupRulesAwsCli, renderSecurityGroupRulesTable, securityGroupRules } from '../../core/endpoints/security-group.js';
import { EXIT } from '../exit-codes.js';
import { isSet, JSON_FLAG, valueOf, type CommandModule, type CommandOptions } from '../command.js';
import { findPublicAddress, readForwards } from '../forwards-view.js';
import { idOf, listenCell, renderTable, tlsCell, withTls } from '../forward-cells.js';
import type { CliIo } from '../io.js';
import { configPathOf, loadFor, print } from './shared.js';

const FORMATS = ['table', 'json', 'natmap', 'security-group', 'hosts', 'dnsmasq'] as const;

export const command: CommandModule = {
  flags: [{ flags: '--format <format>', help: 'what to print (default: table)', choices: FORMATS }, { ...JSON_FLAG, help: 'the same as --format json' }],
  details: `The address:port clients dial for each cache. The address is forward.publicAddress, else the
instance's public IPv4 (IMDSv2), else forward.inboundInterface's own address (with a note).
  table           one row per endpoint
  json            {"host", "endpoints": [...]} (address mode: {"mode": "address", "endpoints"})
  natmap          the map ioredis natMap / node-redis nodeAddressMap take for cluster mode
  security-group  the inbound rules the instance's security group needs, and the aws CLI calls
  hosts, dnsmasq  address mode: one line per endpoint name pointing at its Elastic IP

Exit codes: 0, 1 no address for clients found (stderr says where it looked) or hosts/dnsmasq in
port mode, 78 bad config.`,
  run: endpointsCommand,
};

/** Exit 0, or 1 when no address for clients could be found (nothing is printed on stdout then). */
async function endpointsCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const format = valueOf(options, 'format') ?? (isSet(options, 'json') ? 'json' : 'table');
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
      print(io.stderr, `cachenat: note: showing ${found.interface}'s own address ${found.address} (${found.notes.join('; ')}); clients outside the VPC need forward.publicAddress`);
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
