// DNS faults against the real daemon: a name that stops resolving (NXDOMAIN
// from a stub server) keeps its last address for discovery.removalGrace, then
// goes `unresolved`; a server that never answers is silence, not a verdict:
// the last address stands however long it lasts, with a standing warning that
// health shows; a name flapping between two answers every 40 ms moves the rule
// at most once per dns.interval.

import t, { type Test } from 'tap';
import { cpus, loadavg } from 'node:os';
import { startDnsStub } from '../../lab/dns-stub.js';
import { NAME, startRig, waitFor } from '../../lab/rig.js';
import { dnatTargets, logLines, readSnapshot, startDaemon, sleep } from './lab-daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : false;
// lab/rig.ts: removalGrace 4s (also how long a stale address is kept), dns.interval 500ms.
const GRACE_MS = 4000;
const DNS_INTERVAL_MS = 500;
const load = () => Math.max(1, loadavg()[0]! / cpus().length);

// A DNS server on 127.0.0.1:53 in the NAT namespace (its resolv.conf points there):
// "nxdomain" answers every query with NXDOMAIN, "drop" reads queries and never answers.

t.test('DNS faults', { skip }, async (t) => {
  process.env.NODE_OPTIONS = '';
  const rig = await startRig();
  t.teardown(() => rig.down());
  const { lab } = rig;
  const daemon = await startDaemon(rig);
  await waitFor('forwarding', async () => (await rig.probe('client', 6383)) === 'redis-13');
  const key = 'node/sessions/0001';

  const startStub = async (t: Test, mode: 'nxdomain' | 'drop') => {
    const stub = await startDnsStub(lab, lab.ns.nat, mode);
    t.teardown(() => stub.stop(1000));
  };

  await t.test('a name that stops resolving (nxdomain): last address kept for the grace period, then unresolved', async (t) => {
    await startStub(t, 'nxdomain');
    const mark = daemon.mark();
    const lostAt = Date.now();
    lab.removeHost(NAME.sessions1);
    const failed = (await waitFor('resolve-failed logged', () => logLines(daemon, mark).find((l) => /cannot resolve/.test(l.msg)), 5000))!;
    t.match(failed.msg, /ENOTFOUND/, `logged: "${failed.msg.slice(0, 160)}"`);
    t.match(failed.msg, /still forwarding to 198\.19\.0\.13/);
    t.equal(await rig.probe('client', 6383), 'redis-13', 'still forwarded to the last address during the grace period');
    const snapshotDuring = await readSnapshot(rig);
    t.equal(snapshotDuring.forwards.find((f) => f.key === key)?.state, 'active', 'status: still active meanwhile');
    const passesBefore = snapshotDuring.passes;

    await waitFor('rule removed', async () => !(await dnatTargets(rig)).has(6383), GRACE_MS * 3 * load(), 50);
    const goneAfter = Date.now() - lostAt;
    t.ok(goneAfter >= GRACE_MS, `the rule went ${goneAfter} ms after the name stopped resolving (removalGrace ${GRACE_MS} ms)`);
    t.ok(goneAfter <= (GRACE_MS + 2 * DNS_INTERVAL_MS + 1000) * load(), 'within a pass or two of the grace period');
    const unresolved = logLines(daemon, mark).find((l) => /has not resolved for the whole grace period/.test(l.msg));
    t.ok(unresolved && unresolved.level === 40, `logged: "${unresolved?.msg}"`);
    // The snapshot is written at the end of the pass that removed the rule.
    const snapshot = (await waitFor('status unresolved', async () => {
      const s = await readSnapshot(rig);
      return s.forwards.find((f) => f.key === key)?.state === 'unresolved' ? s : undefined;
    }, 3000 * load()))!;
    t.equal(snapshot.forwards.find((f) => f.key === key)?.listenPort, 6383, 'status: unresolved, its port kept');
    t.ok(snapshot.passes - passesBefore >= 3, `the loop kept its pace: ${snapshot.passes - passesBefore} passes meanwhile`);
    t.equal(await rig.probe('client', 6379), 'redis-11', 'other forwards unaffected');

    const backAt = Date.now();
    lab.setHost(NAME.sessions1, '198.19.0.13');
    await waitFor('back', async () => (await dnatTargets(rig)).get(6383) === '198.19.0.13:6379', 5000 * load(), 50);
    t.ok(Date.now() - backAt <= (DNS_INTERVAL_MS + 1000) * load(), `back ${Date.now() - backAt} ms after it resolved again`);
    t.equal(await rig.probe('client', 6383), 'redis-13');
  });

  await t.test('a resolver that never answers (drop): the last address stands past the grace period, health warns, it clears', async (t) => {
    await startStub(t, 'drop');
    const mark = daemon.mark();
    lab.removeHost(NAME.sessions1);
    const warned = (await waitFor('DNS warning logged', () => logLines(daemon, mark).find((l) => /^DNS: \d+ of \d+ endpoint names/.test(l.msg)), 5000 * load()))!;
    t.match(warned.msg, /^DNS: 1 of \d+ endpoint names due for a lookup got no answer; their forwards keep their last addresses/, `logged: "${warned.msg.slice(0, 160)}"`);
    await sleep(GRACE_MS * 2);
    t.equal((await dnatTargets(rig)).get(6383), '198.19.0.13:6379', `the rule stands ${GRACE_MS * 2} ms into the silence (removalGrace ${GRACE_MS} ms)`);
    t.equal(await rig.probe('client', 6383), 'redis-13', 'still forwarded');
    const snapshot = await readSnapshot(rig);
    t.equal(snapshot.forwards.find((f) => f.key === key)?.state, 'active');
    t.match(snapshot.warnings, [/^DNS: 1 of /], 'a standing warning in the snapshot');
    t.notOk(logLines(daemon, mark).some((l) => l.key === key && /cannot resolve|has not resolved/.test(l.msg)), 'silence is not logged as the name failing');
    const health = await rig.cli(['health']);
    t.equal(health.exitCode, 1, 'health: WARNING');
    t.match(health.stdout, /^WARNING - DNS: 1 of \d+ endpoint names due for a lookup got no answer/);

    lab.setHost(NAME.sessions1, '198.19.0.13');
    await waitFor('warning cleared', async () => ((await readSnapshot(rig)).warnings ?? []).length === 0, 5000 * load(), 50);
    t.ok(logLines(daemon, mark).some((l) => l.msg === 'DNS answers again: every endpoint name due for a lookup was answered'));
  });

  await t.test('a name flapping between two answers every 40 ms: at most one rule change per dns.interval', async (t) => {
    const mark = daemon.mark();
    const started = Date.now();
    let flips = 0;
    while (Date.now() - started < 6000) {
      lab.setHost(NAME.sessions1, flips++ % 2 === 0 ? '198.19.0.14' : '198.19.0.13');
      await sleep(40);
    }
    lab.setHost(NAME.sessions1, '198.19.0.13');
    await sleep(1500);
    const moves = logLines(daemon, mark).filter((l) => l.key === key && /moved from/.test(l.msg));
    const gaps = moves.slice(1).map((m, i) => m.time - moves[i]!.time);
    t.ok(moves.length >= 2, `${flips} flips of the answer in 6 s gave ${moves.length} rule changes`);
    t.ok(moves.length <= 6000 / DNS_INTERVAL_MS + 3, `at most one per ${DNS_INTERVAL_MS} ms pass`);
    // Lookups are at least an interval apart; the log line trails its lookup by the kernel read, whose
    // time varies from pass to pass, so the logged gaps may be a little shorter than the lookups'.
    t.ok(gaps.every((g) => g >= DNS_INTERVAL_MS * 0.7), `never two within one interval: gaps ${gaps.join(', ')} ms`);
    t.equal((await dnatTargets(rig)).get(6383), '198.19.0.13:6379', 'settles on the final answer');
    t.ok(daemon.running);
  });

  await daemon.stop(5000);
});
