// What the daemon counts across passes, and the metric families it exposes.
// Pure: each pass's observation is folded into the state; the families are
// computed from the state and the pass's view of the forwards.

import type { Engine, FlowReason, Forward, ForwardState } from '../model.js';
import { TARGET_KINDS } from '../grammar.js';
import type { ForwardEvent } from '../planner/plan-forwards.js';
import type { MetricFamily, Sample } from './exposition.js';
import { emptyTotals, foldDnatPackets, forwardId, type DnatPackets, type NewConnectionTotals } from './rule-counters.js';
import { openConnectionsOf, type OpenConnections } from './conntrack-listing.js';
import type { HaStatus } from '../ha/ha-status.js';

/** Pass duration buckets in seconds, 1 ms to 16 s, as kube-proxy's sync histogram. */
export const PASS_DURATION_BOUNDS = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384] as const;

/** How a pass ended: `api_error` passes still kept forwarding (fail-static). */
export type PassOutcome = 'ok' | 'api_error' | 'kernel_error' | 'failed';
const OUTCOMES: readonly PassOutcome[] = ['ok', 'api_error', 'kernel_error', 'failed'];

/** API error codes come from the network: keep the label set small and printable. */
const MAX_API_ERROR_CODES = 20;
const API_ERROR_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

export interface PassObservation {
  outcome: PassOutcome;
  /** Absent for a pass that threw before it could report. */
  durationSeconds: number | undefined;
  /** The kernel was written (`ok`) or a write failed (`error`); absent when nothing needed writing. */
  kernelWrite?: 'ok' | 'error';
  /** The DNAT chain was rewritten this pass (its rule counters restart at zero). */
  dnatChainRewritten: boolean;
  apiErrorCode?: string;
  /** Epoch ms of the last complete API answer. */
  lastSyncAt?: number;
  events: readonly ForwardEvent[];
  /** The DNAT rules' packet counters as read this pass, when the pass got that far. */
  dnatPackets?: DnatPackets;
  /** Connections forgotten this pass (conntrack entries deleted), by reason. */
  flowsForgotten?: Readonly<Record<FlowReason, number>>;
}

export interface DaemonMetrics {
  startedAt: number;
  passes: Readonly<Record<PassOutcome, number>>;
  durationBuckets: readonly number[];
  durationSum: number;
  durationCount: number;
  kernelWrites: Readonly<Record<'ok' | 'error', number>>;
  apiErrors: ReadonlyMap<string, number>;
  dnsFailures: number;
  targetMoves: number;
  flowsForgotten: Readonly<Record<FlowReason, number>>;
  lastSyncAt?: number;
  newConnections: NewConnectionTotals;
  /** The DNAT chain was rewritten after the last counter read. */
  dnatRewrittenSinceRead: boolean;
}

export function initialMetrics(startedAt: number): DaemonMetrics {
  return {
    startedAt,
    passes: { ok: 0, api_error: 0, kernel_error: 0, failed: 0 },
    durationBuckets: PASS_DURATION_BOUNDS.map(() => 0),
    durationSum: 0,
    durationCount: 0,
    kernelWrites: { ok: 0, error: 0 },
    apiErrors: new Map(),
    dnsFailures: 0,
    targetMoves: 0,
    flowsForgotten: { moved: 0, revoked: 0 },
    newConnections: emptyTotals(),
    dnatRewrittenSinceRead: false,
  };
}

export function observePass(m: DaemonMetrics, o: PassObservation): DaemonMetrics {
  const apiErrors = new Map(m.apiErrors);
  if (o.apiErrorCode !== undefined) {
    let code = API_ERROR_CODE.test(o.apiErrorCode) ? o.apiErrorCode : 'invalid';
    if (!apiErrors.has(code) && apiErrors.size >= MAX_API_ERROR_CODES) code = 'other';
    apiErrors.set(code, (apiErrors.get(code) ?? 0) + 1);
  }
  const d = o.durationSeconds;
  const kernelWrites = { ...m.kernelWrites };
  if (o.kernelWrite) kernelWrites[o.kernelWrite]++;
  // Counters read this pass came before this pass's write.
  const newConnections = o.dnatPackets ? foldDnatPackets(m.newConnections, o.dnatPackets, m.dnatRewrittenSinceRead) : m.newConnections;
  const next: DaemonMetrics = {
    ...m,
    passes: { ...m.passes, [o.outcome]: m.passes[o.outcome] + 1 },
    durationBuckets: m.durationBuckets.map((n, i) => (d !== undefined && d <= PASS_DURATION_BOUNDS[i]! ? n + 1 : n)),
    durationSum: m.durationSum + (d ?? 0),
    durationCount: m.durationCount + (d === undefined ? 0 : 1),
    kernelWrites,
    apiErrors,
    dnsFailures: m.dnsFailures + o.events.filter((e) => e.type === 'resolve-failed').length,
    targetMoves: m.targetMoves + o.events.filter((e) => e.type === 'ip-changed').length,
    flowsForgotten: { moved: m.flowsForgotten.moved + (o.flowsForgotten?.moved ?? 0), revoked: m.flowsForgotten.revoked + (o.flowsForgotten?.revoked ?? 0) },
    newConnections,
    dnatRewrittenSinceRead: o.dnatPackets ? o.dnatChainRewritten : m.dnatRewrittenSinceRead || o.dnatChainRewritten,
  };
  if (o.lastSyncAt !== undefined) next.lastSyncAt = o.lastSyncAt;
  return next;
}

/** One forward's connections: open now (conntrack) and new since the daemon started (DNAT rule counter). */
export interface ForwardConnections {
  listenPort: number;
  key: string;
  /** Absent when conntrack could not be read. */
  active?: number;
  /** Absent while the forward has no rule in the kernel. */
  new?: number;
}

export function forwardConnections(forwards: readonly Forward[], m: DaemonMetrics, open: OpenConnections | undefined): ForwardConnections[] {
  const openOn = open ? openConnectionsOf(open) : undefined;
  return forwards.map((f) => {
    const c: ForwardConnections = { listenPort: f.listenPort, key: f.key };
    if (openOn) c.active = f.targetIp === undefined ? 0 : openOn(f);
    const total = m.newConnections.totals.get(forwardId(f.listenPort, f.key));
    if (total !== undefined) c.new = total;
    return c;
  });
}

export interface MetricsView {
  forwards: readonly Forward[];
  connections: readonly ForwardConnections[];
  /** Freed listeners no other target may have yet: ports, and in address mode addresses (ports.reuseAfter). */
  quarantinedPorts: number;
  /** Targets the API lists that found no free port. */
  withoutPort: number;
  /** Epoch ms the file is written. */
  now: number;
  /** HA pair: this instance's role, Elastic IPs, DynamoDB, peers. */
  ha?: HaStatus;
  /** The cachenat release and Node runtime, for cachenat_build_info ("unknown" when not given). */
  build?: { version: string; node: string };
}

const STATES: readonly ForwardState[] = ['active', 'draining', 'unresolved', 'refused'];
const seconds = (ms: number): number => ms / 1000;

export function metricFamilies(m: DaemonMetrics, view: MetricsView): MetricFamily[] {
  const engines = [...new Set<Engine>(['redis', 'valkey', 'memcached', ...view.forwards.map((f) => f.engine)])];
  const byGroup: Sample[] = [];
  for (const kind of TARGET_KINDS)
    for (const engine of engines)
      for (const state of STATES) {
        const value = view.forwards.filter((f) => f.kind === kind && f.engine === engine && f.state === state).length;
        byGroup.push({ labels: { kind, engine, state }, value });
      }
  const forwardLabels = new Map(
    view.forwards.map((f) => [
      f.key,
      { ...(f.listenAddress === undefined ? {} : { listen_address: f.listenAddress }), listen_port: String(f.listenPort), target: f.key, engine: f.engine, kind: f.kind },
    ]),
  );
  const perForward = (pick: (c: ForwardConnections) => number | undefined): Sample[] =>
    view.connections.flatMap((c) => {
      const value = pick(c);
      const labels = forwardLabels.get(c.key);
      return value === undefined || !labels ? [] : [{ labels, value }];
    });

  const families: MetricFamily[] = [
    { name: 'cachenat_build_info', help: 'Always 1; the labels say which cachenat release and Node runtime run.', type: 'gauge', samples: [{ labels: { version: view.build?.version ?? 'unknown', node: view.build?.node ?? 'unknown' }, value: 1 }] },
    { name: 'cachenat_start_time_seconds', help: 'When the daemon started (Unix time); counters restart from zero then.', type: 'gauge', samples: [{ value: seconds(m.startedAt) }] },
    { name: 'cachenat_last_write_time_seconds', help: 'When this file was written (Unix time): a stale value means the daemon stopped passing.', type: 'gauge', samples: [{ value: seconds(view.now) }] },
    { name: 'cachenat_forwards', help: 'Forwards by target kind, engine and state.', type: 'gauge', samples: byGroup },
    { name: 'cachenat_targets_unresolved', help: 'Targets whose endpoint name has not resolved for the whole removal grace: no rule, port kept.', type: 'gauge', samples: [{ value: view.forwards.filter((f) => f.state === 'unresolved').length }] },
    { name: 'cachenat_targets_aaaa_only', help: 'Targets whose endpoint name has only IPv6 addresses (AAAA records, no A): not served, cachenat forwards IPv4 only.', type: 'gauge', samples: [{ value: view.forwards.filter((f) => f.ipv6Only).length }] },
    { name: 'cachenat_targets_without_port', help: 'Targets the API lists that found no free port (ports.redis / ports.memcached up to 65535 all taken): not forwarded.', type: 'gauge', samples: [{ value: view.withoutPort }] },
    { name: 'cachenat_ports_quarantined', help: 'Freed listeners not yet given to another target (ports.reuseAfter): ports, and in address mode listen addresses.', type: 'gauge', samples: [{ value: view.quarantinedPorts }] },
    // Present from the first write: 0 until the first complete answer, so
    // `time() - cachenat_last_api_sync_time_seconds > N` fires for a daemon that
    // never synced (wrong region or role from boot) instead of matching nothing.
    { name: 'cachenat_last_api_sync_time_seconds', help: 'When the ElastiCache API last answered completely (Unix time); 0 before the first complete answer.', type: 'gauge', samples: [{ value: m.lastSyncAt === undefined ? 0 : seconds(m.lastSyncAt) }] },
    // The same as an age, for alarms that cannot subtract from the clock (CloudWatch).
    {
      name: 'cachenat_api_sync_age_seconds',
      help: 'Seconds since the ElastiCache API last answered completely (before the first answer: since the daemon started), as of this write.',
      type: 'gauge',
      samples: [{ value: seconds(view.now - (m.lastSyncAt ?? m.startedAt)) }],
    },
    {
      name: 'cachenat_pass_duration_seconds',
      help: 'Time one reconcile pass took: API (when due), DNS, kernel read, plan and write.',
      type: 'histogram',
      samples: [{ bounds: PASS_DURATION_BOUNDS, cumulative: m.durationBuckets, count: m.durationCount, sum: m.durationSum }],
    },
    { name: 'cachenat_passes_total', help: 'Reconcile passes by outcome (api_error: forwarding kept as it was).', type: 'counter', samples: OUTCOMES.map((outcome) => ({ labels: { outcome }, value: m.passes[outcome] })) },
    { name: 'cachenat_kernel_writes_total', help: 'iptables-restore calls by result.', type: 'counter', samples: (['ok', 'error'] as const).map((result) => ({ labels: { result }, value: m.kernelWrites[result] })) },
    { name: 'cachenat_api_errors_total', help: 'Failed ElastiCache API syncs by error code.', type: 'counter', samples: [...m.apiErrors].map(([code, value]) => ({ labels: { code }, value })) },
    { name: 'cachenat_dns_failures_total', help: 'Endpoint names that stopped resolving (once per failure episode per target).', type: 'counter', samples: [{ value: m.dnsFailures }] },
    { name: 'cachenat_target_moves_total', help: 'Target address changes followed (failovers, replaced nodes).', type: 'counter', samples: [{ value: m.targetMoves }] },
    {
      name: 'cachenat_flows_forgotten_total',
      help: 'Open connections cut (conntrack entries deleted): moved, their target changed address; revoked, the config or the API took their access away.',
      type: 'counter',
      samples: (['moved', 'revoked'] as const).map((reason) => ({ labels: { reason }, value: m.flowsForgotten[reason] })),
    },
    {
      name: 'cachenat_forward_active_connections',
      help: 'Open TCP connections through each forward (conntrack entries carrying the connmark, by original destination), counted every discovery.interval.',
      type: 'gauge',
      samples: perForward((c) => c.active),
    },
    {
      name: 'cachenat_forward_new_connections_total',
      help: "Connections each forward translated since the daemon started (its DNAT rule's packet counter).",
      type: 'counter',
      samples: perForward((c) => c.new),
    },
  ];
  if (view.ha) families.push(...haFamilies(view.ha, view.now));
  return families;
}

/** HA pair: what an alarm needs (no leader, Elastic IP not held, DynamoDB down, standby gone). */
function haFamilies(ha: HaStatus, now: number): MetricFamily[] {
  const group = { group: ha.group };
  const flag = (on: boolean): number => (on ? 1 : 0);
  return [
    { name: 'cachenat_ha_leader', help: 'This instance holds the lease with a confirmed renewal (1), or not (0: standby, starting, or a leader whose lease is not confirmed).', type: 'gauge', samples: [{ labels: group, value: flag(ha.role === 'leader') }] },
    { name: 'cachenat_ha_lease_unconfirmed', help: 'This instance held the lease but no renewal was accepted in time (1): it asserts nothing, and the standby may have taken over.', type: 'gauge', samples: [{ labels: group, value: flag(ha.role === 'leader-unconfirmed') }] },
    { name: 'cachenat_ha_may_allocate', help: 'This instance may allocate ports and write the shared map (a leader with a confirmed lease and DynamoDB answering).', type: 'gauge', samples: [{ labels: group, value: flag(ha.mayAllocate) }] },
    { name: 'cachenat_ha_dynamodb_up', help: 'DynamoDB answered this instance\'s last call (0: forwarding goes on with the last map).', type: 'gauge', samples: [{ labels: group, value: flag(ha.storeError === undefined) }] },
    {
      name: 'cachenat_ha_elastic_ip_held',
      help: 'On the leader with a confirmed lease: each Elastic IP points at this instance (1) or is being moved (0). No sample elsewhere.',
      type: 'gauge',
      samples: ha.elasticIps.map((e) => ({ labels: { ...group, allocation_id: e.allocationId }, value: flag(e.state === 'held') })),
    },
    {
      name: 'cachenat_ha_peer_seen_age_seconds',
      help: 'Seconds since each peer\'s heartbeat last changed, on this instance\'s clock.',
      type: 'gauge',
      samples: ha.peers.map((p) => ({ labels: { ...group, peer: p.instanceId, role: p.role }, value: Math.max(0, seconds(now - Date.parse(p.lastSeenAt))) })),
    },
    { name: 'cachenat_ha_waiting_targets', help: 'Targets the API lists that have no port yet because the map cannot be written (or, on the leader, has no room).', type: 'gauge', samples: [{ labels: group, value: Math.max(ha.waiting, ha.noRoom?.length ?? 0) }] },
  ];
}
