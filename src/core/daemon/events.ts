// Log wording for what a pass changed. Kept apart so the planner stays free of prose.

import type { FlowFilter } from '../model.js';
import type { ForwardEvent } from '../planner/plan-forwards.js';

type Level = 'info' | 'warn' | 'debug';

/** "port 6380", or "10.0.1.21:6379" in address mode. */
const where = (e: { listenAddress?: string; listenPort: number }): string => (e.listenAddress === undefined ? `port ${e.listenPort}` : `${e.listenAddress}:${e.listenPort}`);

export function describeEvent(event: ForwardEvent): { level: Level; message: string; fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = { ...event };
  delete fields.type;
  switch (event.type) {
    case 'added':
      return { level: 'debug', message: `new target ${event.key} on ${where(event)}`, fields };
    case 'relocated':
      return { level: 'info', message: `target ${event.key} now listens on ${where(event)} (was ${event.from}): forward.listenAddresses or the mode changed`, fields };
    case 'addresses-exhausted':
      return {
        level: 'warn',
        message: `no free listen address for ${event.key}: it listens in port mode on ${event.listenAddress}:${event.listenPort}. Add a secondary private IP with an Elastic IP to forward.listenAddresses`,
        fields,
      };
    case 'removed':
      return {
        level: 'debug',
        message: `target ${event.key} removed after the grace period; ${event.ownAddress ? `address ${event.listenAddress}` : `port ${event.listenPort}`} is quarantined`,
        fields,
      };
    case 'returned':
      return { level: 'info', message: `target ${event.key} is back in the API answer; it keeps port ${event.listenPort}`, fields };
    case 'draining':
      return { level: 'info', message: `target ${event.key} is gone from the API; keeping ${where(event)} until ${new Date(event.until).toISOString()}`, fields };
    case 'ip-changed':
      return { level: 'info', message: `target ${event.key} moved from ${event.from} to ${event.to}; port ${event.listenPort} follows`, fields };
    case 'resolve-failed':
      if (event.ipv6Only) {
        return {
          level: 'warn',
          message: `${event.address} for ${event.key} has only IPv6 addresses (AAAA, no A record): cachenat forwards IPv4 only, so this cache is not served${event.keepingIp ? ` (still forwarding to ${event.keepingIp} for the removal grace)` : ''}. Give the cache an IPv4 address (network type ipv4 or dual_stack)`,
          fields,
        };
      }
      return {
        level: 'warn',
        message: `cannot resolve ${event.address} for ${event.key} (${event.error})${event.keepingIp ? `; still forwarding to ${event.keepingIp}` : ''}. Check the VPC resolver and that the cache still exists`,
        fields,
      };
    case 'unresolved':
      return { level: 'warn', message: `${event.address} for ${event.key} has not resolved for the whole grace period; its forward is suspended (port kept)`, fields };
    case 'ports-exhausted':
      // Every pass finds it again: the reconciler warns when the set of such targets changes, health says it meanwhile.
      return { level: 'debug', message: `no free port left for ${event.key}; lower ports.redis / ports.memcached or exclude clusters`, fields };
  }
}

/** "through port 6380 to 10.0.1.5 (the target moved)": which open connections a pass cuts, and why. */
export function describeFlows(filter: FlowFilter): string {
  if (filter.kind === 'source') return `from ${filter.source} (forward.allowedSources no longer lists it)`;
  const why = { moved: 'the target moved', removed: 'the target was removed', refused: 'forward.plaintext: refuse', relocated: 'the listener left the config' }[filter.cause];
  return `through ${where(filter)} to ${filter.targetIp} (${why})`;
}
