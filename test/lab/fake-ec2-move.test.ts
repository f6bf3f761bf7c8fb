// The fake EC2 really moves the lab's Elastic IP: AssociateAddress takes
// publicIp/24 off the old holder's device, puts it on the new one's before
// answering, then announces it with a gratuitous ARP that a neighbour on the
// same segment takes in. Three throwaway namespaces on one bridge, made and
// removed here (named like a lab, so scripts/lab-sweep.sh removes what a
// crash leaves), under the lab lock. Root only.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createElasticIps } from '../../src/ha/elastic-ips.js';
import { startFakeEc2, type FakeAssociation } from '../../lab/fake-ec2.js';
import { deleteNamespace, execIn, ipBatch, run } from '../../lab/netns.js';
import { acquireLabSlot } from '../../lab/serial.js';

const ALLOC = 'eipalloc-0aaaaaaaaaaaaaaaa';
const PUBLIC_IP = '203.0.113.10';
const ENI = { a: 'eni-0aaaaaaaaaaaaaaaa', b: 'eni-0bbbbbbbbbbbbbbbb' };

const installed = (program: string) => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((dir) => existsSync(join(dir, program)));
const skip =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces)'
    : !installed('ip') || !installed('arping') || !installed('bash')
      ? 'needs ip (iproute2) and arping (iputils-arping)'
      : false;

t.test('AssociateAddress moves the address between namespaces and announces it', { skip }, async (t) => {
  t.teardown(await acquireLabSlot());
  const prefix = `cnl${randomBytes(2).toString('hex')}`;
  const ns = { a: `${prefix}-a`, b: `${prefix}-b`, c: `${prefix}-c`, sw: `${prefix}-sw` };
  // What scripts/lab-sweep.sh reads to leave a live run alone.
  const ownerDir = join(process.env.TMPDIR ?? tmpdir(), `cachenat-lab-${prefix}`);
  mkdirSync(ownerDir, { recursive: true });
  writeFileSync(join(ownerDir, 'owner.pid'), `${process.pid}\n`);
  t.teardown(async () => {
    for (const name of Object.values(ns)) await deleteNamespace(name).catch(() => undefined);
    rmSync(ownerDir, { recursive: true, force: true });
  });

  for (const name of Object.values(ns)) await run('ip', ['netns', 'add', name]);
  // One segment: a bridge in sw, a veth from each of a, b (the two NATs) and c (a router on the public side).
  await ipBatch(ns.sw, ['link add br0 type bridge', 'link set br0 up', 'link set lo up']);
  const hosts: [keyof typeof ns, string][] = [['a', '203.0.113.2/24'], ['b', '203.0.113.3/24'], ['c', '203.0.113.1/24']];
  for (const [host, address] of hosts) {
    await ipBatch(ns.sw, [`link add p${host} type veth peer name eth0 netns ${ns[host]}`, `link set p${host} master br0`, `link set p${host} up`]);
    await ipBatch(ns[host], ['link set lo up', 'link set eth0 up', `addr add ${address} dev eth0`]);
  }
  const mac = async (host: 'a' | 'b') => JSON.parse((await run('ip', ['-n', ns[host], '-j', 'link', 'show', 'eth0'])).stdout)[0].address as string;
  const holds = async (host: 'a' | 'b') => (await run('ip', ['-n', ns[host], '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(` ${PUBLIC_IP}/24 `);
  const neighbour = async () => (await run('ip', ['-n', ns.c, 'neigh', 'show', PUBLIC_IP, 'dev', 'eth0'])).stdout;
  // The router sends the address a datagram (bash's /dev/udp: no ping here), which makes its kernel resolve it by ARP.
  const resolvedAt = async () => {
    await execIn(ns.c, 'bash', ['-c', `echo x > /dev/udp/${PUBLIC_IP}/9`]);
    for (let i = 0; i < 40 && !/lladdr/.test(await neighbour()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    return neighbour();
  };

  const fake = await startFakeEc2({
    state: {
      addresses: [{ allocationId: ALLOC, publicIp: PUBLIC_IP }],
      interfaces: [
        { networkInterfaceId: ENI.a, instanceId: 'i-0aaaaaaaaaaaaaaaa', privateIps: ['10.0.1.10'], ns: ns.a, iface: 'eth0' },
        { networkInterfaceId: ENI.b, instanceId: 'i-0bbbbbbbbbbbbbbbb', privateIps: ['10.0.2.10'], ns: ns.b, iface: 'eth0' },
      ],
    },
  });
  const eips = createElasticIps({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 5000, credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'x' } });
  t.teardown(async () => {
    eips.close();
    await fake.close();
  });

  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI.a, privateIp: '10.0.1.10' });
  t.ok(await holds('a'), 'on a once AssociateAddress has answered');
  t.notOk(await holds('b'));
  t.match(await resolvedAt(), await mac('a'), 'the router knows the address at a');

  const started = Date.now();
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI.b, privateIp: '10.0.2.10' });
  const answeredIn = Date.now() - started;
  t.ok(await holds('b'), 'on b once AssociateAddress has answered');
  t.notOk(await holds('a'), 'gone from a');
  t.ok(answeredIn < 1500, `answered in ${answeredIn} ms: before arping's 2 s are over`);
  // The control route waits for the gratuitous ARP that runs after the answer (what the lab's tests read).
  const answer = (await (await fetch(`${fake.url}/_fake/associations?settled=true`)).json()) as { associations: FakeAssociation[] };
  const [, move] = answer.associations;
  t.match(move, { from: { ns: ns.a }, to: { ns: ns.b }, arping: { exitCode: 0 } }, 'arping from b recorded once settled');
  t.ok(move!.arrivedAt <= move!.movedAt && move!.movedAt <= move!.answeredAt! && move!.answeredAt! <= move!.arping!.finishedAt, 'arrived <= moved <= answered <= arping done');
  t.match(await neighbour(), await mac('b'), 'the gratuitous ARP moved the router\'s entry to b, no timeout needed');

  // The old holder lost the address on its own (a crash, a reboot): the move still succeeds.
  await run('ip', ['-n', ns.b, 'addr', 'del', `${PUBLIC_IP}/24`, 'dev', 'eth0']);
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI.a, privateIp: '10.0.1.10' });
  t.ok(await holds('a'), 'back on a');
  t.match(fake.associations()[2]?.commands[0], { args: ['-n', ns.b, 'addr', 'del', `${PUBLIC_IP}/24`, 'dev', 'eth0'], exitCode: 2 }, 'the failed delete is recorded, not fatal');

  // Associated again to the instance that holds it (a new leader's daemon on the same instance): accepted, the address stays, and the next move takes it off.
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI.a, privateIp: '10.0.1.10' });
  t.ok(await holds('a'), 'still on a after associating it there again');
  t.equal(fake.associations().length, 4, 'recorded as an association');
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI.b, privateIp: '10.0.2.10' });
  t.ok(await holds('b'), 'then moved to b');
  t.notOk(await holds('a'), 'and off a: the fake still knew a held it');
  await fake.settled();
});
