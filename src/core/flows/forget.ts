// Which established flows a pass must forget. A conntrack entry outlives the
// rule that created it: without a flush, a client keeps talking to where its
// connection was first sent for as long as it holds it (Redis clients hold
// connections for days). So whatever the new rules no longer admit is
// forgotten once they are in the kernel: flows to an address the target left
// (moved), and flows the config no longer lets through (revoked).
//
// The kernel is the truth about what was admitted: its DNAT rules, the
// addresses an unresolved target's flows still go to (map chain), and its
// source rules. Comparing them with what this pass installs finds every flow
// that loses its admission, whatever happened in between: a failed write, a
// restart, a config edited while the daemon was down. Pure.

import { cidrDifference } from '../ipv4.js';
import { PREROUTING_RULE_PATTERN } from '../grammar.js';
import type { Forward, FlowFilter } from '../model.js';
import type { SavedTable } from '../netfilter/parse-save.js';
import { flowFilterId, pendingForgets, readMapChain } from '../netfilter/map-chain.js';
import { readDnatRules } from '../netfilter/recover.js';

/** A listener and an address flows through it may go to. */
export interface Admission {
  key: string;
  listenAddress?: string;
  listenPort: number;
  ip: string;
}

export interface Admitted {
  /** (listener, address) pairs. */
  pairs: Admission[];
  /** Source ranges (canonical CIDRs); undefined when the kernel has no source rules of ours (nothing installed yet). */
  sources?: string[];
}

const PREROUTING_LINE = new RegExp(`^${PREROUTING_RULE_PATTERN}$`);

/**
 * What the installed rules admit. `unchanged`: DNAT lines the pass installs
 * again as they are: what they admit stays admitted, so they need not be
 * read (a steady pass of thousands of forwards reads none).
 */
export function installedAdmissions(nat: SavedTable, unchanged: readonly string[] = []): Admitted {
  const installed = nat.chains.get('CACHENAT-DNAT')?.rules ?? [];
  // The steady pass: the chain is exactly what it installs again.
  const steady = installed.length === unchanged.length && installed.every((line, i) => line === unchanged[i]);
  const same = steady ? undefined : new Set(unchanged);
  const changed: SavedTable = { chains: new Map([['CACHENAT-DNAT', { policy: '-', rules: same === undefined ? [] : installed.filter((line) => !same.has(line)) }]]) };
  const pairs: Admission[] = readDnatRules(changed).map((r) => ({ key: r.key, ...listenerOf(r), ip: r.targetIp }));
  const stale = (readMapChain(nat, ['stale']) ?? []).flatMap((r) => (r.type === 'stale' ? [r] : []));
  if (stale.length > 0) {
    const keys = new Set(stale.map((r) => r.key));
    const entries = new Map((readMapChain(nat, ['entry']) ?? []).flatMap((r) => (r.type === 'entry' && keys.has(r.key) ? [[r.key, r] as const] : [])));
    for (const record of stale) {
      const entry = entries.get(record.key);
      if (entry) pairs.push({ key: record.key, ...listenerOf(entry), ip: record.ip });
    }
  }
  const chain = nat.chains.get('CACHENAT-PREROUTING');
  const sources = chain?.rules.flatMap((line) => {
    const match = PREROUTING_LINE.exec(line);
    return match ? [match[1] ?? '0.0.0.0/0'] : [];
  });
  return { pairs, ...(sources === undefined || sources.length === 0 ? {} : { sources }) };
}

/** What a pass's forwards admit: an active or draining forward its addresses, an unresolved one the addresses its open flows go to, a refused one nothing. */
export function desiredAdmissions(forwards: readonly Forward[], allowedSources: readonly string[]): Required<Admitted> {
  const pairs = forwards.flatMap((f): Admission[] => {
    const ips = f.state === 'refused' ? [] : f.state === 'unresolved' ? (f.lastIps ?? []) : (f.targetIps ?? (f.targetIp === undefined ? [] : [f.targetIp]));
    return ips.map((ip) => ({ key: f.key, ...listenerOf(f), ip }));
  });
  return { pairs, sources: [...allowedSources] };
}

const listenerOf = (l: { listenAddress?: string; listenPort: number }) => ({ ...(l.listenAddress === undefined ? {} : { listenAddress: l.listenAddress }), listenPort: l.listenPort });
/** A (listener, address) pair as one string, for set lookups (thousands of forwards). */
const pairId = (p: Omit<Admission, 'key'>): string => `${p.listenAddress ?? ''}:${p.listenPort} ${p.ip}`;

export interface ForgetInput {
  installed: Admitted;
  desired: Required<Admitted>;
  forwards: readonly Forward[];
  /** Addresses this pass's DNS answers took from a forward (the map's own memory of a move, for rules that were not installed). */
  moves: readonly { key: string; from: string }[];
  /** Flows the kernel says are still to be forgotten (written with an earlier change). */
  pending: readonly FlowFilter[];
  /** Those already forgotten by this process since they were written. */
  flushed: ReadonlySet<string>;
}

/**
 * The flows to forget once this pass's rules are in the kernel, each once, in
 * a fixed order. Never a flow the new rules admit: a listener's flows to an
 * address it still sends to, or a source range still allowed.
 */
export function flowsToForget(input: ForgetInput): FlowFilter[] {
  const { desired, forwards } = input;
  const byKey = new Map(forwards.map((f) => [f.key, f]));
  const admitted = new Set(desired.pairs.map(pairId));
  const filters: FlowFilter[] = [];

  for (const pair of input.installed.pairs) {
    if (admitted.has(pairId(pair))) continue;
    const now = byKey.get(pair.key);
    const cause =
      now === undefined ? 'removed' : now.state === 'refused' ? 'refused' : now.listenPort !== pair.listenPort || now.listenAddress !== pair.listenAddress ? 'relocated' : 'moved';
    filters.push({ kind: 'listener', ...listenerOf(pair), targetIp: pair.ip, cause });
  }
  for (const move of input.moves) {
    const forward = byKey.get(move.key);
    if (forward) filters.push({ kind: 'listener', ...listenerOf(forward), targetIp: move.from, cause: 'moved' });
  }
  for (const source of cidrDifference(input.installed.sources ?? [], desired.sources)) filters.push({ kind: 'source', source, cause: 'source' });

  const kept: FlowFilter[] = [];
  for (const filter of [...filters, ...input.pending]) {
    if (filter.kind === 'listener') {
      if (!admitted.has(pairId({ ...listenerOf(filter), ip: filter.targetIp }))) kept.push(filter);
    } else {
      // Whatever part of the range is allowed again keeps its flows.
      for (const source of cidrDifference([filter.source], desired.sources)) kept.push({ kind: 'source', source, cause: 'source' });
    }
  }
  // The same flows found twice (a move the map and the kernel both show) are forgotten once, under the first cause.
  const once = new Map<string, FlowFilter>();
  for (const f of kept) {
    const flows = f.kind === 'source' ? f.source : pairId({ ...listenerOf(f), ip: f.targetIp });
    if (!once.has(flows)) once.set(flows, f);
  }
  return [...once.values()]
    .map((f) => [flowFilterId(f), f] as const)
    .filter(([id]) => !input.flushed.has(id))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, f]) => f);
}

/**
 * The flows the kernel records as still to be forgotten (an earlier write took
 * them away, a crash or a failed conntrack call kept them), less those this
 * process already forgot and any the installed rules admit after all.
 */
export function pendingToForget(nat: SavedTable, flushed: ReadonlySet<string>): FlowFilter[] {
  const installed = installedAdmissions(nat);
  return flowsToForget({
    installed: { pairs: [] },
    desired: { pairs: installed.pairs, sources: installed.sources ?? [] },
    forwards: [],
    moves: [],
    pending: pendingForgets(nat),
    flushed,
  });
}
