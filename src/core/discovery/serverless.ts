// ElastiCache Serverless caches (DescribeServerlessCaches) → targets. Pure.
//
// A Serverless cache has one DNS name with two ports: `Endpoint` (6379 for
// Valkey/Redis, 11211 for Memcached) reaches the primary, `ReaderEndpoint`
// (6380 / 11212) reads from an AZ-local replica. Each gets its own target and
// so its own sticky port. TLS is always on.

import { targetKeyOf, type DiscoveredTarget } from '../model.js';
import { engineOf, idProblem, isId, show } from '../grammar.js';
import { readEndpoint, type Collector } from './answer.js';

/** Statuses in which a Serverless cache serves clients. */
const SERVING = new Set(['available', 'modifying']);

const KINDS = [
  { kind: 'serverless', field: 'Endpoint', label: 'endpoint' },
  { kind: 'serverless-reader', field: 'ReaderEndpoint', label: 'reader endpoint' },
] as const;

export function addServerlessTargets(cache: Record<string, unknown>, index: number, { selected, add, skip }: Collector): void {
  const serverlessCacheName = cache.ServerlessCacheName;
  if (!isId(serverlessCacheName)) {
    return skip(`serverless cache #${index + 1}`, `ServerlessCacheName ${idProblem(serverlessCacheName)}`);
  }
  const where = `serverless cache ${serverlessCacheName}`;

  const engine = engineOf(cache.Engine);
  if (engine === undefined) return skip(where, `engine ${show(cache.Engine)} is not redis, valkey or memcached`);
  if (!selected([serverlessCacheName])) return skip(where, 'not selected by discovery.include/exclude');

  const status = typeof cache.Status === 'string' ? cache.Status.toLowerCase() : undefined;
  if (status === undefined || !SERVING.has(status)) return skip(where, `not serving yet (status ${show(cache.Status)})`);

  for (const { kind, field, label } of KINDS) {
    const kindWhere = `${where} ${label}`;
    const endpoint = readEndpoint(cache[field]);
    if (endpoint === undefined) {
      skip(kindWhere, `no ${label} yet (status ${show(cache.Status)})`);
      continue;
    }
    if ('problem' in endpoint) {
      skip(kindWhere, endpoint.problem);
      continue;
    }
    const target: Omit<DiscoveredTarget, 'key'> = { kind, engine, serverlessCacheName, tls: true, address: endpoint.address, targetPort: endpoint.port };
    add({ key: targetKeyOf(target), ...target }, kindWhere);
  }
}
