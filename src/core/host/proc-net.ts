// The kernel's own tables as /proc/net prints them, read for the host checks:
// which interfaces exist (/proc/net/dev: every one, with an address or not),
// which interface the default route leaves by (/proc/net/route), and which
// TCP ports local processes listen on (/proc/net/tcp, /proc/net/tcp6). Pure:
// the shell reads the files (in its own network namespace) and passes the text.

/** Every interface name /proc/net/dev lists (after its two header lines). */
export function interfaceNames(netDev: string): string[] {
  return netDev
    .split('\n')
    .slice(2)
    .map((line) => line.slice(0, line.indexOf(':')).trim())
    .filter((name) => name !== '');
}

/** The interface of the default IPv4 route (destination 0/0) with the lowest metric, or undefined. */
export function defaultRouteInterface(routeTable: string): string | undefined {
  let best: { name: string; metric: number } | undefined;
  for (const line of routeTable.split('\n').slice(1)) {
    const [name, destination, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (name === undefined || destination !== '00000000' || mask !== '00000000') continue;
    const up = (Number.parseInt(flags ?? '0', 16) & 0x1) === 1; // RTF_UP
    const value = Number(metric);
    if (up && (best === undefined || value < best.metric)) best = { name, metric: value };
  }
  return best?.name;
}

export interface Listener {
  /** The local address: 0.0.0.0 for every IPv4 address (also :: on a dual-stack socket). */
  address: string;
  port: number;
}

const LISTEN = '0A';

/** IPv4 from the kernel's little-endian hex (on the little-endian machines cachenat runs on: x86-64, arm64). */
const ipv4OfHex = (hex: string): string => [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).join('.');

/**
 * Listening TCP sockets that can receive IPv4: from tcp every one; from tcp6
 * the wildcard (dual-stack: it takes IPv4 too) and IPv4-mapped addresses.
 */
export function tcpListeners(tcp: string, tcp6 = ''): Listener[] {
  const out: Listener[] = [];
  for (const [text, v6] of [[tcp, false], [tcp6, true]] as const) {
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== LISTEN || local === undefined) continue;
      const [hex, portHex] = local.split(':');
      if (hex === undefined || portHex === undefined) continue;
      const port = Number.parseInt(portHex, 16);
      if (!v6 && hex.length === 8) out.push({ address: ipv4OfHex(hex), port });
      else if (v6 && /^0{32}$/.test(hex)) out.push({ address: '0.0.0.0', port });
      else if (v6 && /^0{16}FFFF0000[0-9A-F]{8}$/i.test(hex)) out.push({ address: ipv4OfHex(hex.slice(24)), port });
    }
  }
  return out;
}
