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

/** The source label of a client no allowedSources entry contains, now or before (a connection made on the NAT host itself). */
export const UNLISTED_SOURCE = 'unlisted';

interface Listening {
  identity: ForwardIdentity;
  listenAddress: string | undefined;
  listenPort: number;
}

/** Forwards by listener: address mode's by "address:port", port mode's by the port (a number: no text built per flow). */
export interface Listeners {
  readonly byAddress: ReadonlyMap<string, Listening>;
  readonly byPort: ReadonlyMap<number, Listening>;
}

export interface AttributionTable {
  /** Forwards of the last pass. */
  readonly current: Listeners;
  /** Forwards no longer listed, by the listener they had, until another forward takes it. */
  readonly retired: Listeners;
  readonly sources: readonly Source[];
  /** Entries taken out of allowedSources, newest first: the flows they admitted end after (a revocation cuts them). */
  readonly retiredSources: readonly Source[];
}

interface Source {
  text: string;
  cidr: Cidr;
}

/** Retired entries remembered at most. */
const MAX_RETIRED_SOURCES = 64;

const none = (): Listeners => ({ byAddress: new Map(), byPort: new Map() });

export const emptyAttribution = (): AttributionTable => ({ current: none(), retired: none(), sources: [], retiredSources: [] });

export const identityOf = (f: Pick<Forward, 'key' | 'kind' | 'engine' | 'replicationGroupId' | 'cacheClusterId' | 'serverlessCacheName'>): ForwardIdentity => ({
  key: f.key,
  kind: f.kind,
  engine: f.engine,
  cache: cacheNameOf(f),
});

/** The table after a pass planned these forwards with these allowed sources. */
export function rememberForwards(table: AttributionTable, forwards: readonly Forward[], allowedSources: readonly string[]): AttributionTable {
  const byAddress = new Map<string, Listening>();
  const byPort = new Map<number, Listening>();
  for (const f of forwards) {
    const listening = { identity: identityOf(f), listenAddress: f.listenAddress, listenPort: f.listenPort };
    if (f.listenAddress === undefined) byPort.set(f.listenPort, listening);
    else byAddress.set(`${f.listenAddress}:${f.listenPort}`, listening);
  }
  const retiredByAddress = new Map(table.retired.byAddress);
  const retiredByPort = new Map(table.retired.byPort);
  for (const [id, listening] of table.current.byAddress) if (!byAddress.has(id)) retiredByAddress.set(id, listening);
  for (const [port, listening] of table.current.byPort) if (!byPort.has(port)) retiredByPort.set(port, listening);
  for (const id of byAddress.keys()) retiredByAddress.delete(id);
  for (const port of byPort.keys()) retiredByPort.delete(port);
  return withSources({ ...table, current: { byAddress, byPort }, retired: { byAddress: retiredByAddress, byPort: retiredByPort } }, allowedSources);
}

/** The same forwards with these allowed sources (a reload before the next pass); entries taken out are retired. */
export function withSources(table: AttributionTable, allowedSources: readonly string[]): AttributionTable {
  const sources: Source[] = [];
  for (const text of allowedSources) {
    const cidr = parseCidr(text);
    if (!('error' in cidr)) sources.push({ text: cidr.text, cidr });
  }
  const listed = new Set(sources.map((s) => s.text));
  const removed = table.sources.filter((s) => !listed.has(s.text));
  const retiredSources = [...removed, ...table.retiredSources.filter((s) => !listed.has(s.text) && !removed.some((r) => r.text === s.text))].slice(0, MAX_RETIRED_SOURCES);
  return { ...table, sources, retiredSources };
}

const lookup = (l: Listeners, orig: Pick<FlowTuple, 'dst' | 'dport'>): Listening | undefined =>
  (l.byAddress.size > 0 ? l.byAddress.get(`${orig.dst}:${orig.dport}`) : undefined) ?? l.byPort.get(orig.dport);

/** The forward of a flow dialled at `orig` (address mode's own listener first, then a port-mode one), or undefined. */
export function forwardOf(table: AttributionTable, orig: Pick<FlowTuple, 'dst' | 'dport'>): ForwardIdentity | undefined {
  return (lookup(table.current, orig) ?? lookup(table.retired, orig))?.identity;
}

/**
 * The allowedSources entry that admits a client: the first in config order, as
 * the kernel's rules match them; else the newest retired entry that did (a
 * flow cut because its entry was taken out ends just after).
 */
export function sourceOf(table: AttributionTable, client: string): string {
  const ip = parseIpv4(client);
  if (ip === undefined) return UNLISTED_SOURCE;
  return (table.sources.find((s) => cidrContains(s.cidr, ip)) ?? table.retiredSources.find((s) => cidrContains(s.cidr, ip)))?.text ?? UNLISTED_SOURCE;
}
