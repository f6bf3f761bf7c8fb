// The HA lab itself (issue #12), before any HA logic in the daemon: two NAT
// hosts on the same client and cache segments, each running cachenat in
// plain port mode with the same topology; the Elastic IP moved between them
// by the fake EC2 API through cachenat's own EC2 client; a failover prober
// through the Elastic IP; instance loss (links cut); dynalite reachable from
// both NAT hosts, and a DynamoDB outage that makes requests time out.

import t from 'tap';
import { execa } from 'execa';
import { HA_IDS } from '../../lab/lab.js';
import { NAT_NAMES, startHaRig, type NatName } from '../../lab/ha-rig.js';
import { portsOf, stretch, waitFor } from '../../lab/rig.js';

/** The base topology's primary/orders forward: redis-11 answers `whoami` through it. */
const ORDERS_PORT = 6379;
const FORWARDS = 8;

const namespacesOf = async (prefix: string): Promise<string[]> =>
  (await execa('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(`${prefix}-`));

t.test('the two-NAT lab', async (t) => {
  const began = Date.now();
  const rig = await startHaRig({ ha: false });
  const upMs = Date.now() - began;
  t.teardown(() => rig.down());
  const { lab } = rig;
  t.comment(`HA lab and services up in ${upMs} ms`);

  await t.test('two NAT hosts on the same segments, a services namespace, the Elastic IP on neither', async (t) => {
    t.same((await namespacesOf(lab.prefix)).sort(), lab.namespaces().sort(), 'every namespace the lab lists exists');
    t.ok(lab.ns.nat2 !== undefined && lab.ns.svc !== undefined, 'nat2 and svc namespaces');
    const nat2 = (await lab.exec(lab.natNs('nat2'), 'ip', ['-4', '-br', 'addr'])).stdout;
    t.match(nat2, /^ext0@\S+\s+UP\s+198\.18\.0\.2\/24/m);
    t.match(nat2, /^int0@\S+\s+UP\s+198\.19\.0\.2\/24/m);
    t.match(nat2, /^svc0@\S+\s+UP\s+198\.20\.0\.2\/24/m);
    t.match((await lab.exec(lab.ns.nat, 'ip', ['-4', '-br', 'addr'])).stdout, /^svc0@\S+\s+UP\s+198\.20\.0\.1\/24/m);
    t.equal(await rig.eipHolder(), undefined);
    t.same(await rig.describeEip(), [{ allocationId: HA_IDS.allocationId, publicIp: rig.eip }], 'DescribeAddresses: associated nowhere');
    t.not(rig.nodes.nat.instance.mac, rig.nodes.nat2.instance.mac);
  });

  await t.test('each NAT host has its own IMDS and the same hosts file', async (t) => {
    for (const which of NAT_NAMES) {
      const { ns, instance, imdsUrl } = rig.nodes[which];
      const script =
        'const u=process.argv[1];fetch(u+"/latest/api/token",{method:"PUT",headers:{"x-aws-ec2-metadata-token-ttl-seconds":"60"}}).then(r=>r.text())' +
        '.then(k=>fetch(u+"/latest/meta-data/instance-id",{headers:{"x-aws-ec2-metadata-token":k}})).then(r=>r.text()).then(console.log)';
      const r = await lab.exec(ns, process.execPath, ['-e', script, imdsUrl], { env: { NODE_OPTIONS: '' } });
      t.equal(r.stdout.trim(), instance.instanceId, `${which} is ${instance.instanceId}`);
    }
    lab.setHost('extra.example.com', '198.19.0.14');
    const hosts = await Promise.all(NAT_NAMES.map(async (which) => (await lab.exec(lab.natNs(which), 'cat', ['/etc/hosts'])).stdout));
    t.equal(hosts[0], hosts[1], 'setHost writes both');
    t.match(hosts[1], /198\.19\.0\.14 extra\.example\.com/);
  });

  await t.test('both daemons, plain port mode, the same topology: the same ports on both', async (t) => {
    await Promise.all(NAT_NAMES.map((which) => rig.start(which, { readyTimeoutMs: stretch(30_000) })));
    const active = async (which: NatName) => {
      const s = await rig.status(which);
      return s.forwards.length === FORWARDS && s.forwards.every((f) => f.state === 'active') ? s : undefined;
    };
    const [a, b] = await Promise.all(NAT_NAMES.map((which) => waitFor(`${FORWARDS} forwards active on ${which}`, () => active(which), stretch(30_000))));
    t.same(portsOf(b!), portsOf(a!), 'same key → port map on both');
    t.equal(portsOf(a!)['primary/orders'], ORDERS_PORT);
    for (const address of [lab.addr.natExt, lab.addr.nat2Ext]) {
      const r = await lab.probe(lab.ns.client, address, ORDERS_PORT, 'redis', 4_000);
      t.same(r, { ok: true, value: 'redis-11' }, `through ${address}`);
    }
  });

  await t.test('the Elastic IP on nat: probes through it reach redis-11 by nat', async (t) => {
    const { tookMs } = await rig.associate('nat');
    t.comment(`AssociateAddress to nat answered in ${tookMs} ms`);
    t.equal(await rig.eipHolder(), 'nat');
    t.match(await rig.describeEip(), [{ allocationId: HA_IDS.allocationId, instanceId: HA_IDS.nat.instanceId, networkInterfaceId: HA_IDS.nat.eni, privateIp: lab.addr.natExt }]);
    t.equal(await rig.probe(ORDERS_PORT), 'redis-11');
    t.equal(await rig.clientSeesEipAt(), 'nat', "the client's ARP entry is nat's ext0");
  });

  await t.test('moving the Elastic IP to nat2 under a prober (a new connection every 10 ms)', async (t) => {
    const prober = await rig.startProber(ORDERS_PORT);
    // Successes before the move, so the gap is measured from a served client.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const movedAt = Date.now();
    await rig.associate('nat2');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const summary = await prober.stop();
    // arping runs after AssociateAddress answers (about 2 s, longer on a busy host): read the association once it has finished.
    const last = (await rig.associations({ settled: true })).at(-1);
    t.equal(await rig.eipHolder(), 'nat2');
    t.equal(await rig.clientSeesEipAt(), 'nat2', 'the gratuitous ARP moved the client');
    t.match(last, { from: { instanceId: HA_IDS.nat.instanceId }, to: { instanceId: HA_IDS.nat2.instanceId } });
    t.equal(last?.arping?.exitCode, 0, `arping: ${last?.arping?.output}`);
    // The fake's own times: the call's arrival, the address on nat2's ext0, the gratuitous ARP done.
    const arrivedAt = last?.arrivedAt ?? Number.NaN;
    const figures = {
      moveMs: (last?.movedAt ?? Number.NaN) - arrivedAt,
      arpingDoneMs: (last?.arping?.finishedAt ?? Number.NaN) - arrivedAt,
      attempts: summary.attempts,
      failures: summary.failures,
      longestGapMs: summary.longestGapMs,
      longestGapFromArrivalMs: summary.longestGap === null ? null : [summary.longestGap.from - arrivedAt, summary.longestGap.to - arrivedAt],
      outageMs: summary.outageMs,
      errors: summary.errors,
    };
    t.comment(`manual move (AssociateAddress called at +${arrivedAt - movedAt} ms from the test's side): ${JSON.stringify(figures)}`);
    t.ok(summary.attempts > 100, `${summary.attempts} attempts in about 2.5 s`);
    t.same(Object.keys(summary.answeredBy), ['redis-11'], 'answered throughout by redis-11 (both NAT hosts forward to it)');
    t.ok(summary.changes[0]!.at < (last?.arrivedAt ?? 0), 'served before the move');
    t.ok(summary.lastSuccessAt! > (last?.movedAt ?? Infinity) + 500, 'and still served well after it');
    t.ok(summary.longestGapMs !== null && summary.longestGapMs < stretch(3_000), `longest gap between successes ${summary.longestGapMs} ms`);
    t.equal(await rig.probe(ORDERS_PORT), 'redis-11', 'served through nat2');
  });

  await t.test('dynalite answers from both NAT hosts; an outage makes requests time out', async (t) => {
    for (const which of NAT_NAMES) t.equal(await lab.dynamoAnswers(lab.natNs(which)), true, `from ${which}`);
    await rig.dynamoOutage(true);
    for (const which of NAT_NAMES) t.equal(await lab.dynamoAnswers(lab.natNs(which), 1_000), 'timed out', `from ${which}, during the outage`);
    await rig.dynamoOutage(false);
    t.equal(await lab.dynamoAnswers(lab.natNs('nat')), true, 'back after the outage');
  });

  await t.test('cutLinks: nat2 (the holder) cut off, the Elastic IP moved back to nat serves again', async (t) => {
    await rig.cutLinks('nat2');
    t.equal(await rig.probe(ORDERS_PORT, 'redis', 1_000), undefined, 'nothing answers through the Elastic IP on a cut-off host');
    t.not(await lab.dynamoAnswers(lab.natNs('nat2'), 1_000), true, 'nat2 cannot reach dynalite');
    t.equal(await lab.dynamoAnswers(lab.natNs('nat')), true, 'nat still can');
    t.match((await lab.exec(lab.natNs('nat2'), 'ip', ['-br', 'link'])).stdout, /^ext0@\S+\s+DOWN/m);
    await rig.associate('nat');
    t.equal(await rig.eipHolder(), 'nat');
    t.equal(await waitFor('a probe through the Elastic IP on nat', () => rig.probe(ORDERS_PORT, 'redis', 1_000), stretch(10_000)), 'redis-11');
    await rig.restoreLinks('nat2');
    t.equal(await lab.dynamoAnswers(lab.natNs('nat2')), true, 'nat2 back');
  });

  await t.test('instance loss: the daemon killed with SIGKILL and the links cut together', async (t) => {
    const { at, doneAt } = await rig.loseInstance('nat');
    t.comment(`instance loss took ${doneAt - at} ms`);
    t.equal(rig.nodes.nat.daemon?.process.running, false, 'the daemon is gone');
    t.match((await lab.exec(lab.natNs('nat'), 'ip', ['-br', 'link'])).stdout, /^int0@\S+\s+DOWN/m);
    t.equal(await rig.probe(ORDERS_PORT, 'redis', 1_000), undefined, 'nothing answers through the Elastic IP on the lost host');
    t.equal(rig.nodes.nat2.daemon?.process.running, true, 'the other daemon runs on');
  });

  await t.test('down() removes every namespace, the HA ones included', async (t) => {
    await rig.down();
    t.same(await namespacesOf(lab.prefix), []);
  });
});
