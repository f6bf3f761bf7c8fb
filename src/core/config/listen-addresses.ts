// Address mode needs every listen address on the client-facing interface:
// a DNAT rule for an address the host does not hold never sees a packet.
// Pure: the shell passes what the interfaces hold.

import type { Config } from './schema.js';

export interface HostIssue {
  path: string;
  message: string;
}

/** IPv4 addresses per interface name, as the host reports them. */
export type InterfaceAddresses = Readonly<Record<string, readonly string[]>>;

/** The interfaces forward.inboundInterface names: one, or every one its trailing "+" matches. */
export function inboundInterfaces(pattern: string, interfaces: InterfaceAddresses): string[] {
  const names = Object.keys(interfaces).sort();
  return pattern.endsWith('+') ? names.filter((n) => n.startsWith(pattern.slice(0, -1))) : names.filter((n) => n === pattern);
}

/** One issue per listen address the inbound interface does not hold; none in port mode. */
export function missingListenAddresses(config: Pick<Config, 'forward'>, interfaces: InterfaceAddresses): HostIssue[] {
  const list = config.forward.listenAddresses;
  if (list === undefined) return [];
  const pattern = config.forward.inboundInterface;
  const names = inboundInterfaces(pattern, interfaces);
  const held = new Set(names.flatMap((n) => interfaces[n] ?? []));
  const has = names.length === 0 ? `there is no interface ${pattern} on this host` : `${pattern} has ${[...held].join(', ') || 'no IPv4 address'}`;
  return list.flatMap((entry, i) =>
    held.has(entry.address)
      ? []
      : [
          {
            path: `forward.listenAddresses[${i}].address`,
            message: `${entry.address} is not configured on ${pattern} (${has}). Assign it to the instance's network interface as a secondary private IP (docs/aws-setup.md, address mode), or remove it from the list`,
          },
        ],
  );
}
