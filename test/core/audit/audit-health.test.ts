// The audit's health check and metrics: a log that may miss flows is a
// WARNING (reader not listening, events lost or the reader restarted within
// the hour, the file not writable, the sysctls not set), and the metric
// families carry entries and targets, never a client address.

import t from 'tap';
import { auditCheck, AUDIT_LOSS_WARN_MS, type AuditStatus } from '../../../src/core/audit/audit-health.js';
import { auditFamilies, countRecord, emptyAuditCounts } from '../../../src/core/audit/audit-metrics.js';
import { endRecordOf, gapRecordOf } from '../../../src/core/audit/record.js';
import { evaluateHealth, formatAge, WARNING, OK } from '../../../src/core/health/evaluate.js';
import { renderExposition } from '../../../src/core/metrics/exposition.js';
import type { StatusSnapshot } from '../../../src/core/daemon/status-snapshot.js';
import { readFileSync } from 'node:fs';

const NOW = Date.parse('2026-12-07T13:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const healthy: AuditStatus = { sink: '/var/log/cachenat/audit.jsonl', listening: true, filter: 'kernel', bufferBytes: 33554432, flowsLogged: 12, eventsLost: 0, readerRestarts: 0 };

t.test('states', async (t) => {
  t.same(auditCheck(NOW, healthy, formatAge), { state: 'ok', message: '12 flows logged to /var/log/cachenat/audit.jsonl, none lost in the last hour, connmark filter in the kernel' });
  const cases: [Partial<AuditStatus>, RegExp | undefined][] = [
    [{ listening: false, readerError: 'python3 is not installed (apt-get install python3, or dnf install python3)', downSince: ago(90_000) }, /conntrack event reader is not listening for 1m30s \(python3 is not installed.*\): flows that end now are not logged/],
    [{ eventsLost: 577, lastLossAt: ago(60_000) }, /577 conntrack events lost since start, the last 1m00s ago \(the reader fell behind\): the audit log misses those flows/],
    [{ eventsLost: 577, lastLossAt: ago(AUDIT_LOSS_WARN_MS + 1) }, undefined],
    [{ readerRestarts: 1, lastRestartAt: ago(5_000), readerError: 'killed by SIGKILL' }, /event reader was restarted 5s ago after it stopped \(killed by SIGKILL\): flows that ended meanwhile are missing/],
    [{ readerRestarts: 1, lastRestartAt: ago(AUDIT_LOSS_WARN_MS + 1) }, undefined],
    [{ writeError: 'ENOSPC: no space left on device' }, /cannot write the audit log \/var\/log\/cachenat\/audit.jsonl: ENOSPC/],
    [{ sysctlError: '/proc/sys/net/netfilter/nf_conntrack_acct does not exist' }, /audit lines may lack byte counts and start times/],
  ];
  for (const [change, expected] of cases) {
    const check = auditCheck(NOW, { ...healthy, ...change }, formatAge);
    if (expected === undefined) t.equal(check.state, 'ok', `${JSON.stringify(change)}: past the hour, OK again`);
    else {
      t.equal(check.state, 'warning', JSON.stringify(change));
      t.match(check.message, expected);
    }
  }
});

t.test('in the health verdict: a WARNING of its own, and nothing without the section', async (t) => {
  const snapshot: StatusSnapshot = {
    version: 1, pid: 1, startedAt: ago(60_000), lastPassAt: ago(1000), passes: 10, lastPassOk: true, lastSyncAt: ago(1000),
    discoveryIntervalMs: 30_000, dnsIntervalMs: 5_000, syncWarnIntervals: 3, syncCriticalIntervals: 10, degraded: false, forwards: [],
  };
  const base = { now: NOW, snapshotPath: '/run/cachenat/status.json', daemonAlive: true, ipForward: 1 as const, kernel: { readable: false as const, reason: 'not root' } };
  t.notOk(evaluateHealth({ ...base, snapshot }).checks.some((c) => c.name === 'audit'), 'audit off: no check');
  t.equal(evaluateHealth({ ...base, snapshot: { ...snapshot, audit: healthy } }).state, OK);
  const report = evaluateHealth({ ...base, snapshot: { ...snapshot, audit: { ...healthy, eventsLost: 3, lastLossAt: ago(1000) } } });
  t.equal(report.state, WARNING);
  t.match(report.summary, /^WARNING - 3 conntrack events lost since start/);
});

t.test('metrics: per entry and per target, never per client', async (t) => {
  const counts = emptyAuditCounts();
  const event = {
    kind: 'end' as const, id: 1, protocol: 6, tcpState: 'TIME_WAIT' as const,
    orig: { src: '198.51.100.27', dst: '10.0.0.5', sport: 40000, dport: 6379 }, reply: { src: '10.0.1.5', dst: '10.0.0.5', sport: 6379, dport: 40000 },
    counters: { origPackets: 5, origBytes: 1268, replyPackets: 5, replyBytes: 5268 }, mark: 0x1000000, startMs: undefined, stopMs: undefined, portid: 0, receivedMs: 1,
  };
  countRecord(counts, endRecordOf(event, { key: 'primary/orders', kind: 'primary', engine: 'redis', cache: 'orders' }, '198.51.100.0/24', 'closed'));
  countRecord(counts, endRecordOf(event, undefined, 'unlisted', 'target-moved'));
  countRecord(counts, gapRecordOf('overrun', NOW, { lost: 577 }));
  countRecord(counts, gapRecordOf('overrun', NOW));
  countRecord(counts, gapRecordOf('reader-restarted', NOW));
  const text = renderExposition(auditFamilies(counts, { listening: true }));
  t.match(text, /^cachenat_audit_source_connections_total\{source="198\.51\.100\.0\/24"\} 1$/m);
  t.match(text, /^cachenat_audit_source_bytes_total\{source="unlisted",direction="to_client"\} 5268$/m);
  t.match(text, /^cachenat_audit_target_connections_total\{target="unknown"\} 1$/m);
  t.match(text, /^cachenat_audit_target_bytes_total\{target="primary\/orders",direction="from_client"\} 1268$/m);
  t.match(text, /^cachenat_audit_flow_ends_total\{reason="target-moved"\} 1$/m);
  t.match(text, /^cachenat_audit_events_lost_total 578$/m, 'an overrun the reader could not count counts one');
  t.match(text, /^cachenat_audit_overruns_total 2$/m);
  t.match(text, /^cachenat_audit_reader_up 1$/m);
  t.notMatch(text, /198\.51\.100\.27|10\.0\.1\.5/, 'no client or target address in any label');
});

t.test('docs/audit.md names exactly the metrics the audit writes', async (t) => {
  const written = auditFamilies(emptyAuditCounts(), { listening: true }).map((f) => f.name).sort();
  const page = readFileSync(new URL('../../../docs/audit.md', import.meta.url), 'utf8');
  const named = [...new Set(page.match(/\bcachenat_audit_[a-z_]+/g) ?? [])].sort();
  t.same(named, written);
  t.ok(written.length >= 10, `${written.length} metrics`);
});
