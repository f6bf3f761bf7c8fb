// The same lab, this time hostile: a Docker-like firewall that must stay
// untouched, an operator flushing our chains, every API fault the fake can
// produce, and an API answer full of injection attempts.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCKER_SAVE } from '../../lab/foreign-rules.js';
import { baseTopology, foreignLines, startRig, stretch, waitFor, type ApiRequest } from '../../lab/rig.js';


// The lab's 4 s grace is shorter than watching "every forward draining" and
// then probing can take on a loaded machine (each look is a process spawned
// in a namespace): the probe could land after the grace and find the forward
// gone. Nothing here tests the grace's length, so it is long.
const REMOVAL_GRACE = '60s';

/** API calls that start a pass: the SDK retries once inside a pass, a few ms after the first attempt. */
const PASS_GAP_MS = 250;
const passStarts = (requests: ApiRequest[]): ApiRequest[][] => {
  const passes: ApiRequest[][] = [];
  for (const r of requests) {
    const current = passes.at(-1);
    if (current && r.at - current.at(-1)!.at < PASS_GAP_MS) current.push(r);
    else passes.push([r]);
  }
  return passes;
};

t.test('foreign rules, operator mistakes, API faults, hostile data', async (t) => {
  const rig = await startRig({ settings: { removalGrace: REMOVAL_GRACE } });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const rulesFile = join(rig.dir, 'docker-like.rules');
  writeFileSync(rulesFile, DOCKER_SAVE);
  const loaded = await lab.exec(lab.ns.nat, 'iptables-restore', [rulesFile]);
  t.equal(loaded.exitCode, 0, loaded.stderr);
  const foreignBefore = foreignLines(await rig.save());

  const daemon = await rig.start();
  const snapshot = async (): Promise<Record<string, unknown>> => JSON.parse((await lab.exec(lab.ns.nat, 'cat', [`${rig.dir}/run/status.json`])).stdout);
  await waitFor('forwarding through FORWARD policy DROP', async () => (await rig.probe('client', 6379)) === 'redis-11');

  await t.test('Docker-like ruleset: untouched byte for byte, and we still forward', async (t) => {
    t.equal(foreignLines(await rig.save()), foreignBefore);
    t.match(await rig.save('filter'), /:FORWARD DROP/);
    t.equal(await rig.probe('client', 11211), 'memc-21');
  });

  await t.test('an operator flushing our chains or deleting a jump: restored on the next pass', async (t) => {
    await rig.iptables(['-t', 'nat', '-F', 'CACHENAT-DNAT']);
    await rig.iptables(['-t', 'filter', '-D', 'FORWARD', '-m', 'comment', '--comment', 'cachenat', '-j', 'CACHENAT-FORWARD']);
    await waitFor('forwarding restored (bound stretched by the load average)', async () => (await rig.probe('client', 6379, 'redis', 500)) === 'redis-11', stretch(5000));
    t.match(await rig.save('filter'), /-A FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD/);
    await rig.iptables(['-t', 'nat', '-F']); // everything in nat, Docker's too: ours comes back, theirs is theirs to restore
    try {
      await waitFor('forwarding restored after a whole-table flush (bound stretched by the load average)', async () => (await rig.probe('client', 6379, 'redis', 500)) === 'redis-11', stretch(5000));
    } finally {
      // Put Docker's nat part back as its owner would (even if the wait failed, so later checks stay meaningful); its filter part was never touched.
      const natPart = DOCKER_SAVE.slice(DOCKER_SAVE.indexOf('*nat'));
      const restored = await lab.exec(lab.ns.nat, 'iptables-restore', ['--noflush'], { input: natPart });
      t.equal(restored.exitCode, 0, restored.stderr);
    }
  });

  const faults = ['throttling', 'internal-error', 'unavailable', 'malformed-xml', 'access-denied', 'expired-token', 'hang', 'second-page-fails'];
  for (const fault of faults) {
    await t.test(`API fault "${fault}": forwards stay, the error is reported, it converges after`, async (t) => {
      await rig.setFault(fault);
      const failed = await waitFor('the failed sync in the status snapshot', async () => (await snapshot()).lastSyncError as string | undefined, stretch(8000));
      t.match(failed, /\w+: /, `reported as: ${failed}`);
      t.equal((await rig.status()).forwards.filter((f) => f.state === 'active').length, 8, 'no forward removed or changed');
      t.equal(await rig.probe('client', 6380), 'redis-12');
      await rig.setFault('none');
      await waitFor('sync recovered', async () => (await snapshot()).lastSyncError === undefined, stretch(15_000));
    });
  }

  await t.test('an empty but valid answer only starts the grace period', async (t) => {
    await rig.setFault('empty');
    await waitFor('forwards draining', async () => (await rig.status()).forwards.every((f) => f.state === 'draining'));
    t.equal(await rig.probe('client', 6379), 'redis-11', 'still forwarding while draining');
    const after = (await rig.status()).forwards;
    t.ok(after.length === 8 && after.every((f) => f.state === 'draining'), `the probe ran inside the grace period (${REMOVAL_GRACE}): all 8 still draining after it`);
    await rig.setFault('none');
    await waitFor('forwards active again', async () => (await rig.status()).forwards.every((f) => f.state === 'active'));
  });

  await t.test('retries back off instead of hammering a failing API', async (t) => {
    // Judged on the fake's own log and clock, from the moment the fault took
    // effect: spawning the helpers that set the fault and read the log takes
    // seconds on a loaded machine, and those seconds must not count.
    const WINDOW_MS = 6000;
    const faultFrom = await rig.setFault('internal-error');
    // The log is complete for the window once a retry after it has arrived (about 7 s in, later under load).
    const log = await waitFor(
      'an API retry after the 6 s window (bound stretched by the load average)',
      async () => {
        const requests = await rig.apiRequestLog();
        return requests.some((r) => r.at >= faultFrom + WINDOW_MS) ? requests : undefined;
      },
      stretch(30_000),
      500,
    );
    await rig.setFault('none');
    const window = log.filter((r) => r.at >= faultFrom && r.at < faultFrom + WINDOW_MS);
    const passes = passStarts(window);
    const starts = passes.map((p) => p[0]!.at - faultFrom);
    t.ok(window.every((r) => r.fault === 'internal-error'), 'every request in the window got the fault');
    // A pass asks each source (clusters, Serverless) once; the SDK retries each call once.
    const attempts = passes.map((p) => Math.max(...[...new Set(p.map((r) => r.action))].map((a) => p.filter((r) => r.action === a).length)));
    t.ok(attempts.every((n) => n <= 2), `at most 2 attempts per call in a pass (the SDK's one retry): ${attempts.join(', ')}`);
    // discovery.interval 1 s: the n-th retry comes at least 0.8 × 2^(n-1) s after the pass before it (jitter ±20 %, a 50 ms timer slack).
    const gaps = starts.slice(1).map((at, i) => at - starts[i]!);
    t.ok(gaps.every((gap, i) => gap >= 800 * 2 ** i - 50), `gaps between failing passes grow: ${gaps.join(', ')} ms`);
    // Backoff of 1, 2, 4 s (±20 %) fits at most 4 passes in 6 s; a steady 1 s poll would make 6.
    t.ok(passes.length >= 1 && passes.length <= 4, `${passes.length} failing passes (${window.length} requests) in the ${WINDOW_MS / 1000} s after the fault, at ${starts.join(', ')} ms (a steady 1 s poll would make 6)`);
  });

  await t.test('hostile API data never reaches the kernel', async (t) => {
    const topology = baseTopology();
    topology.clusters.push(
      { id: 'evil -j ACCEPT', engine: 'redis', nodes: [{ id: '0001', address: 'x.example', port: 6379 }] },
      { id: 'evil2', engine: 'redis', nodes: [{ id: '0001', address: '1.2.3.4 -j ACCEPT', port: 6379 }] },
      { id: 'evil3', engine: 'redis', nodes: [{ id: '0001', address: 'ok.example', port: '6379; iptables -F' }] },
      { id: 'evil4', engine: 'redis', nodes: [{ id: "00'01\n-A INPUT", address: 'ok.example', port: 6379 }] },
      { id: 'evil5', engine: 'redis', nodes: [{ id: '0001', address: '169.254.169.254', port: 80 }] },
      { id: 'évil6', engine: 'redis', nodes: [{ id: '0001', address: 'ünicode.example', port: 6379 }] },
      { id: 'evil7', engine: 'mongodb', nodes: [{ id: '0001', address: 'ok.example', port: 27017 }] },
    );
    await rig.setTopology(topology);
    const servedFrom = Date.now();
    // DescribeReplicationGroups is the last call of a pass: two of them mean two whole passes saw the hostile answer.
    await waitFor(
      'two discovery passes over the hostile answer (bound stretched by the load average)',
      async () => (await rig.apiRequestLog()).filter((r) => r.at > servedFrom && r.action === 'DescribeReplicationGroups' && r.status === 200).length >= 2,
      stretch(20_000),
    );
    const save = await rig.save();
    t.equal(foreignLines(save).replace(/^:DOCKER.*$/gm, ''), foreignBefore.replace(/^:DOCKER.*$/gm, ''), 'nothing outside our chains changed');
    t.notMatch(save, /evil|169\.254|ACCEPT -j|iptables -F/);
    t.equal((await rig.status()).forwards.length, 8, 'only the legitimate targets are forwarded');
    t.ok(daemon.process.running, 'the daemon did not crash');
    await rig.setTopology(baseTopology());
  });
});
