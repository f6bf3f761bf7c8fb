// The real HostProbe: this network namespace's interfaces (./interfaces.ts),
// its default route and listening sockets from /proc/self/net (which, unlike
// /sys, always shows the caller's own namespace), and IMDSv2 through the one
// client. No AWS SDK here: `endpoints` and the
// host checks stay quick to load.

import { readFile } from 'node:fs/promises';
import { answerOf, imdsClientFor, readPrimaryMac, readPublicIpv4, readRegion } from '../aws/imds.js';
import { hostInterfaces } from './interfaces.js';
import { defaultRouteInterface, tcpListeners } from '../core/host/proc-net.js';
import type { HostProbe } from '../cli/io.js';

/** One IMDS read's budget: a few requests on the link-local network. */
const IMDS_TIMEOUT_MS = 2000;

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
