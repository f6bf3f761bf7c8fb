// Rebuilds the port map from the kernel alone when the state file is lost.
// The map chain (map-chain.ts) holds every target's listener, the ones
// without rules too, and every quarantined listener; the DNAT rules add the
// addresses each forward sends to. Rules written before the kernel carried
// the map have only the DNAT lines, whose owner comments still name each
// forward. The kernel's text is read as untrusted: a line that does not parse
// or holds an invalid value is skipped, never guessed at.

import type { Engine, TargetKey } from '../model.js';
import { parseIpv4, targetAddressProblem } from '../ipv4.js';
import type { SavedTable } from './parse-save.js';
import { emptyPortState, listenerClaims, type Listener, type PortEntry, type PortState } from '../ports/port-state.js';
import { DNAT_RULE_PATTERN, engineProblem, keyProblem, listenAddressProblem, MAX_TARGET_IPS, parseTargetKey, portProblem, type MapRecord } from '../grammar.js';
import { readMapChain } from './map-chain.js';

export interface RecoveredForward {
  key: TargetKey;
  engine: Engine;
  /** Address mode: the listen address the rule matches. */
  listenAddress?: string;
  listenPort: number;
  targetIp: string;
  targetPort: number;
}

const DNAT_LINE = new RegExp(`^${DNAT_RULE_PATTERN}$`);

/** Every valid DNAT rule of ours, in chain order (a name with several addresses has one per address). */
export function readDnatRules(nat: SavedTable): RecoveredForward[] {
  return (nat.chains.get('CACHENAT-DNAT')?.rules ?? []).flatMap((line) => {
    const match = DNAT_LINE.exec(line);
    if (!match) return [];
    const [, listenAddress, listenText = '', engine = '', key = '', targetIp = '', targetText = ''] = match;
    const listenPort = Number(listenText);
    const targetPort = Number(targetText);
    const problem =
      engineProblem(engine) ??
      keyProblem(key) ??
      (listenAddress === undefined ? undefined : listenAddressProblem(listenAddress)) ??
      portProblem(listenPort) ??
      portProblem(targetPort) ??
      targetAddressProblem(targetIp);
    return problem === undefined ? [{ key, engine: engine as Engine, ...(listenAddress === undefined ? {} : { listenAddress }), listenPort, targetIp, targetPort }] : [];
  });
}

/** One forward per key and per listener: the first rule, which is the one the kernel acts on. */
export function recoverForwards(nat: SavedTable): RecoveredForward[] {
  const claim = listenerClaims();
  return readDnatRules(nat).filter(claim);
}

export interface RecoveredState {
  state: PortState;
  /** `map`: from the map chain; `rules`: from the DNAT rules alone (an older version wrote them). */
  from: 'map' | 'rules';
}

const sameListener = (a: Listener, b: Listener): boolean => a.listenPort === b.listenPort && a.listenAddress === b.listenAddress;
const ipOrder = (a: string, b: string): number => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0);

/** The addresses a forward sends to, as the planner keeps them: distinct, ascending, the lowest first. */
function addressesOf(ips: readonly string[]): Pick<PortEntry, 'ip' | 'ips'> {
  const sorted = [...new Set(ips)].sort(ipOrder).slice(0, MAX_TARGET_IPS);
  if (sorted.length === 0) return {};
  return sorted.length > 1 ? { ip: sorted[0]!, ips: sorted } : { ip: sorted[0]! };
}

/** The port map the kernel describes; `now` dates the addresses found in the rules. */
export function recoverState(nat: SavedTable, now: number): RecoveredState {
  const rules = new Map<string, RecoveredForward[]>();
  for (const rule of readDnatRules(nat)) rules.set(rule.key, [...(rules.get(rule.key) ?? []), rule]);
  const records = readMapChain(nat);
  const state = emptyPortState();
  const releasedAddresses: NonNullable<PortState['releasedAddresses']> = [];
  const fits = listenerClaims();
  // A port (port mode; a fallback's with its address), or an address with the port its target used there (undefined: every port).
  const quarantine = (key: string, { listenAddress, listenPort, fallback }: { listenAddress?: string; listenPort?: number; fallback?: true }, releasedAt: number) => {
    if (listenAddress === undefined || fallback) {
      if (listenPort !== undefined && !state.released.some((r) => r.port === listenPort)) state.released.push({ port: listenPort, key, releasedAt, ...(fallback ? { address: listenAddress } : {}) });
    } else if (!releasedAddresses.some((r) => r.key === key && r.address === listenAddress)) {
      releasedAddresses.push({ address: listenAddress, ...(listenPort === undefined ? {} : { port: listenPort }), key, releasedAt });
    }
  };

  const staleIps = new Map<string, string[]>();
  for (const record of records ?? []) if (record.type === 'stale') staleIps.set(record.key, [...(staleIps.get(record.key) ?? []), record.ip]);
  for (const record of records ?? []) {
    if (record.type === 'entry') {
      const entry = entryOf(record, rules, staleIps.get(record.key) ?? [], now);
      if (entry === undefined) quarantine(record.key, record, now); // no address known: its listener is kept for it all the same
      else if (fits(entry)) state.entries.push(entry);
    } else if (record.type === 'quarantined') {
      quarantine(record.key, record, record.releasedAt);
    }
  }
  // Forwards the map chain does not name (written before it existed): the DNAT rules alone.
  for (const r of recoverForwards(nat)) {
    const parsed = parseTargetKey(r.key);
    if (!parsed) continue;
    const entry: PortEntry = { key: r.key, ...parsed, engine: r.engine, address: r.targetIp, targetPort: r.targetPort, listenPort: r.listenPort, ...addressesOf((rules.get(r.key) ?? []).filter((o) => sameListener(o, r)).map((o) => o.targetIp)), resolvedAt: now };
    if (r.listenAddress !== undefined) {
      entry.listenAddress = r.listenAddress;
      // Without a record, only the port tells: address mode listens on the native port, a fallback on another one.
      if (r.listenPort !== r.targetPort) entry.fallback = true;
    }
    if (fits(entry)) state.entries.push(entry);
  }
  state.entries.sort((a, b) => (a.key < b.key ? -1 : 1));
  state.released.sort((a, b) => a.port - b.port);
  releasedAddresses.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.key < b.key ? -1 : 1));
  if (releasedAddresses.length > 0) state.releasedAddresses = releasedAddresses;
  return { state, from: records === undefined ? 'rules' : 'map' };
}

/** A map chain entry with its addresses: its DNAT rules' (on its own listener), or the unresolved one's last ones. Undefined when no address is known at all. */
function entryOf(record: Extract<MapRecord, { type: 'entry' }>, rules: ReadonlyMap<string, readonly RecoveredForward[]>, staleIps: readonly string[], now: number): PortEntry | undefined {
  const parsed = parseTargetKey(record.key);
  if (!parsed) return undefined;
  const forwarding = addressesOf((rules.get(record.key) ?? []).filter((r) => sameListener(r, record) && r.targetPort === record.targetPort).map((r) => r.targetIp));
  const stale = [...new Set(staleIps)].sort(ipOrder).slice(0, MAX_TARGET_IPS);
  const address = record.address ?? forwarding.ip ?? stale[0];
  if (address === undefined) return undefined;
  const entry: PortEntry = { key: record.key, ...parsed, engine: record.engine, address, targetPort: record.targetPort, listenPort: record.listenPort };
  if (record.tls !== undefined) entry.tls = record.tls;
  if (record.listenAddress !== undefined) entry.listenAddress = record.listenAddress;
  if (record.fallback) entry.fallback = true;
  if (forwarding.ip !== undefined) Object.assign(entry, forwarding, { resolvedAt: now });
  else if (stale.length > 0) entry.lastIps = stale;
  return entry;
}
