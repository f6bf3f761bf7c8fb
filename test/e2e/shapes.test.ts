// New ElastiCache shapes, for real: a Serverless cache served by the fake API
// (read by the real SDK) whose name resolves to two real servers, and the
// plaintext guard in warn and refuse mode, through `cachenat run` in the lab.

import t from 'tap';
import { baseTopology, startRig, stretch, waitFor, NAME } from '../../lab/rig.js';

const SERVERLESS = 'sl-abc123.serverless.use1.cache.amazonaws.com';
// Two servers of the lab's cache segment stand for two subnets of one Serverless cache.
const SUBNET_A = { ip: '198.19.0.13', server: 'redis-13' };
const SUBNET_B = { ip: '198.19.0.14', server: 'redis-14' };

interface StatusForward {
  key: string;
  listenPort: number;
  targetIp?: string;
  targetIps?: string[];
  state: string;
  tls: boolean;
}

t.test('Serverless, several addresses per name, and the plaintext guard', async (t) => {
  const rig = await startRig();
  t.teardown(() => rig.down());
  const { lab } = rig;
  lab.setHost(SERVERLESS, [SUBNET_A.ip, SUBNET_B.ip]);
  const topology = {
    ...baseTopology(),
    // The lab's servers listen on 6379 only, so the reader endpoint points there too.
    serverlessCaches: [{ name: 'sl', engine: 'valkey', endpoint: { address: SERVERLESS, port: 6379 }, reader: { address: SERVERLESS, port: 6379 } }],
  };
  // A plaintext cache; the lab's allowed client 198.18.0.10/32 is not a private range.
  topology.clusters.push({ id: 'plain', engine: 'redis', tls: false, nodes: [{ id: '0001', address: NAME.sessions2, port: 6379 }] });
  await rig.setTopology(topology);
  const daemon = await rig.start();

  const forwards = async () => ((await rig.status()) as unknown as { forwards: StatusForward[] }).forwards;
  const forward = async (key: string) => (await forwards()).find((f) => f.key === key);
  /** Which servers `n` new connections to `port` reach. */
  const spread = async (port: number, n: number) => {
    const seen: (string | undefined)[] = [];
    for (let i = 0; i < n; i++) seen.push(await rig.probe('client', port));
    return seen;
  };

  await t.test('both Serverless targets forward, TLS, and new connections land on both addresses', async (t) => {
    const both = await waitFor('serverless/sl and serverless-reader/sl active on two addresses', async () => {
      const all = await forwards();
      const sl = all.filter((f) => f.key.endsWith('/sl'));
      return sl.length === 2 && sl.every((f) => f.state === 'active' && f.targetIps?.length === 2) ? sl : undefined;
    });
    t.same(both.map((f) => f.key).sort(), ['serverless-reader/sl', 'serverless/sl']);
    t.ok(both.every((f) => f.tls), 'Serverless is TLS');
    for (const f of both) {
      t.same(f.targetIps, [SUBNET_A.ip, SUBNET_B.ip]);
      const seen = await spread(f.listenPort, 6);
      t.same(new Set(seen), new Set([SUBNET_A.server, SUBNET_B.server]), `${f.key}: new connections over both addresses (${seen.join(', ')})`);
    }
  });

  await t.test('an address that leaves the answer gets no new connections within dns.interval', async (t) => {
    const port = (await forward('serverless/sl'))!.listenPort;
    lab.setHost(SERVERLESS, SUBNET_A.ip);
    const started = Date.now();
    // dns.interval is 500 ms here; the bound stretches with the machine's load.
    const bound = stretch(5000);
    await waitFor('serverless/sl on one address', async () => (await forward('serverless/sl'))?.targetIps === undefined, bound);
    t.ok(Date.now() - started < bound, `followed in ${Date.now() - started} ms (dns.interval 500 ms; bound ${bound} ms, stretched for load)`);
    t.same(await spread(port, 6), Array(6).fill(SUBNET_A.server), 'every new connection goes to the remaining address');
  });

  await t.test('forward.plaintext warn: forwarded, and health says WARNING naming the cache', async (t) => {
    const plain = await waitFor('node/plain/0001 active', async () => {
      const f = await forward('node/plain/0001');
      return f?.state === 'active' ? f : undefined;
    });
    t.equal(plain.tls, false);
    t.equal(await rig.probe('client', plain.listenPort), SUBNET_B.server);
    const health = await rig.cli(['health']);
    t.equal(health.exitCode, 1, health.stdout);
    t.match(health.stdout, /\[WARNING\] warnings: cache plain \(node\/plain\/0001, port \d+\) has no in-transit encryption and 198\.18\.0\.10\/32 may reach it/);
  });

  await t.test('forward.plaintext refuse: not forwarded, port kept, state refused', async (t) => {
    const port = (await forward('node/plain/0001'))!.listenPort;
    rig.configure({ plaintext: 'refuse' });
    daemon.process.kill('SIGHUP');
    const refused = await waitFor('node/plain/0001 refused', async () => {
      const f = await forward('node/plain/0001');
      return f?.state === 'refused' ? f : undefined;
    });
    t.equal(refused.listenPort, port, 'its port stays reserved');
    // The CACHENAT-MAP chain still records the reserved port under the key; only DNAT rules count.
    const dnat = (await rig.save('nat')).split('\n').filter((l) => l.startsWith('-A CACHENAT-DNAT') && l.includes(' -j DNAT '));
    t.same(dnat.filter((l) => l.includes('node/plain/0001')), [], 'no DNAT rule for it');
    t.equal(await rig.probe('client', port, 'redis', 1500), undefined, 'the client cannot reach it');
    t.ok((await forwards()).some((f) => f.key === 'serverless/sl' && f.state === 'active'), 'TLS forwards are untouched');
  });
});
