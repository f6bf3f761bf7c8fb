// The CDK constructs' user data, booted in the two-NAT lab (lab/user-data-boot.ts:
// cloud-init's files and command, systemd's start at READY=1): the pair comes
// up from it, each boot's cfn-ready signals success, and then the drill of
// deploy/README.md: the leader's instance is lost, the standby takes over
// after a lease, and the group's replacement (an empty state dir, a kernel
// that never ran cachenat) boots from the same user data and joins as the
// standby with every port unchanged, the one allocated while it was away
// included. Real daemons, iptables, dynalite, the fake EC2 moving the
// Elastic IP (lease 4 s, as in test/e2e/ha-failover.test.ts).

import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { portsOf, stretch } from '../../lab/rig.js';
import { addSoloCluster, asNewInstance, leadingAlone, SOLO } from '../../lab/replacement.js';
import { startHaRig } from '../../lab/ha-rig.js';
import { dnatRules, kernelPorts, logTime, PROBED, settledPair, sorted, statusOf, type Pair } from '../../lab/ha-failover.js';
import { loadFactor } from '../../lab/load.js';
import { bootFromUserData, labRenderedConfig, labUserData, LAB_ONLY_KEYS, type Boot } from '../../lab/user-data-boot.js';
import { CONFIG_PATH, renderConfig } from '../../deploy/lib/user-data.js';

const LEASE_MS = 4_000;
const FORWARDS = 8;

t.test("the constructs' user data in the HA lab: the pair boots, a lost leader's replacement joins as standby with every port", async (t) => {
  const rig = await startHaRig({ lease: `${LEASE_MS / 1000}s` });
  t.teardown(() => rig.down());
  // What a new instance's kernel has before cachenat ever ran there.
  const bootRules = await rig.save('nat');
  // The stack makes the table before any instance starts; here `ha init` stands in for it.
  const init = await rig.cli('nat', ['ha', 'init']);
  t.equal(init.exitCode, 0, `ha init: ${init.stdout}${init.stderr}`);

  const rendered = labRenderedConfig(rig);
  const userData = { nat: labUserData(rig, 'nat', rendered), nat2: labUserData(rig, 'nat2', rendered) };
  const checkBoot = (t: Test, which: string, boot: Boot, group: string) => {
    t.equal(boot.exitCode, 0, `${which}: cfn-ready exits 0: ${boot.output.join(' | ')}`);
    t.equal(boot.signals.length, 1, `${which}: one signal`);
    const [signal] = boot.signals;
    t.same(signal?.slice(0, 2), ['--exit-code', '0'], `${which}: success`);
    t.same(signal?.slice(4), ['--stack', 'cachenat-lab', '--resource', group, '--region', 'us-east-1'], `${which}: to its own group`);
    t.match(signal?.[3], /^(OK|WARNING)\b/, `${which}: health's verdict as the reason: ${signal?.[3]}`);
    t.ok(boot.doneAt >= boot.readyAt, `${which}: signalled after READY (${boot.doneAt - boot.readyAt} ms after)`);
    // Every key the user data sets reaches the daemon as written; the lab only adds its own.
    const written = parse(renderConfig(rendered)) as Record<string, Record<string, unknown>>;
    for (const [section, keys] of Object.entries(written)) {
      for (const [key, value] of Object.entries(keys)) t.same((boot.config[section] as Record<string, unknown>)?.[key], value, `${which}: ${section}.${key} as the user data wrote it`);
    }
    t.same(
      Object.keys(boot.config).filter((k) => !(k in written)).sort(),
      [...new Set(LAB_ONLY_KEYS.map((k) => k.split('.')[0]!))].filter((k) => !(k in written)).sort(),
      `${which}: the lab adds only its own sections`,
    );
  };

  let pair: Pair | undefined;
  await t.test('the pair boots from the user data, one group after the other', async (t) => {
    t.match(userData.nat, new RegExp(`^#cloud-config\\n[\\s\\S]*- path: ${CONFIG_PATH}`), 'cloud-config writing the config');
    const first = await bootFromUserData(rig, 'nat', userData.nat);
    checkBoot(t, 'nat', first, 'Group1');
    t.ok(await logTime(rig, 'nat', /ha: became leader \(term 1, lease free\)/, stretch(10_000), 0), 'nat leads (term 1)');
    const second = await bootFromUserData(rig, 'nat2', userData.nat2);
    checkBoot(t, 'nat2', second, 'Group2');
    pair = await settledPair(rig, 'nat', FORWARDS);
    t.equal(pair.term, 1);
    t.same(kernelPorts(await dnatRules(rig, 'nat2')), pair.ports, "nat2's kernel has the leader's port for every key");
    t.comment(`systemctl start to signal: nat ${first.doneAt - first.startAskedAt} ms, nat2 ${second.doneAt - second.startAskedAt} ms (load per core ${loadFactor().toFixed(1)})`);
  });
  if (!pair) return;
  const before = pair;

  await t.test("the drill: the leader's instance is lost; the group's replacement boots from the same user data and joins as standby", async (t) => {
    const { at } = await rig.loseInstance('nat');
    const became = await logTime(rig, 'nat2', /ha: became leader/, LEASE_MS + stretch(10_000), 0);
    t.match(became.line, /became leader \(term 2, lease expired: i-\S+ did not renew for a whole lease\)/, 'the standby takes term 2 once the lost leader\'s lease has run out');

    // While the group replaces the instance, a new cluster appears: the lone leader allocates it a port.
    await addSoloCluster(rig);
    const alone = await leadingAlone(rig, 'nat2', FORWARDS + 1);
    const ports = portsOf(alone);
    t.same(sorted(ports).filter(([key]) => key !== SOLO.key), sorted(before.ports), 'the survivor kept every port');
    t.ok(ports[SOLO.key], `${SOLO.key} got port ${ports[SOLO.key]} while nat was away`);
    const servedAt = Date.now();

    // The replacement: a new disk (no state dir, no saved rules) and a kernel that never ran cachenat.
    await asNewInstance(rig, 'nat', bootRules);
    t.equal((await dnatRules(rig, 'nat')).lines.length, 0, 'the replacement starts with no cachenat rules');
    await rig.restoreLinks('nat');

    const boot = await bootFromUserData(rig, 'nat', userData.nat);
    checkBoot(t, 'the replacement', boot, 'Group1');
    const joined = await settledPair(rig, 'nat2', FORWARDS + 1);
    t.same(sorted(joined.ports), sorted(ports), 'the replacement serves every port the leader has, the new one included (from DynamoDB)');
    const standby = await statusOf(rig, 'nat');
    t.equal(standby.ha?.role, 'standby', 'it joined as the standby');
    t.equal(standby.ha?.lease?.holder, rig.nodes.nat2.instance.instanceId, 'the survivor keeps the lease');
    t.same(kernelPorts(await dnatRules(rig, 'nat')), ports, "the replacement's kernel rules carry those ports");
    t.same((await dnatRules(rig, 'nat')).problems, [], 'no duplicate DNAT');
    for (const { key, protocol, answers } of [...PROBED, SOLO]) t.equal(await rig.probe(ports[key]!, protocol), answers, `${key} still answers through the Elastic IP`);
    t.comment(
      `drill: new leader ${became.at - at} ms after the loss (lease ${LEASE_MS} ms); the replacement asked to start ${boot.startAskedAt - servedAt} ms after the wipe began, ` +
        `READY ${boot.readyAt - boot.startAskedAt} ms later, cfn-ready done ${boot.doneAt - boot.readyAt} ms after READY (load per core ${loadFactor().toFixed(1)})`,
    );
  });
});
