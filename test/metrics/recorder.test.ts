// The daemon's metrics shell: what it writes to metrics.textfile after a
// pass, what it hands to the status snapshot, and how it reports faults.

import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import type { PassReport } from '../../src/daemon/reconciler.js';
import type { Forward } from '../../src/core/model.js';
import { MetricsRecorder, hostMetricsEdges, type MetricsEdges } from '../../src/metrics/recorder.js';
import { ConntrackConnectionReader } from '../../src/metrics/conntrack-reader.js';
import { replaceTextfile } from '../../src/metrics/textfile.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import { scratchDir } from '../support/scratch.js';

const dir = scratchDir(t, 'metrics');
const textfile = join(dir, 'cachenat.prom');
const { config } = parseConfig(`aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\nmetrics: {textfile: ${textfile}}\n`, 'test');

const forward = (listenPort: number, key: string): Forward => ({ key, kind: 'node', engine: 'redis', address: 'x', targetPort: 6379, listenPort, state: 'active', targetIp: '10.0.1.1' });

function report(o: Partial<PassReport> & { packets?: [string, number][] } = {}): PassReport {
  return {
    plan: {
      forwards: [forward(6379, 'node/a/0001'), forward(6380, 'node/b/0001')],
      events: [],
      state: { version: 1, entries: [], released: [{ port: 6390, key: 'node/gone/0001', releasedAt: 0 }] },
      changes: { restore: null, chainsWritten: [], jumpsAdded: [], jumpsRemoved: 0, chainsDeleted: [], leftoversKept: [] },
      withoutPort: [],
    } as unknown as PassReport['plan'],
    discovery: { status: 'ok' },
    applied: false,
    durationMs: 12,
    dnatPackets: new Map(o.packets ?? [['6379 node/a/0001', 10], ['6380 node/b/0001', 0]]),
    flowsForgotten: { moved: 0, revoked: 0 },
    ...o,
  } as PassReport;
}

function recorder(overrides: Partial<MetricsEdges> = {}) {
  const warnings: string[] = [];
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void warnings.push(JSON.parse(line).msg) } });
  const edges: MetricsEdges = { ...hostMetricsEdges(logger), activeByDestination: async () => new Map([['10.0.0.5:6379', 2]]), now: () => 1_700_000_000_000, ...overrides };
  return { recorder: new MetricsRecorder(edges), warnings };
}

t.test('each pass replaces the textfile; connections per forward reach the file and the snapshot', async (t) => {
  const { recorder: r } = recorder();
  await r.afterPass({ config, report: report(), lastSyncAt: 1_700_000_000_000 });
  const connections = await r.afterPass({ config, report: report({ packets: [['6379 node/a/0001', 13], ['6380 node/b/0001', 0]] }), lastSyncAt: 1_700_000_000_000 });
  t.same(connections, [
    { listenPort: 6379, key: 'node/a/0001', active: 2, new: 3 },
    { listenPort: 6380, key: 'node/b/0001', active: 0, new: 0 },
  ]);
  const text = readFileSync(textfile, 'utf8');
  t.match(text, /^cachenat_forward_new_connections_total\{listen_port="6379",target="node\/a\/0001",engine="redis",kind="node"\} 3$/m);
  t.match(text, /^cachenat_forward_active_connections\{listen_port="6380",target="node\/b\/0001",engine="redis",kind="node"\} 0$/m);
  t.match(text, /^cachenat_ports_quarantined 1$/m);
  t.match(text, /^cachenat_passes_total\{outcome="ok"\} 2$/m);
  t.same(readdirSync(dir), ['cachenat.prom'], 'no temp file left behind');
});

t.test('API errors are counted by code; a pass that threw counts as failed', async (t) => {
  const { recorder: r } = recorder();
  const error = new DiscoveryError('throttled', 'Throttling', true);
  await r.afterPass({ config, report: report({ discovery: { status: 'failed', error } }), lastSyncAt: undefined });
  await r.afterPass({ config, report: undefined, latest: report(), lastSyncAt: undefined });
  const text = readFileSync(textfile, 'utf8');
  t.match(text, /^cachenat_forwards\{kind="node",engine="redis",state="active"\} 2$/m, 'a pass that threw still shows what the last one planned');
  t.match(text, /^cachenat_api_errors_total\{code="Throttling"\} 1$/m);
  t.match(text, /^cachenat_passes_total\{outcome="failed"\} 1$/m);
  // Never synced: a 0 that a stale-sync alert fires on, and the age counts from the start.
  t.match(text, /^cachenat_last_api_sync_time_seconds 0$/m, 'no sync yet: the sync time is 0, present from the first write');
  t.match(text, /^cachenat_api_sync_age_seconds 0$/m, 'and the age runs from the start (the fake clock has not moved)');
});

t.test('conntrack or the textfile failing is said once per episode; the snapshot shows connections as unknown', async (t) => {
  let conntrackFails = true;
  const { recorder: r, warnings } = recorder({
    activeByDestination: async () => {
      if (conntrackFails) throw Object.assign(new Error('conntrack: command not found'), { exitCode: 127 });
      return new Map();
    },
  });
  const unwritable = { ...config, metrics: { textfile: join(dir, 'missing-dir', 'cachenat.prom') } };
  const first = await r.afterPass({ config: unwritable, report: report(), lastSyncAt: undefined });
  await r.afterPass({ config: unwritable, report: report(), lastSyncAt: undefined });
  t.equal(first[0]!.active, undefined);
  t.equal(warnings.length, 2, `two faults, each said once: ${warnings.join(' | ')}`);
  t.match(warnings.join('\n'), /install conntrack/);
  t.match(warnings.join('\n'), /metrics\.textfile/);
  conntrackFails = false;
  await r.afterPass({ config: unwritable, report: report(), lastSyncAt: undefined });
  conntrackFails = true;
  await r.afterPass({ config: unwritable, report: report(), lastSyncAt: undefined });
  t.equal(warnings.length, 3, 'a new episode after recovery is said again');
});

t.test('metrics.textfile: none writes nothing', async (t) => {
  let writes = 0;
  const { recorder: r } = recorder({ writeTextfile: async () => void writes++ });
  const connections = await r.afterPass({ config: { ...config, metrics: { textfile: 'none' } }, report: report(), lastSyncAt: undefined });
  t.equal(writes, 0);
  t.equal(connections.length, 2, 'connections are still read for status');
});

t.test('the conntrack reader lists only flows with the connmark bit, and reports the tool failing', async (t) => {
  const calls: string[][] = [];
  const reader = new ConntrackConnectionReader(async (file, args) => {
    calls.push([file, ...args]);
    return { stdout: 'tcp 6 300 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=5 dport=6379 src=3.3.3.3 dst=1.1.1.1 sport=6379 dport=5 mark=16777216 use=1\n', stderr: '', exitCode: 0 };
  });
  t.same([...(await reader.activeByDestination(0x1000000))], [['2.2.2.2:6379', 1]]);
  t.same(calls, [['conntrack', '-L', '-p', 'tcp', '--mark', '0x1000000/0x1000000']]);
  const missing = new ConntrackConnectionReader(async () => ({ stdout: '', stderr: 'conntrack: command not found', exitCode: 127 }));
  const failure = await missing.activeByDestination(0x1000000).then(() => undefined, (err: { exitCode?: number }) => err);
  t.equal(failure?.exitCode, 127, 'a missing conntrack rejects with its exit code');
  await t.rejects(reader.activeByDestination(0), /invalid connmark/);
});

t.test('the textfile is world-readable for node_exporter even under the unit umask, and replaced whole', async (t) => {
  const target = join(scratchDir(t, 'textfile'), 'cachenat.prom');
  const previous = process.umask(0o027);
  try {
    await replaceTextfile(target, 'a 1\n');
    await replaceTextfile(target, 'b 2\n');
  } finally {
    process.umask(previous);
  }
  t.equal(readFileSync(target, 'utf8'), 'b 2\n');
  t.equal((statSync(target).mode & 0o777).toString(8), '644');
  t.same(readdirSync(dirname(target)), ['cachenat.prom'], 'no temp file left');
  await t.rejects(replaceTextfile(join(dirname(target), 'missing', 'x.prom'), ''), { code: 'ENOENT' });
});

t.test('open connections are counted on the first pass and on passes that ask the API; DNS-only passes reuse that count', async (t) => {
  let listings = 0;
  const { recorder: r } = recorder({ activeByDestination: async () => new Map([['10.0.0.5:6379', ++listings]]) });
  const dnsOnly = () => report({ discovery: { status: 'skipped' } });
  const active = async (pass: PassReport | undefined) => (await r.afterPass({ config, report: pass, latest: report(), lastSyncAt: undefined }))[0]!.active;
  t.equal(await active(dnsOnly()), 1, 'the first pass counts, whatever it is');
  t.equal(await active(dnsOnly()), 1, 'a DNS-only pass shows the last count');
  t.equal(await active(undefined), 1, 'so does a pass that threw');
  t.equal(await active(report()), 2, 'a pass that asked the API counts again');
  t.equal(await active(report({ discovery: { status: 'failed', error: new DiscoveryError('down', 'ECONNREFUSED', true) } })), 3, 'even when the API did not answer');
  t.equal(await active(dnsOnly()), 3);
  t.equal(listings, 3, 'conntrack -L ran three times in six passes');
});
