// The whole path, for real: fake ElastiCache API → `cachenat run` → kernel
// rules in the NAT namespace → a client reaching real redis-server and
// memcached processes on the cache segment.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NAME, baseTopology, portsOf, startRig, stretch, waitFor } from '../../lab/rig.js';

const EXPECTED_PORTS = {
  'node/mc/0001': 11211,
  'node/mc/0002': 11212,
  'node/mc/0003': 11213,
  'primary/orders': 6379,
  'reader/orders': 6380,
  'node/orders-001/0001': 6381,
  'node/orders-002/0001': 6382,
  'node/sessions/0001': 6383,
};

// Long enough to watch a forward draining and probe it on a loaded machine
// (each look spawns a process in a namespace, seconds under load); the lab's
// 4 s was over before the probe could connect.
const REMOVAL_GRACE_MS = 20_000;

t.test('cachenat in a lab of namespaces', async (t) => {
  const rig = await startRig({ settings: { removalGrace: `${REMOVAL_GRACE_MS / 1000}s` } });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const withoutTimestamps = (save: string) => save.replace(/^#.*$/gm, '');

  await t.test('plan before the first pass: changes pending (exit 2), nothing touched', async (t) => {
    const before = await rig.save();
    const r = await rig.cli(['plan']);
    t.equal(r.exitCode, 2, r.stderr);
    t.match(r.stdout, /new target primary\/orders on port 6379/);
    t.match(r.stdout, /-A CACHENAT-DNAT -p tcp -m tcp --dport 11213 /);
    t.equal(withoutTimestamps(await rig.save()), withoutTimestamps(before));
  });

  let daemon = await rig.start();

  await t.test('first sync: sticky ports in (cluster, node) order, every node reachable', async (t) => {
    // waitFor resolves only with a truthy value, so `!` drops the `undefined` its type still carries.
    const status = (await waitFor('all forwards active', async () => {
      const s = await rig.status();
      return s.forwards.length === 8 && s.forwards.every((f) => f.state === 'active') ? s : undefined;
    }))!;
    t.same(portsOf(status), EXPECTED_PORTS);
    const seen: Record<number, string | undefined> = {};
    for (const port of Object.values(EXPECTED_PORTS)) seen[port] = await rig.probe('client', port);
    t.same(seen, { 6379: 'redis-11', 6380: 'redis-12', 6381: 'redis-11', 6382: 'redis-12', 6383: 'redis-13', 11211: 'memc-21', 11212: 'memc-22', 11213: 'memc-23' });
  });

  await t.test('ip_forward enabled and persisted to the (lab) sysctl.d; the ruleset saved for reboot', async (t) => {
    t.equal(await lab.ipForward(), true);
    t.equal(readFileSync(join(rig.dir, 'sysctl.d', '90-cachenat.conf'), 'utf8').match(/^net\.ipv4\.ip_forward = 1$/m)?.[0], 'net.ipv4.ip_forward = 1');
    const saved = readFileSync(join(rig.dir, 'rules.v4'), 'utf8');
    t.match(saved, /-A CACHENAT-DNAT -p tcp -m tcp --dport 11213 /, 'persist.rulesFile holds the full ruleset');
    t.match(saved, /^\*filter$/m);
  });

  await t.test('a source outside allowedSources gets nothing, on either interface', async (t) => {
    t.equal(await rig.probe('rogue', 6379), undefined, 'same segment, not allowed');
    t.equal(await rig.probe('side', 6379), undefined, 'another interface');
    t.equal(await rig.probe('client', 6379), 'redis-11', 'the allowed client still does');
  });

  await t.test('a second pass with nothing to change writes nothing', async (t) => {
    const before = await rig.save();
    const plan = await rig.cli(['plan']);
    t.equal(plan.exitCode, 0, plan.stdout + plan.stderr);
    t.match(plan.stdout, /nothing to do/);
    t.equal(withoutTimestamps(await rig.save()), withoutTimestamps(before));
  });

  await t.test('a node added gets the next port', async (t) => {
    const topology = baseTopology();
    topology.clusters.find((c) => c.id === 'sessions')!.nodes!.push({ id: '0002', address: NAME.sessions2, port: 6379 });
    await rig.setTopology(topology);
    const value = await waitFor('node sessions/0002 on 6384', () => rig.probe('client', 6384));
    t.equal(value, 'redis-14');
    t.same(portsOf(await rig.status()), { ...EXPECTED_PORTS, 'node/sessions/0002': 6384 });
  });

  await t.test("a node's IP change is followed on the same port", async (t) => {
    lab.setHost(NAME.sessions1, '198.19.0.14');
    t.equal(await waitFor('6383 → redis-14', async () => ((await rig.probe('client', 6383)) === 'redis-14' ? 'redis-14' : undefined)), 'redis-14');
    lab.setHost(NAME.sessions1, '198.19.0.13');
    await waitFor('6383 back on redis-13', async () => (await rig.probe('client', 6383)) === 'redis-13');
  });

  await t.test('a primary failover is followed on the same port', async (t) => {
    const started = Date.now();
    lab.setHost(NAME.primary, '198.19.0.12');
    await waitFor('primary port reaches the promoted replica', async () => (await rig.probe('client', 6379)) === 'redis-12');
    t.comment(`followed in ${Date.now() - started} ms (timing is measured by the benchmark, not asserted here)`);
    t.equal(portsOf(await rig.status())['primary/orders'], 6379);
    lab.setHost(NAME.primary, '198.19.0.11');
    await waitFor('primary back', async () => (await rig.probe('client', 6379)) === 'redis-11');
  });

  await t.test('a node removed keeps its forward through the grace period, then is gone', async (t) => {
    const topology = baseTopology();
    topology.clusters.find((c) => c.id === 'sessions')!.nodes!.push({ id: '0002', address: NAME.sessions2, port: 6379 });
    topology.clusters.find((c) => c.id === 'mc')!.nodes!.pop();
    await rig.setTopology(topology);
    const draining = await waitFor('mc/0003 draining', async () => (await rig.status()).forwards.find((f) => f.key === 'node/mc/0003' && f.state === 'draining'));
    t.ok(draining);
    t.equal(await rig.probe('client', 11213), 'memc-23', 'still forwarded while draining');
    await waitFor('mc/0003 removed after its grace period (bound stretched by the load average)', async () => !(await rig.status()).forwards.some((f) => f.key === 'node/mc/0003'), stretch(REMOVAL_GRACE_MS + 10_000));
    t.equal(await rig.probe('client', 11213, 'memcached', 800), undefined, 'gone after the grace period');
    t.notMatch(await rig.save('nat'), /--dport 11213/);
  });

  await t.test('kill -9, topology changed meanwhile, restart: same ports, no duplicates', async (t) => {
    const before = portsOf(await rig.status());
    daemon.process.kill('SIGKILL');
    await daemon.process.exited;
    const topology = baseTopology();
    topology.clusters.find((c) => c.id === 'sessions')!.nodes!.push({ id: '0002', address: NAME.sessions2, port: 6379 });
    topology.clusters.find((c) => c.id === 'mc')!.nodes!.pop();
    topology.clusters.push({ id: 'late', engine: 'memcached', nodes: [{ id: '0001', address: NAME.mc(3), port: 11211 }] });
    await rig.setTopology(topology);
    t.equal(await rig.probe('client', 6379), 'redis-11', 'forwards keep working while the daemon is down');
    daemon = await rig.start();
    const after = (await waitFor('late/0001 forwarded', async () => {
      const ports = portsOf(await rig.status());
      return ports['node/late/0001'] ? ports : undefined;
    }))!;
    for (const [key, port] of Object.entries(before)) t.equal(after[key], port, `${key} kept ${port}`);
    t.equal(after['node/late/0001'], 11214, 'the quarantined 11213 is not handed to a new target');
    const nat = await rig.save('nat');
    const dnat = nat.split('\n').filter((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes(' -j DNAT '));
    t.equal(new Set(dnat).size, dnat.length, 'no duplicate rules');
    t.equal(dnat.length, Object.keys(after).length);
    t.equal(nat.split('\n').filter((l) => l === '-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING').length, 1, 'one jump');
  });

  await t.test('lost state file: ports recovered from the installed rules', async (t) => {
    const before = portsOf(await rig.status());
    daemon.process.kill('SIGKILL');
    await daemon.process.exited;
    await lab.exec(lab.ns.nat, 'rm', ['-f', `${rig.dir}/state/ports.json`]);
    daemon = await rig.start();
    await waitFor('status from the new daemon', async () => Object.keys(portsOf(await rig.status())).length === Object.keys(before).length);
    t.same(portsOf(await rig.status()), before);
  });

  await t.test('endpoints: table, json and natmap', async (t) => {
    const table = await rig.cli(['endpoints']);
    t.match(table.stdout, /198\.18\.0\.1:6379\s+redis\s+primary/);
    const natmap = JSON.parse((await rig.cli(['endpoints', '--format', 'natmap'])).stdout) as Record<string, { host: string; port: number }>;
    t.same(natmap['198.19.0.21:11211'], { host: '198.18.0.1', port: 11211 });
    t.same(natmap[`${NAME.orders2}:6379`], { host: '198.18.0.1', port: 6382 });
    const sg = await rig.cli(['endpoints', '--format', 'security-group']);
    t.equal(sg.exitCode, 0, sg.stderr);
    t.match(sg.stdout, /198\.18\.0\.10\/32/, 'the allowed sources');
    t.match(sg.stdout, /6379-6384/, 'the redis ports as one range');
    t.match(sg.stdout, /aws ec2 authorize-security-group-ingress/);
  });

  await t.test('SIGTERM stops cleanly and leaves the forwards in place', async (t) => {
    daemon.process.kill('SIGTERM');
    const exit = await daemon.process.exited;
    t.equal(exit.exitCode, 0);
    t.equal(await rig.probe('client', 6379), 'redis-11');
  });

  await t.test('flush removes everything cachenat installed, nothing else', async (t) => {
    await rig.iptables(['-t', 'nat', '-A', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'MASQUERADE']);
    const r = await rig.cli(['flush']);
    t.equal(r.exitCode, 0, r.stderr);
    const save = await rig.save();
    t.notMatch(save, /CACHENAT|cachenat/);
    t.match(save, /-A POSTROUTING -s 192\.0\.2\.0\/24 -j MASQUERADE/);
    t.equal(await rig.probe('client', 6379, 'redis', 800), undefined);
  });

  await t.test('apply: one pass puts every forward back with the same ports, then exits', async (t) => {
    const r = await rig.cli(['apply']);
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /rules updated/);
    t.equal(await rig.probe('client', 6379), 'redis-11');
    t.equal(await rig.probe('client', 11214), 'memc-23');
    t.equal((await rig.cli(['plan'])).exitCode, 0, 'nothing left to do');
  });
});
