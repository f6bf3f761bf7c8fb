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

/** What the installed rules admit. */
export function installedAdmissions(nat: SavedTable): Admitted {
  const pairs: Admission[] = readDnatRules(nat).map((r) => ({ key: r.key, ...listenerOf(r), ip: r.targetIp }));
  const records = readMapChain(nat) ?? [];
  for (const record of records) {
    if (record.type !== 'stale') continue;
    const entry = records.find((r) => r.type === 'entry' && r.key === record.key);
    if (entry?.type === 'entry') pairs.push({ key: record.key, ...listenerOf(entry), ip: record.ip });
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
const samePair = (a: Omit<Admission, 'key'>, b: Omit<Admission, 'key'>): boolean => a.listenPort === b.listenPort && a.listenAddress === b.listenAddress && a.ip === b.ip;

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
  const filters: FlowFilter[] = [];

  for (const pair of input.installed.pairs) {
    if (desired.pairs.some((d) => samePair(d, pair))) continue;
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
      if (!desired.pairs.some((d) => samePair(d, { ...listenerOf(filter), ip: filter.targetIp }))) kept.push(filter);
    } else {
      // Whatever part of the range is allowed again keeps its flows.
      for (const source of cidrDifference([filter.source], desired.sources)) kept.push({ kind: 'source', source, cause: 'source' });
    }
  }
  // The same flows found twice (a move the map and the kernel both show) are forgotten once, under the first cause.
  const once = new Map<string, FlowFilter>();
  for (const f of kept) {
    const flows = f.kind === 'source' ? f.source : `${f.listenAddress ?? ''}:${f.listenPort} ${f.targetIp}`;
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
