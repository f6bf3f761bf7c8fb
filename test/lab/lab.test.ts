import { existsSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { compiledLabFile, Lab, LAB_PREFIX, prerequisiteProblem } from '../../lab/lab.js';
import { isAlive } from '../../lab/netns.js';
import { probe } from '../../lab/probe.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

// Probes and seeding run the compiled probe inside namespaces: build it if dist/ is missing or stale.
t.before(async () => {
  try {
    compiledLabFile('probe.js');
  } catch {
    await execa('npx', ['tsc', '-p', '.'], { cwd: root, reject: false });
    compiledLabFile('probe.js');
  }
});

const namespacesOf = async (prefix: string): Promise<string[]> =>
  (await execa('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(`${prefix}-`));

const etcNetnsOf = (prefix: string): string[] =>
  existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((name) => name.startsWith(`${prefix}-`)) : [];

const pgrep = async (name: string): Promise<number[]> =>
  (await execa('pgrep', ['-x', name], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);

/** Asserts a lab left nothing: namespaces, /etc/netns entries, temp dir, server processes. */
async function assertGone(t: Test, prefix: string, tmpDir: string, pids: number[]): Promise<void> {
  t.same(await namespacesOf(prefix), [], 'no namespaces left');
  t.same(etcNetnsOf(prefix), [], 'no /etc/netns entries left');
  t.notOk(existsSync(tmpDir), 'temp dir removed');
  // A server killed along with its parent lingers as a zombie until init reaps it.
  const deadline = Date.now() + 3_000;
  let left: number[];
  do {
    const running = [...(await pgrep('redis-server')), ...(await pgrep('memcached'))];
    left = pids.filter((pid) => running.includes(pid) || isAlive(pid));
    if (left.length > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  } while (left.length > 0 && Date.now() < deadline);
  t.same(left, [], 'no redis-server or memcached of this lab is running');
}

t.test('lab topology, plain routing, hosts file and teardown', async (t) => {
  const lab = await Lab.start();
  t.teardown(() => lab.down());
  const { ns, addr } = lab;

  t.test('names and addresses', async (t) => {
    t.match(lab.prefix, LAB_PREFIX);
    t.equal(ns.nat, `${lab.prefix}-nat`);
    const natAddrs = (await lab.exec(ns.nat, 'ip', ['-4', '-br', 'addr'])).stdout;
    t.match(natAddrs, /^ext0@\S+\s+UP\s+198\.18\.0\.1\/24/m, 'clients arrive on ext0');
    t.match(natAddrs, /^side0@\S+\s+UP\s+198\.18\.1\.1\/24/m, 'side host behind side0');
    t.match(natAddrs, /^int0@\S+\s+UP\s+198\.19\.0\.1\/24/m, 'cache segment on int0');
    t.equal(await lab.ipForward(), false, 'ip_forward is left at 0 for the daemon to enable');
    t.match((await lab.exec(ns.client, 'ip', ['route'])).stdout, /default via 198\.18\.0\.1/);
    t.match((await lab.exec(ns.side, 'ip', ['route'])).stdout, /default via 198\.18\.1\.1/);
    for (const cacheNs of [ns.redis, ns.memc]) {
      const routes = (await lab.exec(cacheNs, 'ip', ['route'])).stdout.trim().split('\n');
      t.match(routes, [/^198\.19\.0\.0\/24 dev eth0 /], `${cacheNs} knows only its own segment: no default, no way back`);
      t.equal(routes.length, 1);
    }
    t.same(
      lab.redisServers.map((s) => `${s.name} ${s.ip}:${s.port}`),
      ['redis-11 198.19.0.11:6379', 'redis-12 198.19.0.12:6379', 'redis-13 198.19.0.13:6379', 'redis-14 198.19.0.14:6379'],
    );
    t.same(
      lab.memcachedServers.map((s) => `${s.name} ${s.ip}:${s.port}`),
      ['memc-21 198.19.0.21:11211', 'memc-22 198.19.0.22:11211', 'memc-23 198.19.0.23:11211'],
    );
  });

  t.test('without a way back, forwarded SYNs go unanswered', async (t) => {
    await lab.setIpForward(true);
    t.equal(await lab.ipForward(), true);
    const [redis, memc] = await Promise.all([
      lab.probe(ns.client, '198.19.0.11', 6379, 'redis', 800),
      lab.probe(ns.client, '198.19.0.21', 11211, 'memcached', 800),
    ]);
    t.equal(redis.ok, false);
    t.match(redis.error, /timed out after 800 ms connecting to 198\.19\.0\.11:6379/);
    t.equal(memc.ok, false);
    t.match(memc.error, /timed out/);
  });

  t.test('with return routes, plain routing reaches every server', async (t) => {
    await lab.addReturnRoutes();
    const servers = [...lab.redisServers, ...lab.memcachedServers];
    const results = await Promise.all(servers.map((s) => lab.probe(ns.client, s.ip, s.port, s.protocol)));
    t.same(
      results.map((r) => r.value),
      servers.map((s) => s.name),
      'each server answers with its own name',
    );
    const [nat, rogue, side, wrongPort] = await Promise.all([
      lab.probe(ns.side, addr.natInt, 6379, 'redis'),
      lab.probe(ns.rogue, '198.19.0.21', 11211, 'memcached'),
      lab.probe(ns.side, '198.19.0.12', 6379, 'redis'),
      lab.probe(ns.client, '198.19.0.21', 6379, 'redis'),
    ]);
    t.same(nat, { ok: false, error: `connection to ${addr.natInt}:6379 refused (nothing listening, or a REJECT rule)` });
    t.equal(rogue.value, 'memc-21', 'the rogue is kept out by cachenat, not by the lab');
    t.equal(side.value, 'redis-12');
    t.match(wrongPort.error, /refused/);

    await lab.removeReturnRoutes();
    t.match((await lab.probe(ns.client, '198.19.0.11', 6379, 'redis', 500)).error, /timed out/, 'baseline removed again');
    await lab.setIpForward(false);
  });

  t.test('setHost rewrites the hosts file in place, seen by a running process', async (t) => {
    const name = 'primary.cache.lab';
    const inode = statSync(lab.hostsFile).ino;
    // A long-lived resolver in the NAT namespace, like the daemon: its /etc/hosts bind mount was made once, at start.
    const resolver = lab.spawnIn(
      ns.nat,
      process.execPath,
      ['-e', `setInterval(() => require('node:dns').lookup(${JSON.stringify(name)}, { family: 4 }, (e, a) => console.log('lookup ' + (e ? e.code : a))), 50)`],
      { env: { NODE_OPTIONS: '' }, label: 'resolver' },
    );
    await resolver.waitForLine(/^lookup E/, 5_000);

    let mark = resolver.mark();
    lab.setHost(name, '198.19.0.11');
    await resolver.waitForLine(/^lookup 198\.19\.0\.11$/, 5_000, mark);
    mark = resolver.mark();
    lab.setHost(name, '198.19.0.12');
    await resolver.waitForLine(/^lookup 198\.19\.0\.12$/, 5_000, mark);
    t.match((await lab.exec(ns.nat, 'getent', ['hosts', name])).stdout, /^198\.19\.0\.12\s+primary\.cache\.lab$/m);

    mark = resolver.mark();
    lab.removeHost(name);
    await resolver.waitForLine(/^lookup E/, 5_000, mark);
    t.equal((await lab.exec(ns.nat, 'getent', ['hosts', name], { reject: false })).exitCode, 2, 'getent: not found');
    t.equal(statSync(lab.hostsFile).ino, inode, 'same inode throughout');

    t.throws(() => lab.setHost('bad name', '198.19.0.11'), /not a host name/);
    t.throws(() => lab.setHost(name, '198.19.0.300'), /not an IPv4 address/);
    await resolver.stop();
  });

  t.test('down() removes everything, and may be called again', async (t) => {
    const pids = [...lab.redisServers, ...lab.memcachedServers].map((s) => s.process.pid);
    t.ok(pids.every(isAlive), 'servers run before down()');
    t.equal((await namespacesOf(lab.prefix)).length, 7);
    await lab.down();
    await assertGone(t, lab.prefix, lab.tmpDir, pids);
    await t.resolves(lab.down(), 'second down() is a no-op');
  });
});

// The lab run in a separate, compiled process, so it can die the way a test process does.
const childLab = (then: string): string => `
  import { Lab } from ${JSON.stringify(compiledLabFile('lab.js'))};
  const lab = await Lab.start({ redis: 1, memcached: 1 });
  const pids = [...lab.redisServers, ...lab.memcachedServers].map((s) => s.process.pid);
  console.log(JSON.stringify({ prefix: lab.prefix, tmpDir: lab.tmpDir, pids }));
  ${then}
`;

t.test('a test that throws midway still leaves nothing behind', async (t) => {
  // A hosts file for the client namespace too (address mode's tests write one): /etc/netns/<client> goes with the lab.
  const then = "lab.writeHostsFile(lab.ns.client, '198.18.0.101 a.cache.lab\\n'); console.error('client hosts: ' + (await import('node:fs')).readFileSync('/etc/netns/' + lab.ns.client + '/hosts', 'utf8').trim()); throw new Error('test failed midway');";
  const child = await execa(process.execPath, ['--input-type=module', '-e', childLab(then)], {
    reject: false,
    env: { NODE_OPTIONS: '' },
  });
  t.equal(child.exitCode, 1);
  t.match(child.stderr, /^client hosts: 198\.18\.0\.101 a\.cache\.lab$/m, 'the client namespace had its hosts file');
  t.match(child.stderr, /test failed midway/);
  const { prefix, tmpDir, pids } = JSON.parse(child.stdout) as { prefix: string; tmpDir: string; pids: number[] };
  t.equal(pids.length, 2);
  await assertGone(t, prefix, tmpDir, pids);
});

t.test('SIGTERM to the test process tears its lab down', async (t) => {
  const child = execa(process.execPath, ['--input-type=module', '-e', childLab('setInterval(() => {}, 1000);')], {
    reject: false,
    env: { NODE_OPTIONS: '' },
  });
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  const { prefix, tmpDir, pids } = JSON.parse(first) as { prefix: string; tmpDir: string; pids: number[] };
  t.equal((await namespacesOf(prefix)).length, 7, 'lab is up');
  child.kill('SIGTERM');
  const result = await child;
  t.equal(result.signal, 'SIGTERM', 'still dies of the signal');
  await assertGone(t, prefix, tmpDir, pids);
});

t.test('probe() reports what a server answered', async (t) => {
  // Loopback servers that answer a fixed reply to anything.
  const answering = async (reply: string | undefined): Promise<{ port: number; close: () => void }> => {
    const server = net.createServer((socket) => {
      if (reply === undefined) return; // accepts, never answers
      socket.once('data', () => socket.write(reply));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
  };
  const cases: Array<[string, 'redis' | 'memcached', string | undefined, RegExp]> = [
    ['redis nil', 'redis', '$-1\r\n', /holds no whoami key/],
    ['redis error', 'redis', '-NOAUTH Authentication required.\r\n', /answered with an error: NOAUTH/],
    ['memcached miss', 'memcached', 'END\r\n', /holds no whoami key/],
    ['memcached error', 'memcached', 'SERVER_ERROR out of memory\r\n', /SERVER_ERROR out of memory/],
    ['silence', 'redis', undefined, /accepted the connection but did not answer within 300 ms/],
  ];
  for (const [what, protocol, reply, error] of cases) {
    const server = await answering(reply);
    const result = await probe('127.0.0.1', server.port, protocol, { timeoutMs: 300 });
    t.match(result, { ok: false, error }, what);
    server.close();
  }
  const split = await answering('VALUE whoami 0 7\r\nmemc-21\r\nEND\r\n');
  t.same(await probe('127.0.0.1', split.port, 'memcached'), { ok: true, value: 'memc-21' });
  split.close();

  const usage = await execa(process.execPath, [compiledLabFile('probe.js'), '127.0.0.1', '70000', 'redis'], { reject: false });
  t.equal(usage.exitCode, 2);
  t.match(usage.stderr, /PORT must be 1-65535/);
});

t.test('up() installs nothing: it says what to apt-get install', async (t) => {
  t.equal(prerequisiteProblem(0, () => true), undefined);
  t.match(prerequisiteProblem(1000, () => true), /must run as root/);
  t.equal(
    prerequisiteProblem(0, (program) => program === 'ip' || program === 'sysctl'),
    'the lab needs redis-server, memcached, not installed here: apt-get install -y redis-server memcached',
  );
  t.match(prerequisiteProblem(0, (program) => program !== 'ip'), /apt-get install -y iproute2$/);
});
