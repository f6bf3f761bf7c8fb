// Issue 19's proof in the two-NAT lab: the leader loses DynamoDB alone (a
// DROP of its packets to dynalite's port in its own namespace) while EC2 and
// the clients still reach it. In 40 s the Elastic IP moves exactly once, to
// the standby, within lease + 2 s; clients are served throughout (both hosts
// hold the same rules; the cut-off one keeps forwarding until the address
// leaves it); the cut-off instance stops saying leader and its health is not
// OK. Healed, it rejoins as standby and the address does not move. Real
// daemons, dynalite through the AWS SDK, the fake EC2 that moves the address
// with a gratuitous ARP.

import t from 'tap';
import { stretch, waitFor } from '../../lab/rig.js';
import { startHaRig, type NatName } from '../../lab/ha-rig.js';
import { associationTimes, logTime, markLog, PROBED, settledPair, startProbers, statusOf } from '../../lab/ha-failover.js';

const LEASE_MS = 4_000;
const TARGET_MS = LEASE_MS + 2_000;
const WATCH_MS = 40_000;
const FORWARDS = 8;

interface HealthJson {
  state: string;
  checks: { name: string; state: string; message: string }[];
}

t.test('the leader cut off from DynamoDB alone (EC2 still answers): one move, no ping-pong, and it says so', async (t) => {
  const rig = await startHaRig({ lease: `${LEASE_MS / 1000}s` });
  t.teardown(async () => {
    await rig.dynamoPartition('nat', false).catch(() => undefined);
    await rig.down();
  });
  const init = await rig.cli('nat', ['ha', 'init']);
  t.equal(init.exitCode, 0, `ha init: ${init.stdout}${init.stderr}`);
  const health = async (which: NatName) => (JSON.parse((await rig.cli(which, ['health', '--json'])).stdout) as HealthJson).checks.find((c) => c.name === 'ha');

  await rig.start('nat', { readyTimeoutMs: stretch(30_000) });
  await logTime(rig, 'nat', /ha: became leader \(term 1/, stretch(10_000), 0);
  await rig.start('nat2', { readyTimeoutMs: stretch(30_000) });
  const pair = await settledPair(rig, 'nat', FORWARDS);
  const associated = (await rig.associations()).length;
  const probers = await startProbers(rig, pair.ports);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const mark = markLog(rig, 'nat2');

  const cutAt = Date.now();
  await rig.dynamoPartition('nat', true);
  const became = await logTime(rig, 'nat2', /ha: became leader \(term 2/, TARGET_MS + stretch(10_000), mark);
  const moves = await waitFor('the association to nat2, its gratuitous ARP done', async () => {
    const list = (await rig.associations({ settled: true })).slice(associated);
    return list.length > 0 ? list : undefined;
  }, stretch(15_000));
  const movedMs = moves[0]!.movedAt - cutAt;
  t.comment(`nat2 took the lease ${became.at - cutAt} ms after the cut; the address was on nat2 ${movedMs} ms after it: ${JSON.stringify(associationTimes(moves[0]!))}`);
  t.ok(movedMs <= TARGET_MS + stretch(500), `the standby serves through the Elastic IP within lease + 2 s of the cut (${movedMs} ms)`);

  // The rest of the 40 s: watch for any further move, and what the cut-off one says.
  const left = cutAt + WATCH_MS - Date.now();
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  const all = (await rig.associations({ settled: true })).slice(associated);
  t.same(all.map((a) => a.to.instanceId), [rig.nodes.nat2.instance.instanceId], `${Math.round((Date.now() - cutAt) / 1000)} s after the cut: exactly one AssociateAddress, to nat2`);
  t.equal(await rig.eipHolder(), 'nat2');
  t.equal(await rig.clientSeesEipAt(), 'nat2');
  const cut = await statusOf(rig, 'nat');
  t.equal(cut.ha?.role, 'leader-unconfirmed', 'the cut-off instance no longer says leader');
  t.equal(cut.ha?.mayAllocate, false);
  t.same(cut.ha?.elasticIps.filter((e) => e.state === 'held'), [], 'nor does it report the Elastic IP held (nat2 has it)');
  const cutHealth = await health('nat');
  t.comment(`nat's health: ${cutHealth?.state} ${cutHealth?.message}`);
  t.equal(cutHealth?.state, 'CRITICAL', 'and its health is not OK');
  t.match(cutHealth?.message, /cannot reach DynamoDB.*the standby may have taken over/);
  t.equal((await statusOf(rig, 'nat2')).ha?.role, 'leader');
  const outages = await Promise.all(probers.map(async ({ key, prober }) => ({ key, summary: await prober.stop() })));
  for (const { key, summary } of outages) {
    t.comment(`${key}: ${summary.attempts} probes, ${summary.failures} failed, longest gap ${summary.longestGapMs} ms`);
    t.same(Object.keys(summary.answeredBy), [PROBED.find((p) => p.key === key)!.answers], `${key}: the same server answered throughout`);
    t.ok((summary.longestGapMs ?? 0) <= TARGET_MS, `${key}: never unserved for longer than lease + 2 s (longest gap ${summary.longestGapMs} ms)`);
  }

  // Healed: the cut-off one finds the lease taken (its renewal is refused) and rejoins as standby; the address stays.
  const healedAt = Date.now();
  await rig.dynamoPartition('nat', false);
  const rejoined = await waitFor('nat a standby again', async () => ((await statusOf(rig, 'nat')).ha?.role === 'standby' ? true : undefined), 3 * LEASE_MS + stretch(5_000));
  t.ok(rejoined, `nat rejoined as standby ${Date.now() - healedAt} ms after the heal`);
  await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
  t.equal((await rig.associations()).length, associated + 1, 'two leases after the heal: still that one association');
  t.equal(await rig.eipHolder(), 'nat2', 'the address stayed on nat2');
  t.equal((await health('nat'))?.state, 'OK', 'the rejoined standby is OK');
});
