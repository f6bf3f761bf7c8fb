import t from 'tap';
import type { StatusSnapshot } from '../../../src/core/daemon/status-snapshot.js';
import type { Forward } from '../../../src/core/model.js';
import { CRITICAL, evaluateHealth, formatAge, OK, renderHealthJson, renderHealthText, UNKNOWN, WARNING, type HealthInput } from '../../../src/core/health/evaluate.js';

const NOW = Date.parse('2025-01-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

const forward = (n: number, extra: Partial<Forward> = {}): Forward => ({
  key: `node/c1/000${n}`,
  kind: 'node',
  engine: 'redis',
  cacheClusterId: 'c1',
  cacheNodeId: `000${n}`,
  address: `c1-000${n}.cache.example`,
  targetIp: `10.0.0.${n}`,
  targetPort: 6379,
  listenPort: 6378 + n,
  state: 'active',
  ...extra,
});

const snapshot = (extra: Partial<StatusSnapshot> = {}): StatusSnapshot => ({
  version: 1,
  pid: 4242,
  startedAt: ago(3_600_000),
  lastPassAt: ago(2_000),
  passes: 700,
  lastPassOk: true,
  lastSyncAt: ago(12_000),
  discoveryIntervalMs: 30_000,
  dnsIntervalMs: 5_000,
  syncWarnIntervals: 3,
  syncCriticalIntervals: 10,
  degraded: false,
  ipForward: 1,
  rulesDigest: 'abc',
  forwards: [forward(1), forward(2), forward(3)],
  ...extra,
});

const input = (extra: Partial<HealthInput> = {}): HealthInput => ({
  now: NOW,
  snapshotPath: '/run/cachenat/status.json',
  snapshot: snapshot(),
  daemonAlive: true,
  ipForward: 1,
  kernel: { readable: true, digest: 'abc', ownedChains: 5, missingJumps: [] },
  ...extra,
});

const stateOf = (name: string, i: HealthInput) => evaluateHealth(i).checks.find((c) => c.name === name)?.state;

t.test('all well: OK with forwards and sync age on the first line', async (t) => {
  const report = evaluateHealth(input());
  t.equal(report.state, OK);
  t.equal(report.summary, 'OK - 3 forwards, last sync 12s ago | forwards=3 unresolved=0 sync_age=12s');
  t.same(report.checks.map((c) => c.state), [OK, OK, OK, OK, OK, OK]);
  const text = renderHealthText(report);
  t.match(text, /^OK - 3 forwards/);
  t.match(text, /\n\[OK\] rules: chains and jumps installed and match the last applied state\n/);
  const json = JSON.parse(renderHealthJson(report)) as { state: string; exitCode: number; forwards: number; checks: { state: string }[] };
  t.equal(json.state, 'OK');
  t.equal(json.exitCode, 0);
  t.equal(json.forwards, 3);
  t.equal(json.checks[0]!.state, 'OK');
});

t.test('no snapshot: CRITICAL, not running', async (t) => {
  const report = evaluateHealth(input({ snapshot: undefined, snapshotError: 'no status file at /run/cachenat/status.json' }));
  t.equal(report.state, CRITICAL);
  t.match(report.summary, /^CRITICAL - cachenat is not running or has not published its status \(no status file/);
  t.match(report.summary, /0 forwards, last sync never/);
});

t.test('daemon liveness', async (t) => {
  t.equal(stateOf('daemon', input({ daemonAlive: false })), CRITICAL);
  t.match(evaluateHealth(input({ daemonAlive: false })).summary, /pid 4242 .* is gone/);
  // stall threshold: 3 x dns interval + 30 s = 45 s
  t.equal(stateOf('daemon', input({ snapshot: snapshot({ lastPassAt: ago(44_000) }) })), OK);
  const stalled = evaluateHealth(input({ snapshot: snapshot({ lastPassAt: ago(46_000) }) }));
  t.equal(stalled.state, CRITICAL);
  t.match(stalled.summary, /loop stalled: last pass 46s ago/);
  t.equal(stateOf('daemon', input({ snapshot: snapshot({ startedAt: ago(5_000), lastPassAt: undefined }) })), WARNING, 'starting');
  t.equal(stateOf('daemon', input({ snapshot: snapshot({ startedAt: ago(60_000), lastPassAt: undefined }) })), CRITICAL, 'never finished a pass');
  t.equal(stateOf('daemon', input({ snapshot: snapshot({ degraded: true, degradedReason: 'API unreachable' }) })), WARNING);
  t.equal(stateOf('daemon', input({ snapshot: snapshot({ lastPassOk: false }) })), WARNING);
});

t.test('sync age against 3 and 10 intervals', async (t) => {
  t.equal(stateOf('sync', input({ snapshot: snapshot({ lastSyncAt: ago(90_000) }) })), OK);
  const warn = evaluateHealth(input({ snapshot: snapshot({ lastSyncAt: ago(91_000), lastSyncError: 'connect ECONNREFUSED 127.0.0.1:4566' }) }));
  t.equal(warn.state, WARNING);
  t.match(warn.summary, /^WARNING - last ElastiCache API sync 1m31s ago \(3\.0 intervals; warning past 3\) \(last error: connect ECONNREFUSED/);
  t.match(warn.summary, /3 forwards, last sync 1m31s ago/);
  const crit = evaluateHealth(input({ snapshot: snapshot({ lastSyncAt: ago(301_000) }) }));
  t.equal(crit.state, CRITICAL);
  t.match(crit.summary, /critical past 10/);
  t.equal(stateOf('sync', input({ snapshot: snapshot({ lastSyncAt: ago(91_000), syncWarnIntervals: 5 }) })), OK, 'configurable');
  t.equal(stateOf('sync', input({ snapshot: snapshot({ startedAt: ago(10_000), lastSyncAt: undefined }) })), OK, 'just started');
  t.equal(stateOf('sync', input({ snapshot: snapshot({ startedAt: ago(100_000), lastSyncAt: undefined }) })), WARNING);
  t.equal(stateOf('sync', input({ snapshot: snapshot({ startedAt: ago(400_000), lastSyncAt: undefined }) })), CRITICAL);
});

t.test('ip_forward', async (t) => {
  t.equal(stateOf('ip_forward', input({ ipForward: 0 })), CRITICAL);
  t.equal(stateOf('ip_forward', input({ ipForward: undefined })), OK, 'falls back to the snapshot');
  t.equal(stateOf('ip_forward', input({ ipForward: undefined, snapshot: snapshot({ ipForward: undefined }) })), UNKNOWN);
  t.equal(evaluateHealth(input({ ipForward: undefined, snapshot: snapshot({ ipForward: undefined }) })).state, UNKNOWN);
});

t.test('rules against the kernel', async (t) => {
  t.equal(stateOf('rules', input({ kernel: { readable: true, digest: 'other', ownedChains: 5, missingJumps: [] } })), WARNING);
  const jumps = evaluateHealth(input({ kernel: { readable: true, digest: 'abc', ownedChains: 5, missingJumps: ['PREROUTING -> CACHENAT-PREROUTING'] } }));
  t.equal(jumps.state, CRITICAL);
  t.match(jumps.summary, /PREROUTING -> CACHENAT-PREROUTING/);
  t.equal(stateOf('rules', input({ kernel: { readable: true, digest: 'x', ownedChains: 0, missingJumps: [] } })), CRITICAL);
  t.equal(stateOf('rules', input({ snapshot: snapshot({ rulesDigest: undefined }) })), OK);
  t.equal(stateOf('rules', input({ snapshot: snapshot({ lastKernelError: 'iptables-restore failed' }) })), WARNING);
});

t.test('unprivileged: no kernel read, said in the notes, verdict from the snapshot', async (t) => {
  const report = evaluateHealth(input({ kernel: { readable: false, reason: 'not root' } }));
  t.equal(report.state, OK);
  t.match(report.notes[0], /kernel rules not read \(not root\)/);
  t.match(renderHealthText(report), /\nnote: kernel rules not read/);
  t.equal(stateOf('rules', input({ kernel: { readable: false, reason: 'not root' }, snapshot: snapshot({ lastKernelError: 'boom' }) })), WARNING);
});

t.test('address mode: targets without an address of their own warn, counting one missing address per name', async (t) => {
  const own = (n: number) => forward(n, { listenAddress: `10.0.9.2${n}`, listenPort: 6379 });
  const fallback = (n: number, address = `c1-000${n}.cache.example`) => forward(n, { listenAddress: '10.0.9.21', listenPort: 6380 + n, fallback: true, address });
  t.equal(evaluateHealth(input({ snapshot: snapshot({ forwards: [own(1), own(2)] }) })).state, OK, 'every target has its address');
  const report = evaluateHealth(input({ snapshot: snapshot({ forwards: [own(1), fallback(2), fallback(3), fallback(4, 'c1-0003.cache.example')] }) }));
  t.equal(report.state, WARNING);
  t.match(report.checks.find((c) => c.name === 'addresses')?.message, /^2 listen addresses missing: node\/c1\/0002, node\/c1\/0003, node\/c1\/0004 listen in port mode on 10\.0\.9\.21; add secondary private IPs/);
});

t.test('unresolved targets warn', async (t) => {
  const s = snapshot({ forwards: [forward(1), forward(2, { state: 'unresolved', targetIp: undefined }), forward(3, { state: 'draining' })] });
  const report = evaluateHealth(input({ snapshot: s }));
  t.equal(report.state, WARNING);
  t.match(report.summary, /1 of 3 forwards \(1 draining\) unresolved \(DNS\): node\/c1\/0002/);
  t.equal(report.unresolved, 1);
  const many = snapshot({ forwards: Array.from({ length: 8 }, (_, i) => forward(i, { state: 'unresolved' })) });
  t.match(evaluateHealth(input({ snapshot: many })).summary, /and 3 more/);
  t.match(evaluateHealth(input({ snapshot: snapshot({ forwards: [forward(1)] }) })).summary, /1 forward, /);
});

t.test('targets without a port, and IPv6-only ones, warn and are named: not "check the VPC resolver"', async (t) => {
  const portless = evaluateHealth(input({ snapshot: snapshot({ withoutPort: ['node/c9/0001', 'node/c9/0002'] }) }));
  t.equal(portless.state, WARNING);
  t.match(portless.checks.find((c) => c.name === 'forwards')?.message, /^2 targets found no free port and are not forwarded: node\/c9\/0001, node\/c9\/0002; lower ports\.redis/);
  const v6 = evaluateHealth(input({ snapshot: snapshot({ forwards: [forward(1), forward(2, { state: 'unresolved', targetIp: undefined, ipv6Only: true }), forward(3, { state: 'unresolved', targetIp: undefined })] }) }));
  t.equal(v6.state, WARNING);
  t.equal(v6.checks.find((c) => c.name === 'forwards')?.message, '1 IPv6-only (AAAA, no A record), not served: node/c1/0002; cachenat forwards IPv4 only; 1 of 3 forwards unresolved (DNS): node/c1/0003');
});

t.test('probe results', async (t) => {
  const ok = { key: 'k', target: '10.0.0.1:6379', ok: true, ms: 1 };
  const bad = { key: 'k2', target: '10.0.0.2:6379', ok: false, error: 'ECONNREFUSED' };
  t.equal(stateOf('probe', input({ probes: [ok, ok] })), OK);
  t.equal(stateOf('probe', input({ probes: [ok, bad] })), WARNING);
  t.equal(stateOf('probe', input({ probes: [bad] })), CRITICAL);
  t.equal(stateOf('probe', input({ probes: [] })), OK);
  t.equal(stateOf('probe', input()), undefined, 'only with --probe');
  t.match(evaluateHealth(input({ probes: [bad] })).summary, /k2 10\.0\.0\.2:6379 \(ECONNREFUSED\)/);
});

t.test('formatAge', async (t) => {
  t.equal(formatAge(0), '0s');
  t.equal(formatAge(59_400), '59s');
  t.equal(formatAge(192_000), '3m12s');
  t.equal(formatAge(2 * 3_600_000 + 5 * 60_000), '2h05m');
  t.equal(formatAge(76 * 3_600_000), '3d04h');
});

t.test('a file that cannot be written: WARNING naming it, forwarding goes on', async (t) => {
  const report = evaluateHealth(input({ snapshot: snapshot({ diskErrors: ['cannot save the port map /var/lib/cachenat/ports.json: ENOSPC'] }) }));
  t.equal(report.state, WARNING);
  t.equal(stateOf('disk', input({ snapshot: snapshot({ diskErrors: ['x'] }) })), WARNING);
  t.match(report.summary, /^WARNING - cannot save the port map .*ENOSPC; forwarding continues/);
});

// ── HA pair ────────────────────────────────────────────────────────────────

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const haStatus = (extra: Partial<NonNullable<StatusSnapshot['ha']>> = {}): NonNullable<StatusSnapshot['ha']> => ({
  role: 'leader',
  roleSince: ago(3_600_000),
  group: 'prod-nat',
  leaseMs: 10_000,
  mayAllocate: true,
  instanceId: A,
  lease: { holder: A, term: 7, changedAt: ago(2000) },
  map: { version: 'v-12345678', term: 7, writer: A, entries: 12 },
  peers: [{ instanceId: B, role: 'standby', lastSeenAt: ago(3000) }],
  elasticIps: [{ allocationId: 'eipalloc-0123456789abcdef0', privateIp: '10.0.1.10', state: 'held', heldSince: ago(3_000_000) }],
  waiting: 0,
  misfits: [],
  ...extra,
});
const haCheckOf = (ha: NonNullable<StatusSnapshot['ha']>) => evaluateHealth(input({ snapshot: snapshot({ ha }) })).checks.find((c) => c.name === 'ha');

t.test('ha: no check without the section', async (t) => {
  t.equal(evaluateHealth(input()).checks.find((c) => c.name === 'ha'), undefined);
});

t.test('ha: a leader with its Elastic IP and a standby seen is OK, and says who is who', async (t) => {
  const check = haCheckOf(haStatus());
  t.equal(check?.state, OK);
  t.equal(check?.message, `leader ${A} (term 7) of prod-nat, lease renewed 2s ago; standby ${B} seen 3s ago; map term 7, 12 entries`);
  const standby = haCheckOf(haStatus({ role: 'standby', instanceId: B, peers: [{ instanceId: A, role: 'leader', lastSeenAt: ago(1000) }], elasticIps: [] }));
  t.equal(standby?.state, OK);
  t.match(standby?.message, new RegExp(`^standby ${B} of prod-nat, leader ${A} \\(term 7\\) renewed 2s ago`));
});

t.test('ha: the leader without its Elastic IP is CRITICAL until the association holds', async (t) => {
  const check = haCheckOf(haStatus({ elasticIps: [{ allocationId: 'eipalloc-0123456789abcdef0', privateIp: '10.0.1.10', state: 'failed', error: 'RequestLimitExceeded' }] }));
  t.equal(check?.state, CRITICAL);
  t.match(check?.message, /Elastic IP eipalloc-0123456789abcdef0 is not on this leader yet \(RequestLimitExceeded\): clients cannot reach the pair/);
  t.equal(haCheckOf(haStatus({ role: 'standby', elasticIps: [] }))?.state, OK, 'a standby holds no Elastic IP');
});

t.test('ha: DynamoDB unreachable is a WARNING naming the targets that wait', async (t) => {
  const check = haCheckOf(haStatus({ storeError: { error: 'connect ETIMEDOUT', since: ago(45_000) }, waiting: 2, mayAllocate: false }));
  t.equal(check?.state, WARNING);
  t.match(check?.message, /DynamoDB does not answer since 45s ago \(connect ETIMEDOUT\): forwarding goes on with the last map, no new allocations; 2 new targets wait for a port/);
});

t.test('ha: a leader with no standby seen for three leases is a WARNING (single point of failure); not right after taking over', async (t) => {
  const alone = haCheckOf(haStatus({ peers: [{ instanceId: B, role: 'standby', lastSeenAt: ago(31_000) }] }));
  t.equal(alone?.state, WARNING);
  t.match(alone?.message, /no standby seen for over 3 leases: this leader is a single point of failure/);
  t.equal(haCheckOf(haStatus({ peers: [{ instanceId: B, role: 'standby', lastSeenAt: ago(29_000) }] }))?.state, OK, 'seen within three leases');
  t.equal(haCheckOf(haStatus({ peers: [], roleSince: ago(20_000) }))?.state, OK, 'a new leader gets three leases to see its standby');
  t.equal(haCheckOf(haStatus({ peers: [], roleSince: ago(31_000) }))?.state, WARNING);
});

t.test('ha: map entries that do not fit this config are a WARNING; an unreadable identity too', async (t) => {
  t.match(haCheckOf(haStatus({ misfits: ['node/a/0001'] })), { state: WARNING, message: /1 map entries do not fit this instance's forward config \(node\/a\/0001\): the two instances' configs differ/ });
  t.match(haCheckOf(haStatus({ role: 'standby', elasticIps: [], identityError: 'IMDSv2 token: connect ECONNREFUSED' })), { state: WARNING, message: /cannot read this instance's identity \(IMDSv2\)/ });
});
