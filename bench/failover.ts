// The HA failover benchmark (issue #12), apart from `npm run bench` and
// `npm test`: one HA lab (lab/ha-rig.ts), two cachenat daemons, and two
// failover probers (a new connection every 10 ms to a Redis and a Memcached
// port through the Elastic IP) around each of
//   - N instance losses of the leader (kill -9 and links cut at once, at a
//     random phase of its renewals); after each, the lost host comes back
//     (links, daemon) as the standby and the pair settles (same ports, same
//     DNAT rules) before the next run;
//   - M planned handovers (`cachenat ha handover` on the leader), each at
//     least a lease after the one before (see the loop for why).
// Prints every run and the distribution (min, median, p90, max) of the probe
// outage, the lease, outage − lease and the association time, and writes
// bench/results/failover-lease<lease>.json.
//
//   npm run bench:failover -- [--runs 12] [--handovers 5] [--lease 4s]
//   (or, built: node dist/bench/failover.js …; needs root)
//
// Two client figures per run, each the worse of the two ports: the outage
// (the prober's: the first failed probe's start until the first probe
// started after it succeeds; 0 when none failed) and "served again" (from
// the event, the kill or the handover command, until that success). After a
// loss the probes fail from the kill on, so the two nearly agree; in a
// handover the outage is the short gap around the move. Both daemons' "ha: "
// log lines of each run are kept in the JSON.

import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/config/duration.js';
import { renewEveryMs } from '../src/core/ha/lease.js';
import { startHaRig, type HaRig, type NatName } from '../lab/ha-rig.js';
import {
  armProbers,
  associationsSince,
  associationTimes,
  dnatRules,
  logTime,
  markLog,
  settledPair,
  sorted,
  stopProbers,
  type AssociationTimes,
  type Pair,
  type ProbedOutage,
} from '../lab/ha-failover.js';
import { portsOf, stretch } from '../lab/rig.js';
import { readMachine, type Machine } from './results.js';
import { median, say, sleep } from './util.js';

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const FORWARDS = 8;

interface Run {
  kind: 'loss' | 'handover';
  from: NatName;
  to: NatName;
  /** The client's outage, worse of the two ports: first failed probe → first success after it (0: no probe failed). */
  outageMs: number;
  /** Worse of the two ports: the event → served again through the new leader (0: no probe failed). */
  servedAgainMs: number;
  /** Per port: both figures, attempts and failures. */
  ports: { key: string; servedAgainMs: number; proberOutageMs: number; attempts: number; failures: number; longestGapMs: number | null }[];
  leaseMs: number;
  outageMinusLeaseMs: number;
  /** The event → the new leader's "became leader" log line. */
  leaderAfterMs: number;
  association: AssociationTimes | null;
  /** Both daemons' "ha: " log lines from the event on (ms after it), to explain a slow run. */
  log: { at: number; host: NatName; msg: string }[];
  portsUnchanged: boolean;
  duplicateDnat: string[];
}

interface Distribution {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
}

/** min, median, p90 (nearest rank), max. */
function distribution(values: readonly number[]): Distribution {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n, min: Number.NaN, median: Number.NaN, p90: Number.NaN, max: Number.NaN };
  return { n, min: s[0]!, median: median(s), p90: s[Math.ceil(0.9 * n) - 1]!, max: s[n - 1]! };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '12' }, handovers: { type: 'string', default: '5' }, lease: { type: 'string', default: '4s' } } });
  const runs = Number(values.runs);
  const handovers = Number(values.handovers);
  const leaseMs = parseDuration(values.lease);
  if (!Number.isInteger(runs) || runs < 0 || !Number.isInteger(handovers) || handovers < 0) throw new Error('--runs and --handovers take whole numbers');
  if (leaseMs === undefined) throw new Error(`--lease ${values.lease}: not a duration (4s, 10s, 1500ms)`);
  if (process.getuid?.() !== 0) {
    process.stderr.write('the failover benchmark needs root: it creates network namespaces and iptables rules inside them\n');
    return 1;
  }
  const started = Date.now();
  const loadBefore = loadavg()[0]!;
  let loadMax = loadBefore;
  const loadSampler = setInterval(() => (loadMax = Math.max(loadMax, loadavg()[0]!)), 5000).unref();

  say(`HA failover benchmark: ${runs} instance losses, ${handovers} handovers, lease ${values.lease}`);
  const rig = await startHaRig({ lease: values.lease });
  const results: Run[] = [];
  try {
    const init = await rig.cli('nat', ['ha', 'init']);
    if (init.exitCode !== 0) throw new Error(`ha init: ${init.stderr}`);
    await rig.start('nat', { readyTimeoutMs: stretch(30_000) });
    await logTime(rig, 'nat', /ha: became leader/, stretch(10_000), 0);
    await rig.start('nat2', { readyTimeoutMs: stretch(30_000) });
    let pair = await settledPair(rig, 'nat', FORWARDS);
    const ports = pair.ports;

    for (let i = 1; i <= runs; i++) {
      const { run, next } = await instanceLoss(rig, pair, leaseMs);
      results.push(run);
      say(`loss ${i}/${runs}: ${line(run)}`);
      pair = next;
    }
    // Handovers at least a lease apart: an instance that handed the lease over leaves a free lease to its peer
    // for one lease (yieldUntil), and a handover back within that window waits for it to end.
    let lastHandover = 0;
    for (let i = 1; i <= handovers; i++) {
      await sleep(Math.max(0, lastHandover + leaseMs + 500 - Date.now()));
      lastHandover = Date.now();
      const { run, next } = await handover(rig, pair, leaseMs);
      results.push(run);
      say(`handover ${i}/${handovers}: ${line(run)}`);
      pair = next;
    }
    const bad = results.filter((r) => !r.portsUnchanged || r.duplicateDnat.length > 0);
    if (bad.length > 0) say(`WARNING: ${bad.length} run(s) changed a port or left a duplicate DNAT rule`);
    if (JSON.stringify(sorted(pair.ports)) !== JSON.stringify(sorted(ports))) say('WARNING: the ports at the end differ from the first ones');
  } finally {
    clearInterval(loadSampler);
    await rig.down();
  }

  const summary = (kind: Run['kind']) => {
    const of = results.filter((r) => r.kind === kind);
    return {
      runs: of.length,
      outageMs: distribution(of.map((r) => r.outageMs)),
      servedAgainMs: distribution(of.map((r) => r.servedAgainMs)),
      leaseMs: distribution(of.map((r) => r.leaseMs)),
      outageMinusLeaseMs: distribution(of.map((r) => r.outageMinusLeaseMs)),
      leaderAfterMs: distribution(of.map((r) => r.leaderAfterMs)),
      associationAnsweredMs: distribution(of.map((r) => r.association?.answeredMs ?? Number.NaN)),
      associationMovedMs: distribution(of.map((r) => r.association?.movedMs ?? Number.NaN)),
      arpingDoneMs: distribution(of.map((r) => r.association?.arpingMs ?? Number.NaN)),
      withinLeasePlus2s: of.filter((r) => r.servedAgainMs <= r.leaseMs + 2000).length,
      portsUnchanged: of.filter((r) => r.portsUnchanged).length,
      noDuplicateDnat: of.filter((r) => r.duplicateDnat.length === 0).length,
    };
  };
  const loss = summary('loss');
  const planned = summary('handover');
  const machine: Machine = await readMachine();
  const out = {
    date: new Date().toISOString(),
    leaseMs,
    proberEveryMs: 10,
    proberTimeoutMs: 250,
    durationS: Math.round((Date.now() - started) / 1000),
    loadAverage: { before: round2(loadBefore), after: round2(loadavg()[0]!), max: round2(loadMax) },
    machine,
    instanceLoss: loss,
    handover: planned,
    runs: results,
  };
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `failover-lease${values.lease}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);

  const print = (text: string) => process.stdout.write(`${text}\n`);
  print(`HA failover, lease ${leaseMs} ms; probers every 10 ms (250 ms budget) on a Redis and a Memcached port through the Elastic IP`);
  print(`machine: ${machine.cpus} CPUs, load average ${out.loadAverage.before} before, ${out.loadAverage.after} after, ${out.loadAverage.max} max`);
  print('');
  print('run  kind      from→to    outage  served  o−lease  leader-after  assoc(answered)  assoc(moved)  arping-done  ports  dup');
  results.forEach((r, i) =>
    print(
      `${String(i + 1).padStart(3)}  ${r.kind.padEnd(8)}  ${`${r.from}→${r.to}`.padEnd(9)}  ${ms(r.outageMs)}  ${ms(r.servedAgainMs)}  ${ms(r.outageMinusLeaseMs, 7)}  ${ms(r.leaderAfterMs, 12)}  ${ms(r.association?.answeredMs, 15)}  ${ms(r.association?.movedMs, 12)}  ${ms(r.association?.arpingMs, 11)}  ${r.portsUnchanged ? 'same ' : 'MOVED'}  ${r.duplicateDnat.length === 0 ? 'none' : 'YES'}`,
    ),
  );
  print('');
  print('figure                                 n     min   median      p90      max');
  for (const [label, s] of [['instance loss', loss], ['planned handover (ha handover)', planned]] as const) {
    if (s.runs === 0) continue;
    print(`${label}:`);
    print(row('  probe outage ms', s.outageMs));
    print(row('  event → served again ms', s.servedAgainMs));
    print(row('  lease ms', s.leaseMs));
    print(row('  outage − lease ms', s.outageMinusLeaseMs));
    print(row('  event → new leader ms', s.leaderAfterMs));
    print(row('  association (call → answer) ms', s.associationAnsweredMs));
    print(row('  association (call → address moved) ms', s.associationMovedMs));
    print(row('  association (call → ARP done) ms', s.arpingDoneMs));
    print(`  served again ≤ lease + 2 s after the event in ${s.withinLeasePlus2s}/${s.runs}; ports unchanged in ${s.portsUnchanged}/${s.runs}; no duplicate DNAT in ${s.noDuplicateDnat}/${s.runs}`);
  }
  print('');
  print(`wrote ${file} in ${out.durationS} s`);
  return 0;
}

const round2 = (v: number): number => Number(v.toFixed(2));
const ms = (v: number | undefined, width = 6): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : String(Math.round(v))).padStart(width);
const row = (label: string, d: Distribution): string => `${label.padEnd(38)} ${String(d.n).padStart(2)} ${ms(d.min, 7)} ${ms(d.median, 8)} ${ms(d.p90, 8)} ${ms(d.max, 8)}`;
const line = (r: Run): string =>
  `${r.from}→${r.to} outage ${r.outageMs} ms, served again ${r.servedAgainMs} ms after the event (lease ${r.leaseMs}, ${r.outageMinusLeaseMs >= 0 ? '+' : ''}${r.outageMinusLeaseMs}), leader after ${r.leaderAfterMs} ms, association ${r.association ? `${r.association.answeredMs} ms` : 'none'}${r.portsUnchanged ? '' : ', PORTS MOVED'}${r.duplicateDnat.length > 0 ? `, DUPLICATE DNAT: ${r.duplicateDnat.join('; ')}` : ''}`;

/** Probers on, `event` (which returns when it happened), the new leader's log line, probers off once served again. */
async function measured(
  rig: HaRig,
  pair: Pair,
  kind: Run['kind'],
  leaseMs: number,
  event: () => Promise<number>,
  leaderPattern: RegExp,
): Promise<Omit<Run, 'portsUnchanged' | 'duplicateDnat'>> {
  const { associated, probers, mark } = await armProbers(rig, pair);
  const leaderMark = markLog(rig, pair.leader);
  const at = await event();
  const became = await logTime(rig, pair.standby, leaderPattern, leaseMs + stretch(15_000), mark);
  const outages: ProbedOutage[] = await stopProbers(rig, probers, pair.ports, at, stretch(20_000));
  const [association] = await associationsSince(rig, associated);
  const outageMs = Math.max(...outages.map((o) => o.outageMs));
  const log = [...haLines(rig, pair.leader, leaderMark, at), ...haLines(rig, pair.standby, mark, at)].sort((a, b) => a.at - b.at);
  return {
    kind,
    from: pair.leader,
    to: pair.standby,
    outageMs,
    servedAgainMs: Math.max(...outages.map((o) => o.servedAgainMs)),
    log,
    ports: outages.map((o) => ({
      key: o.key,
      servedAgainMs: o.servedAgainMs,
      proberOutageMs: o.outageMs,
      attempts: o.summary.attempts,
      failures: o.summary.failures,
      longestGapMs: o.summary.longestGapMs,
    })),
    leaseMs,
    outageMinusLeaseMs: outageMs - leaseMs,
    leaderAfterMs: became.at - at,
    association: association ? associationTimes(association) : null,
  };
}

/** That daemon's "ha: " log lines after the mark, timed from `at`. */
function haLines(rig: HaRig, host: NatName, mark: number, at: number): Run['log'] {
  return (rig.nodes[host].daemon?.process.output.slice(mark) ?? []).flatMap((line) => {
    if (!line.includes('"msg":"ha: ')) return [];
    const { time, msg } = JSON.parse(line) as { time: number; msg: string };
    return [{ at: time - at, host, msg }];
  });
}

/** Ports on the new leader as before, and no duplicate DNAT on either host. */
async function checked(rig: HaRig, pair: Pair, leader: NatName): Promise<Pick<Run, 'portsUnchanged' | 'duplicateDnat'>> {
  const ports = portsOf(await rig.status(leader));
  const rules = await Promise.all((['nat', 'nat2'] as const).map((which) => dnatRules(rig, which)));
  return { portsUnchanged: JSON.stringify(sorted(ports)) === JSON.stringify(sorted(pair.ports)), duplicateDnat: rules.flatMap((r) => r.problems) };
}

async function instanceLoss(rig: HaRig, pair: Pair, leaseMs: number): Promise<{ run: Run; next: Pair }> {
  // At a random phase of the leader's renewals (every third of a lease): the takeover comes one lease after the last renewal the standby saw.
  const event = async () => {
    await sleep(Math.random() * renewEveryMs(leaseMs));
    return (await rig.loseInstance(pair.leader)).at;
  };
  const run = await measured(rig, pair, 'loss', leaseMs, event, /ha: became leader \(term \d+, lease expired/);
  const check = await checked(rig, pair, pair.standby);
  // The lost host comes back as the standby before the next run.
  await rig.restoreLinks(pair.leader);
  await rig.start(pair.leader, { readyTimeoutMs: stretch(30_000) });
  const next = await settledPair(rig, pair.standby, FORWARDS);
  return { run: { ...run, ...check }, next };
}

async function handover(rig: HaRig, pair: Pair, leaseMs: number): Promise<{ run: Run; next: Pair }> {
  const run = await measured(
    rig,
    pair,
    'handover',
    leaseMs,
    async () => {
      const at = Date.now();
      const r = await rig.cli(pair.leader, ['ha', 'handover']);
      if (r.exitCode !== 0 || !r.stdout.includes('handed over')) throw new Error(`ha handover on ${pair.leader} exited ${r.exitCode}: ${r.stdout}${r.stderr}`);
      return at;
    },
    /ha: became leader \(term \d+, lease free\)/,
  );
  const check = await checked(rig, pair, pair.standby);
  const next = await settledPair(rig, pair.standby, FORWARDS);
  return { run: { ...run, ...check }, next };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`failover benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
