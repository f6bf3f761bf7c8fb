// `cachenat status`: what is forwarded now.

import type { Forward } from '../../core/model.js';
import { EXIT } from '../exit-codes.js';
import { describeHa } from '../../core/health/evaluate.js';
import { isSet, JSON_FLAG, type CommandModule, type CommandOptions } from '../command.js';
import { readForwards } from '../forwards-view.js';
import { destinationCell, idOf, listenCell, renderTable, withTls } from '../forward-cells.js';
import type { CliIo } from '../io.js';
import { withConnections, connectionsCell } from '../status-connections.js';
import { BUILD_INFO } from '../../version.js';
import { loadFor, print, printJson } from './shared.js';

export const command: CommandModule = {
  flags: [JSON_FLAG],
  details: `One row per forward: where clients arrive, the cache behind it, its state (active, draining,
unresolved, refused...), TLS, and connections (open now / new since the daemon started). Read from
the running daemon's status file (any user may read it), else from the port map on disk.

--json prints {"version", "source", "forwards": [{"key", "kind", "engine", "address", "targetIp",
"targetPort", "listenPort", "state", "tls", "sni"?, "activeConnections"?, "newConnections"?}],
"withoutPort"? (targets that found no free port), "ha"?}.
Exit codes: 0, 78 bad config.`,
  run: statusCommand,
};

async function statusCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const view = await readForwards(config, io);
  const forwards = withConnections(view.forwards, view.connections);
  if (isSet(options, 'json')) {
    printJson(io.stdout, { version: BUILD_INFO.version, source: view.source, forwards: forwards.map(withTls), ...(view.withoutPort ? { withoutPort: view.withoutPort } : {}), ...(view.ha ? { ha: view.ha } : {}) });
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
