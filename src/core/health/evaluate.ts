// `cachenat health` verdict: pure. The shell (command.ts) gathers the facts —
// status snapshot, process liveness, /proc, the kernel's rules when it may read
// them, probe results — and this turns them into a Nagios-style answer.

import type { HaStatus, StatusSnapshot } from '../daemon/status-snapshot.js';
import { auditCheck } from '../audit/audit-health.js';
import { inboundInterfaces } from '../config/listen-addresses.js';

/** Nagios plugin states; the numbers are the exit codes. */
export const OK = 0;
export const WARNING = 1;
export const CRITICAL = 2;
export const UNKNOWN = 3;
export type State = typeof OK | typeof WARNING | typeof CRITICAL | typeof UNKNOWN;

export const STATE_NAMES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

// Which state wins when checks disagree: a known failure beats not knowing.
const SEVERITY: Record<State, number> = { [OK]: 0, [WARNING]: 1, [UNKNOWN]: 2, [CRITICAL]: 3 };

/** What the kernel holds, when health may read it (root). */
export type KernelView =
  | { readable: true; digest: string; ownedChains: number; missingJumps: string[] }
  | { readable: false; reason: string };

export interface ProbeResult {
  key: string;
  target: string; // ip:port
  ok: boolean;
  ms?: number;
  error?: string;
}

export interface HealthInput {
  now: number;
  snapshotPath: string;
  /** Undefined when the snapshot could not be read; snapshotError says why. */
  snapshot?: StatusSnapshot;
  snapshotError?: string;
  /** Whether the snapshot's pid is a live process. */
  daemonAlive: boolean;
  /** /proc/sys/net/ipv4/ip_forward as read now. */
  ipForward?: 0 | 1;
  kernel: KernelView;
  /** Only with --probe. */
  probes?: ProbeResult[];
  /** Things worth saying that are not a check (e.g. the config could not be read). */
  notes?: string[];
  /** The interfaces this host has now; undefined when they could not be listed. */
  interfaces?: readonly string[];
  /** This cachenat's version (the daemon's own is in its snapshot). */
  version?: string;
}

export interface CheckResult {
  name: 'daemon' | 'sync' | 'ip_forward' | 'rules' | 'interface' | 'forwards' | 'addresses' | 'ha' | 'audit' | 'disk' | 'warnings' | 'probe';
  state: State;
  message: string;
}

export interface HealthReport {
  state: State;
  /** The first output line, e.g. `OK - 3 forwards, last sync 12s ago`. */
  summary: string;
  checks: CheckResult[];
  notes: string[];
  forwards: number;
  unresolved: number;
  lastSyncAgeMs?: number;
  /** This cachenat's version, and the running daemon's when it says. */
  version?: string;
  daemonVersion?: string;
}

/** A loop that has not finished a pass in this long is wedged (the unit's watchdog should catch it first). */
export const stallAfterMs = (dnsIntervalMs: number): number => 3 * dnsIntervalMs + 30_000;

export function evaluateHealth(input: HealthInput): HealthReport {
  const notes = [...(input.notes ?? [])];
  const snapshot = input.snapshot;
  if (!snapshot) {
    const check: CheckResult = {
      name: 'daemon',
      state: CRITICAL,
      message: `cachenat is not running or has not published its status (${input.snapshotError ?? `no ${input.snapshotPath}`}); see systemctl status cachenat`,
    };
    return { ...finish([check, ipForwardCheck(input.ipForward)], notes, { forwards: 0, unresolved: 0 }), ...versions(input) };
  }

  const checks: CheckResult[] = [daemonCheck(input, snapshot)];
  const sync = syncCheck(input.now, snapshot);
  checks.push(sync.check);
  checks.push(ipForwardCheck(input.ipForward ?? snapshot.ipForward));
  checks.push(rulesCheck(input.kernel, snapshot, notes));
  const inbound = interfaceCheck(snapshot, input.interfaces);
  if (inbound) checks.push(inbound);
  const unresolved = snapshot.forwards.filter((f) => f.state === 'unresolved');
  checks.push(forwardsCheck(snapshot, unresolved.map((f) => f.key)));
  const addresses = addressesCheck(snapshot);
  if (addresses) checks.push(addresses);
  if (snapshot.ha) checks.push(haCheck(input.now, snapshot.ha));
  if (snapshot.audit) {
    const audit = auditCheck(input.now, snapshot.audit, formatAge);
    checks.push({ name: 'audit', state: audit.state === 'ok' ? OK : WARNING, message: audit.message });
  }
  checks.push(diskCheck(snapshot));
  if (snapshot.warnings !== undefined && snapshot.warnings.length > 0) {
    checks.push({ name: 'warnings', state: WARNING, message: snapshot.warnings.join('; ') });
  }
  if (input.probes) checks.push(probeCheck(input.probes));
  return { ...finish(checks, notes, { forwards: snapshot.forwards.length, unresolved: unresolved.length, lastSyncAgeMs: sync.ageMs }), ...versions(input, snapshot) };
}

const versions = (input: HealthInput, snapshot?: StatusSnapshot) => ({
  ...(input.version !== undefined ? { version: input.version } : {}),
  ...(snapshot?.cachenatVersion !== undefined ? { daemonVersion: snapshot.cachenatVersion } : {}),
});

/** The interface clients arrive on must still be there: DNAT on an interface that is gone matches nothing. */
function interfaceCheck(s: StatusSnapshot, interfaces: readonly string[] | undefined): CheckResult | undefined {
  const pattern = s.inboundInterface;
  if (pattern === undefined || interfaces === undefined) return undefined;
  const matched = inboundInterfaces(pattern, Object.fromEntries(interfaces.map((name) => [name, []])));
  if (matched.length > 0) return { name: 'interface', state: OK, message: `clients arrive on ${matched.join(', ')}` };
  return {
    name: 'interface',
    state: CRITICAL,
    message: `forward.inboundInterface ${pattern} is gone from this host (it has ${[...interfaces].sort().join(', ') || 'none'}): nothing arrives to be forwarded. Bring it back, or set forward.inboundInterface (auto finds the primary interface) and systemctl reload cachenat`,
  };
}

function finish(checks: CheckResult[], notes: string[], counts: { forwards: number; unresolved: number; lastSyncAgeMs?: number }): HealthReport {
  const state = checks.reduce<State>((worst, c) => (SEVERITY[c.state] > SEVERITY[worst] ? c.state : worst), OK);
  const essentials = `${counts.forwards} forward${counts.forwards === 1 ? '' : 's'}, last sync ${counts.lastSyncAgeMs === undefined ? 'never' : `${formatAge(counts.lastSyncAgeMs)} ago`}`;
  const problems = checks.filter((c) => c.state !== OK).map((c) => c.message);
  const perf = `forwards=${counts.forwards} unresolved=${counts.unresolved}${counts.lastSyncAgeMs === undefined ? '' : ` sync_age=${Math.round(counts.lastSyncAgeMs / 1000)}s`}`;
  const summary = `${STATE_NAMES[state]} - ${[...problems, essentials].join('; ')} | ${perf}`;
  return { state, summary, checks, notes, ...counts };
}

function daemonCheck(input: HealthInput, s: StatusSnapshot): CheckResult {
  if (!input.daemonAlive) {
    return { name: 'daemon', state: CRITICAL, message: `cachenat is not running (pid ${s.pid} from ${input.snapshotPath} is gone); see systemctl status cachenat` };
  }
  const stall = stallAfterMs(s.dnsIntervalMs);
  const lastPass = s.lastPassAt ? Date.parse(s.lastPassAt) : undefined;
  const since = input.now - (lastPass ?? Date.parse(s.startedAt));
  if (since > stall) {
    const what = lastPass === undefined ? `no pass finished since start ${formatAge(since)} ago` : `last pass ${formatAge(since)} ago`;
    return { name: 'daemon', state: CRITICAL, message: `loop stalled: ${what} (pid ${s.pid}); the watchdog should restart it, else systemctl restart cachenat` };
  }
  if (lastPass === undefined) return { name: 'daemon', state: WARNING, message: `starting: pid ${s.pid} has not finished its first pass` };
  const degraded = s.degraded ? `, degraded: ${s.degradedReason ?? 'unknown reason'}` : '';
  const passState = s.lastPassOk ? '' : ', last pass failed';
  return {
    name: 'daemon',
    state: s.degraded || !s.lastPassOk ? WARNING : OK,
    message: `running (pid ${s.pid}), last pass ${formatAge(Math.max(0, since))} ago${passState}${degraded}`,
  };
}

function syncCheck(now: number, s: StatusSnapshot): { check: CheckResult; ageMs?: number } {
  const warnMs = s.syncWarnIntervals * s.discoveryIntervalMs;
  const critMs = s.syncCriticalIntervals * s.discoveryIntervalMs;
  const error = s.lastSyncError ? ` (last error: ${s.lastSyncError})` : '';
  if (!s.lastSyncAt) {
    const since = now - Date.parse(s.startedAt);
    const state = since > critMs ? CRITICAL : since > warnMs ? WARNING : OK;
    return { check: { name: 'sync', state, message: `no successful ElastiCache API sync since start ${formatAge(since)} ago${error}` } };
  }
  const ageMs = Math.max(0, now - Date.parse(s.lastSyncAt));
  const intervals = ageMs / s.discoveryIntervalMs;
  const state = ageMs > critMs ? CRITICAL : ageMs > warnMs ? WARNING : OK;
  const message =
    state === OK
      ? `last ElastiCache API sync ${formatAge(ageMs)} ago`
      : `last ElastiCache API sync ${formatAge(ageMs)} ago (${intervals.toFixed(1)} intervals; ${state === CRITICAL ? 'critical' : 'warning'} past ${state === CRITICAL ? s.syncCriticalIntervals : s.syncWarnIntervals})${error}; forwards stay as last known`;
  return { check: { name: 'sync', state, message }, ageMs };
}

function ipForwardCheck(value: 0 | 1 | undefined): CheckResult {
  if (value === 1) return { name: 'ip_forward', state: OK, message: 'net.ipv4.ip_forward is 1' };
  if (value === 0) return { name: 'ip_forward', state: CRITICAL, message: 'net.ipv4.ip_forward is 0: forwarded packets are dropped; set ipForward: enable or sysctl -w net.ipv4.ip_forward=1' };
  return { name: 'ip_forward', state: UNKNOWN, message: 'net.ipv4.ip_forward could not be read' };
}

function rulesCheck(kernel: KernelView, s: StatusSnapshot, notes: string[]): CheckResult {
  const kernelError = s.lastKernelError ? `last kernel write failed: ${s.lastKernelError}` : undefined;
  if (!kernel.readable) {
    notes.push(`kernel rules not read (${kernel.reason}); the verdict on rules rests on the daemon's snapshot — run as root for a full check`);
    if (kernelError) return { name: 'rules', state: WARNING, message: kernelError };
    return { name: 'rules', state: OK, message: 'rules as last applied by the daemon (from its snapshot)' };
  }
  if (kernel.missingJumps.length > 0) {
    return { name: 'rules', state: CRITICAL, message: `jumps into cachenat's chains missing: ${kernel.missingJumps.join(', ')}; the next pass restores them` };
  }
  if (s.forwards.some((f) => f.targetIp) && kernel.ownedChains === 0) {
    return { name: 'rules', state: CRITICAL, message: "cachenat's chains are not installed; the next pass restores them" };
  }
  if (s.rulesDigest !== undefined && kernel.digest !== s.rulesDigest) {
    return { name: 'rules', state: WARNING, message: "cachenat's chains differ from what the daemon last applied (changed by someone else?); the next pass rewrites them" };
  }
  if (kernelError) return { name: 'rules', state: WARNING, message: kernelError };
  return { name: 'rules', state: OK, message: s.rulesDigest === undefined ? 'chains and jumps installed (nothing applied yet to compare with)' : 'chains and jumps installed and match the last applied state' };
}

function forwardsCheck(s: StatusSnapshot, unresolved: string[]): CheckResult {
  const draining = s.forwards.filter((f) => f.state === 'draining').length;
  const counts = `${s.forwards.length} forward${s.forwards.length === 1 ? '' : 's'}${draining ? ` (${draining} draining)` : ''}`;
  const ipv6Only = s.forwards.filter((f) => f.ipv6Only).map((f) => f.key);
  const dns = unresolved.filter((key) => !ipv6Only.includes(key));
  const problems = [
    ...(s.withoutPort?.length ? [`${s.withoutPort.length} target${s.withoutPort.length === 1 ? '' : 's'} found no free port and ${s.withoutPort.length === 1 ? 'is' : 'are'} not forwarded: ${listSome(s.withoutPort)}; lower ports.redis / ports.memcached or exclude clusters`] : []),
    ...(ipv6Only.length ? [`${ipv6Only.length} IPv6-only (AAAA, no A record), not served: ${listSome(ipv6Only)}; cachenat forwards IPv4 only`] : []),
    ...(dns.length ? [`${dns.length} of ${counts} unresolved (DNS): ${listSome(dns)}`] : []),
  ];
  if (problems.length > 0) return { name: 'forwards', state: WARNING, message: problems.join('; ') };
  return { name: 'forwards', state: OK, message: `${counts}, every target resolved` };
}

/** Address mode only: targets that found no listen address of their own are reachable by port, not by name. */
function addressesCheck(s: StatusSnapshot): CheckResult | undefined {
  const fallbacks = s.forwards.filter((f) => f.fallback === true);
  if (fallbacks.length === 0) return undefined;
  // Targets of one DNS name share an address: one missing address per name.
  const missing = new Set(fallbacks.map((f) => f.address)).size;
  return {
    name: 'addresses',
    state: WARNING,
    message: `${missing} listen address${missing === 1 ? '' : 'es'} missing: ${listSome(fallbacks.map((f) => f.key))} listen in port mode on ${fallbacks[0]!.listenAddress ?? 'the first address'}; add secondary private IPs with Elastic IPs to forward.listenAddresses`,
  };
}

/** A leader that has not seen a standby's heartbeat change for this many leases is alone. */
export const PEER_MISSING_LEASES = 3;

/** The shared map's fullest chunk at this share of its room: a WARNING, before new targets start to wait. */
export const MAP_ROOM_WARN = 0.8;

/** Whether a leader's hold is not confirmed at `now`: it says so, or the snapshot is older than its confirmation. */
const unconfirmed = (now: number, ha: HaStatus): boolean => ha.role === 'leader-unconfirmed' || (ha.role === 'leader' && ha.hold !== undefined && now >= Date.parse(ha.hold.confirmedUntil));

/** One line on the pair, for `health` and `status`: role, leader, peers, the map. */
export function describeHa(now: number, ha: HaStatus): string {
  const age = (iso: string): string => formatAge(Math.max(0, now - Date.parse(iso)));
  const term = ha.lease?.term === undefined ? '' : ` (term ${ha.lease.term})`;
  const self = ha.instanceId ? ` ${ha.instanceId}` : '';
  const role =
    ha.role === 'leader' && !unconfirmed(now, ha)
      ? `leader${self}${term} of ${ha.group}, lease renewed ${ha.lease ? age(ha.lease.changedAt) : '?'} ago`
      : ha.role === 'leader' || ha.role === 'leader-unconfirmed'
        ? `leader without a confirmed lease${self}${term} of ${ha.group}, last confirmed ${ha.hold ? age(ha.hold.confirmedAt) : '?'} ago`
        : ha.role === 'standby'
          ? `standby${self} of ${ha.group}, ${ha.lease?.holder ? `leader ${ha.lease.holder}${term} renewed ${age(ha.lease.changedAt)} ago` : 'no leader'}`
          : `starting (${ha.group})`;
  return [
    role,
    ...ha.peers.map((p) => `${p.role} ${p.instanceId} seen ${age(p.lastSeenAt)} ago`),
    ...(ha.map ? [`map term ${ha.map.term}, ${ha.map.entries} entries${ha.map.room === undefined ? '' : `, ${Math.round(ha.map.room * 100)}% full`}`] : []),
  ].join('; ');
}

/** HA pair: the role, the hold, the Elastic IP(s) on the leader, DynamoDB, the peer and its config, the map's room. */
export function haCheck(now: number, ha: HaStatus): CheckResult {
  const age = (iso: string): string => formatAge(Math.max(0, now - Date.parse(iso)));
  const facts = describeHa(now, ha);
  const critical: string[] = [];
  const warnings: string[] = [];
  const lapsed = unconfirmed(now, ha);
  if (lapsed) {
    // The one place a leader learns the standby may lead: say what is true, and what to check on this instance.
    const since = ha.hold ? now - Date.parse(ha.hold.confirmedAt) : Infinity;
    const why = ha.storeError ? `this instance cannot reach DynamoDB (${ha.storeError.error})` : 'no renewal was accepted in time (DynamoDB slow, or this host was paused or suspended)';
    const waiting = ha.waiting > 0 ? `; ${ha.waiting === 1 ? '1 new target waits' : `${ha.waiting} new targets wait`} for a port` : '';
    const text = `this leader's lease has not been confirmed for ${ha.hold ? age(ha.hold.confirmedAt) : 'a while'}: ${why}; the standby may have taken over and moved the Elastic IP. This instance allocates nothing and asserts no Elastic IP until a renewal is accepted; check its route to DynamoDB (VPC endpoint and its policy, security group, network ACL)${waiting}`;
    (since >= ha.leaseMs ? critical : warnings).push(text);
  } else if (ha.role === 'leader') {
    for (const e of ha.elasticIps.filter((e) => e.state !== 'held')) {
      critical.push(`Elastic IP ${e.allocationId} is not on this leader yet${e.error ? ` (${e.error})` : ''}: clients cannot reach the pair until it is; retrying`);
    }
    const standbySeen = ha.peers.some((p) => p.role === 'standby' && now - Date.parse(p.lastSeenAt) <= PEER_MISSING_LEASES * ha.leaseMs);
    if (!standbySeen && now - Date.parse(ha.roleSince) > PEER_MISSING_LEASES * ha.leaseMs) {
      warnings.push(`no standby seen for over ${PEER_MISSING_LEASES} leases: this leader is a single point of failure; start cachenat on the second instance`);
    }
  }
  if (ha.identityError) warnings.push(`cannot read this instance's identity (IMDSv2): ${ha.identityError}; it cannot take over`);
  if (ha.storeError && !lapsed) {
    const waiting = ha.waiting > 0 ? `; ${ha.waiting === 1 ? '1 new target waits' : `${ha.waiting} new targets wait`} for a port` : '';
    warnings.push(`DynamoDB does not answer since ${age(ha.storeError.since)} ago (${ha.storeError.error}): forwarding goes on with the last map, no new allocations${waiting}`);
  }
  if (ha.configDiffers) {
    warnings.push(`this instance's config differs from its running peer ${ha.configDiffers.peer}'s in ${ha.configDiffers.keys.join(', ')}: until they agree a free lease goes only to the instance the shared map was written under (else the lower instance id); give both instances the same values`);
  }
  if (ha.noRoom && ha.noRoom.length > 0) warnings.push(`${ha.noRoom.length === 1 ? '1 new target waits' : `${ha.noRoom.length} new targets wait`} for room in the shared map (${listSome(ha.noRoom)})`);
  if (ha.map?.room !== undefined && ha.map.room >= MAP_ROOM_WARN) warnings.push(`the shared map is ${Math.round(ha.map.room * 100)}% full (its fullest chunk): past 100% new targets wait for room`);
  if (ha.misfits.length > 0) warnings.push(`${ha.misfits.length} map entries do not fit this instance's forward config (${listSome(ha.misfits)}): the two instances' configs differ`);
  const problems = [...critical, ...warnings];
  const state = critical.length > 0 ? CRITICAL : warnings.length > 0 ? WARNING : OK;
  return { name: 'ha', state, message: problems.length > 0 ? `${problems.join('; ')} (${facts})` : facts };
}

function probeCheck(probes: ProbeResult[]): CheckResult {
  const failed = probes.filter((p) => !p.ok);
  if (probes.length === 0) return { name: 'probe', state: OK, message: 'no targets to probe' };
  if (failed.length === 0) return { name: 'probe', state: OK, message: `TCP connect to all ${probes.length} targets succeeded` };
  const list = listSome(failed.map((p) => `${p.key} ${p.target}${p.error ? ` (${p.error})` : ''}`));
  return {
    name: 'probe',
    state: failed.length === probes.length ? CRITICAL : WARNING,
    message: `TCP connect failed to ${failed.length} of ${probes.length} targets: ${list}; check the cache security group allows this host`,
  };
}

const listSome = (items: string[], max = 5): string => (items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`);

/** 45s, 3m12s, 2h05m, 3d04h. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Text output: the summary line, then one line per check and note. */
export function renderHealthText(report: HealthReport): string {
  const lines = [report.summary];
  for (const c of report.checks) lines.push(`[${STATE_NAMES[c.state]}] ${c.name}: ${c.message}`);
  for (const n of report.notes) lines.push(`note: ${n}`);
  return lines.join('\n') + '\n';
}

export function renderHealthJson(report: HealthReport): string {
  const { state, checks, ...rest } = report;
  const named = checks.map((c) => ({ ...c, state: STATE_NAMES[c.state] }));
  return JSON.stringify({ state: STATE_NAMES[state], exitCode: state, ...rest, checks: named }, null, 2) + '\n';
}

function diskCheck(s: StatusSnapshot): CheckResult {
  const errors = s.diskErrors ?? [];
  if (errors.length === 0) return { name: 'disk', state: OK, message: 'port map and persisted rules saved' };
  return { name: 'disk', state: WARNING, message: `${errors.join('; ')}; forwarding continues, but a restart or reboot may lose what was not saved: check the disk and state.dir` };
}
