// Which forward a flow went through, and which allowedSources entry let its
// client in. Pure. Flows are matched by the listener the client dialled (the
// original destination), never by the target's address: a failover changes
// the address, not the forward. A flow may end after its forward is gone
// (removed after its grace, a listener dropped), so the table keeps each
// listener's last forward until another forward takes that listener.

import { cidrContains, parseCidr, parseIpv4, type Cidr } from '../ipv4.js';
import type { Engine, Forward, TargetKind } from '../model.js';
import { cacheNameOf } from '../planner/plaintext-guard.js';
import type { FlowTuple } from './reader-lines.js';

/** What an audit line says about the forward a flow went through. */
export interface ForwardIdentity {
  key: string;
  kind: TargetKind;
  engine: Engine;
  /** The cluster, replication group or Serverless cache. */
  cache: string;
}

/** The source label of a client no allowedSources entry contains (a connection made on the NAT host itself, or a source removed since). */
export const UNLISTED_SOURCE = 'unlisted';

interface Listening {
  identity: ForwardIdentity;
  listenAddress: string | undefined;
  listenPort: number;
}

export interface AttributionTable {
  /** Forwards of the last pass, by listener ("address:port" in address mode, ":port" in port mode). */
  readonly current: ReadonlyMap<string, Listening>;
  /** Forwards no longer listed, by the listener they had, until another forward takes it. */
  readonly retired: ReadonlyMap<string, Listening>;
  readonly sources: readonly { text: string; cidr: Cidr }[];
}

const listenerId = (listenAddress: string | undefined, port: number): string => `${listenAddress ?? ''}:${port}`;

export const emptyAttribution = (): AttributionTable => ({ current: new Map(), retired: new Map(), sources: [] });

export const identityOf = (f: Pick<Forward, 'key' | 'kind' | 'engine' | 'replicationGroupId' | 'cacheClusterId' | 'serverlessCacheName'>): ForwardIdentity => ({
  key: f.key,
  kind: f.kind,
  engine: f.engine,
  cache: cacheNameOf(f),
});

/** The table after a pass planned these forwards with these allowed sources. */
export function rememberForwards(table: AttributionTable, forwards: readonly Forward[], allowedSources: readonly string[]): AttributionTable {
  const current = new Map<string, Listening>();
  for (const f of forwards) current.set(listenerId(f.listenAddress, f.listenPort), { identity: identityOf(f), listenAddress: f.listenAddress, listenPort: f.listenPort });
  const retired = new Map(table.retired);
  for (const [id, listening] of table.current) if (!current.has(id)) retired.set(id, listening);
  for (const id of current.keys()) retired.delete(id);
  return withSources({ ...table, current, retired }, allowedSources);
}

/** The same forwards with these allowed sources (a reload before the next pass). */
export function withSources(table: AttributionTable, allowedSources: readonly string[]): AttributionTable {
  const sources: { text: string; cidr: Cidr }[] = [];
  for (const text of allowedSources) {
    const cidr = parseCidr(text);
    if (!('error' in cidr)) sources.push({ text: cidr.text, cidr });
  }
  return { ...table, sources };
}

/** The forward of a flow dialled at `orig` (address mode's own listener first, then a port-mode one), or undefined. */
export function forwardOf(table: AttributionTable, orig: Pick<FlowTuple, 'dst' | 'dport'>): ForwardIdentity | undefined {
  const exact = listenerId(orig.dst, orig.dport);
  const byPort = listenerId(undefined, orig.dport);
  return (table.current.get(exact) ?? table.current.get(byPort) ?? table.retired.get(exact) ?? table.retired.get(byPort))?.identity;
}

/** The allowedSources entry that admits a client: the first in config order, as the kernel's rules match them. */
export function sourceOf(table: AttributionTable, client: string): string {
  const ip = parseIpv4(client);
  if (ip === undefined) return UNLISTED_SOURCE;
  return table.sources.find((s) => cidrContains(s.cidr, ip))?.text ?? UNLISTED_SOURCE;
}
