// The real HostProbe: this network namespace's interfaces (getifaddrs via
// os.networkInterfaces, which, unlike /sys, always shows the caller's own
// namespace), its default route and listening sockets from /proc/self/net,
// and IMDSv2 through the one client. No AWS SDK here: `endpoints` and the
// host checks stay quick to load.

import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { answerOf, imdsClientFor, readPrimaryMac, readPublicIpv4, readRegion } from '../aws/imds.js';
import type { HostInterface } from '../core/config/host.js';
import { defaultRouteInterface, tcpListeners } from '../core/host/proc-net.js';
import type { HostProbe } from '../cli/io.js';

/** One IMDS read's budget: a few requests on the link-local network. */
const IMDS_TIMEOUT_MS = 2000;

/** Interfaces and their IPv4 addresses, as getifaddrs lists them (an interface with no address is not listed). */
export function hostInterfaces(): HostInterface[] {
  return Object.entries(networkInterfaces()).map(([name, list]) => {
    const mac = list?.find((a) => a.mac !== '00:00:00:00:00:00')?.mac;
    return { name, ...(mac ? { mac: mac.toLowerCase() } : {}), ipv4: (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address) };
  });
}

const readOptional = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

export function hostProbe(env: NodeJS.ProcessEnv): HostProbe {
  return {
    interfaces: hostInterfaces,
    defaultRoute: async () => {
      const table = await readOptional('/proc/self/net/route');
      return table === undefined ? undefined : defaultRouteInterface(table);
    },
    listeners: async () => {
      const [tcp, tcp6] = await Promise.all([readOptional('/proc/self/net/tcp'), readOptional('/proc/self/net/tcp6')]);
      return tcp === undefined ? undefined : tcpListeners(tcp, tcp6);
    },
    imds: (endpoint) => {
      const client = imdsClientFor(env, endpoint);
      return {
        region: () => answerOf(readRegion(client, IMDS_TIMEOUT_MS)),
        primaryMac: () => answerOf(readPrimaryMac(client, IMDS_TIMEOUT_MS)),
        publicIpv4: () => answerOf(readPublicIpv4(client, IMDS_TIMEOUT_MS)),
      };
    },
  };
}
