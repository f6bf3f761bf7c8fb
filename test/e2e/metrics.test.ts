// Metrics for real: client traffic through the lab's NAT namespace shows up
// per forward in the textfile (open connections from conntrack, new ones from
// the DNAT rules' counters), moves and API errors are counted, and Debian's
// node_exporter serves the file.

import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { NAME, startRig, waitFor } from '../../lab/rig.js';
import type { LabProcess } from '../../lab/process.js';

/** Debian's package puts the binary here (and on PATH). */
const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

interface ParsedFamily {
  name: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

const textDir = mkdtempSync(join(tmpdir(), 'cachenat-textfile-'));
const textfile = join(textDir, 'cachenat.prom');
t.teardown(() => rmSync(textDir, { recursive: true, force: true }));

function readMetrics(): Map<string, ParsedFamily> {
  const text = readFileSync(textfile, 'utf8');
  return new Map((parsePrometheusTextFormat(text) as ParsedFamily[]).map((f) => [f.name, f]));
}

/** A family's samples by listen port, e.g. { '6379': 3 }. */
function perForward(name: string): Record<string, number> {
  const family = readMetrics().get(name);
  return Object.fromEntries((family?.metrics ?? []).map((s) => [s.labels!.listen_port!, Number(s.value)]));
}

const single = (name: string, labels: Record<string, string> = {}): number | undefined => {
  const sample = readMetrics().get(name)?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return sample === undefined ? undefined : Number(sample.value);
};

// Opens N connections per port and holds them until killed.
const HOLD_SCRIPT = `
const net = require('node:net');
const [host, ...specs] = process.argv.slice(1);
let open = 0, want = 0;
for (const spec of specs) {
  const [port, n] = spec.split(':').map(Number);
  want += n;
  for (let i = 0; i < n; i++) {
    const socket = net.connect(port, host, () => { if (++open === want) console.log('held ' + open); });
    socket.on('error', (e) => { console.error(e.message); process.exit(1); });
  }
}
setInterval(() => {}, 1 << 30);
`;

t.test('metrics in the lab', async (t) => {
  const rig = await startRig({ settings: { extra: `metrics:\n  textfile: ${textfile}\n` } });
  t.teardown(() => rig.down());
  const { lab } = rig;
  await rig.start();
  const ports = await waitFor('all 8 forwards active', async () => {
    const s = await rig.status();
    return s.forwards.length === 8 && s.forwards.every((f) => f.state === 'active') ? s.forwards.map((f) => f.listenPort) : undefined;
  });

  let holder: LabProcess | undefined;
  t.teardown(() => holder?.stop());

  await t.test('traffic through two forwards: exact open and new counts there, zero on every other', async (t) => {
    holder = lab.spawnIn(lab.ns.client, process.execPath, ['-e', HOLD_SCRIPT, lab.addr.natExt, '6379:3', '11211:2'], { label: 'connection holder' });
    await holder.waitForLine(/^held 5$/, 10_000);
    t.equal(await rig.probe('client', 6379), 'redis-11');
    t.equal(await rig.probe('client', 6379), 'redis-11');
    t.equal(await rig.probe('client', 11211), 'memc-21');
    const expectedActive = Object.fromEntries(ports.map((p) => [String(p), p === 6379 ? 3 : p === 11211 ? 2 : 0]));
    const expectedNew = Object.fromEntries(ports.map((p) => [String(p), p === 6379 ? 5 : p === 11211 ? 3 : 0]));
    // Closed probe connections leave conntrack's open states within a few passes (500 ms each).
    const seen = await waitFor('the textfile to show the traffic', () => {
      const now = { active: perForward('cachenat_forward_active_connections'), new: perForward('cachenat_forward_new_connections_total') };
      return JSON.stringify(now) === JSON.stringify({ active: expectedActive, new: expectedNew }) ? now : undefined;
    }, 20_000).catch((err: Error) => {
      t.fail(`${err.message}; file now: active ${JSON.stringify(perForward('cachenat_forward_active_connections'))}, new ${JSON.stringify(perForward('cachenat_forward_new_connections_total'))}`);
      return undefined;
    });
    t.ok(seen, 'active: 6379 → 3, 11211 → 2; new: 6379 → 5, 11211 → 3; all others 0');
    const labels = readMetrics().get('cachenat_forward_new_connections_total')!.metrics.find((s) => s.labels!.listen_port === '6379')!.labels;
    t.same(labels, { listen_port: '6379', target: 'primary/orders', engine: 'redis', kind: 'primary' });

    const status = (await rig.status()) as unknown as { forwards: { listenPort: number; activeConnections?: number; newConnections?: number }[] };
    const primary = status.forwards.find((f) => f.listenPort === 6379)!;
    t.same([primary.activeConnections, primary.newConnections], [3, 5], 'status --json carries the same figures');
    const table = await rig.cli(['status']);
    t.match(table.stdout, /CONNS OPEN\/NEW/);
    t.match(table.stdout, /^6379 .* 3\/5 /m, 'the status table shows open/new for the primary');
  });

  await t.test('a failover raises the move counter; new connections carry across the rule rewrite', async (t) => {
    const movesBefore = single('cachenat_target_moves_total')!;
    const newBefore = perForward('cachenat_forward_new_connections_total')['6379']!;
    lab.setHost(NAME.primary, '198.19.0.12');
    await waitFor('primary port reaches the promoted replica', async () => (await rig.probe('client', 6379)) === 'redis-12');
    const after = await waitFor('moves counted', () => {
      const moves = single('cachenat_target_moves_total')!;
      return moves > movesBefore ? moves : undefined;
    });
    t.ok(after > movesBefore, `cachenat_target_moves_total ${movesBefore} → ${after}`);
    // Every probe that succeeded after the move went through the rewritten rule; some may have failed while it moved.
    const newAfter = await waitFor('the new rule counted', () => {
      const n = perForward('cachenat_forward_new_connections_total')['6379']!;
      return n > newBefore ? n : undefined;
    });
    t.ok(newAfter > newBefore, `new connections on 6379 kept counting across the chain rewrite: ${newBefore} → ${newAfter}`);
  });

  await t.test('with the API faulted, the error counter rises with its code', async (t) => {
    t.equal(single('cachenat_api_errors_total', { code: 'AccessDenied' }), undefined, 'no such error yet');
    await rig.setFault('access-denied');
    const errors = await waitFor('AccessDenied counted', () => single('cachenat_api_errors_total', { code: 'AccessDenied' }));
    t.ok(errors >= 1);
    t.ok(single('cachenat_passes_total', { outcome: 'api_error' })! >= 1, 'passes on remembered state count as api_error');
    await rig.setFault('none');
    const syncBefore = single('cachenat_last_api_sync_time_seconds')!;
    await waitFor('a sync after the fault cleared', () => single('cachenat_last_api_sync_time_seconds')! > syncBefore, 30_000);
  });

  const exporterMissing = existsSync(NODE_EXPORTER) ? false : `${NODE_EXPORTER} is not installed (scripts/ensure-system.sh --for-tests installs it)`;
  await t.test("Debian's node_exporter serves the file on loopback in the NAT namespace", { skip: exporterMissing }, async (t) => {
    const exporter = lab.spawnIn(lab.ns.nat, NODE_EXPORTER, ['--web.listen-address=127.0.0.1:9100', `--collector.textfile.directory=${textDir}`, '--collector.disable-defaults', '--collector.textfile'], { label: 'node_exporter' });
    t.teardown(() => exporter.stop());
    await exporter.waitForLine(/Listening on/, 10_000);
    const script = 'fetch(process.argv[1]).then(async (r) => { console.log(await r.text()); process.exit(r.ok ? 0 : 1); }, (e) => { console.error(e.message); process.exit(1); })';
    const scraped = await waitFor('node_exporter to answer', async () => {
      const r = await lab.exec(lab.ns.nat, process.execPath, ['-e', script, 'http://127.0.0.1:9100/metrics'], { reject: false });
      return r.exitCode === 0 ? r.stdout : undefined;
    }, 10_000);
    t.match(scraped, /^node_textfile_scrape_error 0$/m, 'the collector accepted the file');
    t.match(scraped, /^cachenat_forward_new_connections_total\{engine="redis",kind="primary",listen_port="6379",target="primary\/orders"\} \d+$/m);
    t.match(scraped, /^cachenat_forward_active_connections\{engine="memcached",kind="node",listen_port="11211",target="node\/mc\/0001"\} 2$/m);
    t.match(scraped, /^cachenat_pass_duration_seconds_bucket\{le="\+Inf"\} \d+$/m);
    t.match(scraped, /^# TYPE cachenat_passes_total counter$/m);
  });
});
