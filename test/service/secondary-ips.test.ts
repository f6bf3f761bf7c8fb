// ami/secondary-ips.sh and its unit: on a distro without amazon-ec2-net-utils,
// the instance's secondary private IPv4s (address mode's listen addresses)
// are put on the interface from IMDSv2. The script runs for real in a
// throwaway network namespace, against a fake metadata service that answers
// only with an IMDSv2 token.
import t, { type Test } from 'tap';
import { execa, type ResultPromise } from 'execa';
import { chmod, cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchDir } from '../support/scratch.js';

const repoFile = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const script = repoFile('ami/secondary-ips.sh');
const unitPath = repoFile('systemd/cachenat-secondary-ips.service');

const MAC = '02:00:0a:00:01:0a';
const OTHER_MAC = '02:00:0a:00:09:99'; // in the metadata, not on this host

// A metadata service that wants IMDSv2: GETs without the token are refused.
const FAKE_IMDS = `
import { createServer } from 'node:http';
const token = 'tok-' + process.pid;
const tree = JSON.parse(process.argv[2]);
const server = createServer((req, res) => {
  if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) {
    res.end(token);
    return;
  }
  if (req.method !== 'GET' || req.headers['x-aws-ec2-metadata-token'] !== token) { res.statusCode = 401; res.end(); return; }
  const body = tree[req.url.replace('/latest/meta-data/', '')];
  if (body === undefined) { res.statusCode = 404; res.end(); return; }
  res.end(body);
});
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
`;

const hasNetns = process.getuid?.() === 0 && (await execa('ip', ['netns', 'list'], { reject: false })).exitCode === 0;

interface Rig {
  ns: string;
  url: string;
  run(env?: Record<string, string>): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
  addresses(): Promise<string[]>;
}

async function rig(t: Test, tree: Record<string, string>): Promise<Rig> {
  const dir = scratchDir(t, 'secips');
  const ns = `cnsec${process.pid}x${Math.floor(Math.random() * 1e6)}`;
  await execa('ip', ['netns', 'add', ns]);
  t.teardown(() => execa('ip', ['netns', 'delete', ns], { reject: false }));
  await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A veth pair (the dummy driver is not in every kernel); `ip -o link` shows it as ens5@peer.
  await execa('ip', ['-n', ns, 'link', 'add', 'ens5', 'address', MAC, 'type', 'veth', 'peer', 'name', 'peer5']);
  await execa('ip', ['-n', ns, 'link', 'set', 'ens5', 'up']);
  await execa('ip', ['-n', ns, 'link', 'set', 'peer5', 'up']);
  await execa('ip', ['-n', ns, 'addr', 'add', '10.0.1.10/24', 'dev', 'ens5']);

  await writeFile(join(dir, 'imds.mjs'), FAKE_IMDS);
  const server: ResultPromise = execa('ip', ['netns', 'exec', ns, process.execPath, join(dir, 'imds.mjs'), JSON.stringify(tree)], { reject: false, buffer: false });
  t.teardown(() => { server.kill(); });
  const port = await new Promise<string>((resolve, reject) => {
    let seen = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const m = /port (\d+)/.exec(seen);
      if (m) resolve(m[1]!);
    });
    server.once('exit', () => reject(new Error('the fake metadata service exited')));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    ns,
    url,
    run: async (env = {}) => {
      const r = await execa('ip', ['netns', 'exec', ns, 'env', `CACHENAT_IMDS_URL=${env.CACHENAT_IMDS_URL ?? url}`, `PATH=${env.PATH ?? process.env.PATH}`, 'sh', script], { reject: false, timeout: 60_000 });
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    },
    addresses: async () => {
      const r = await execa('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'ens5']);
      return [...r.stdout.matchAll(/ inet (\S+)/g)].map((m) => m[1]!).sort();
    },
  };
}

const TREE = {
  'network/interfaces/macs/': `${MAC}/\n${OTHER_MAC}/`,
  [`network/interfaces/macs/${MAC}/local-ipv4s`]: '10.0.1.10\n10.0.1.21\n10.0.1.22',
  [`network/interfaces/macs/${OTHER_MAC}/local-ipv4s`]: '10.0.9.5\n10.0.9.6',
};

t.test('adds the missing secondary addresses as /32; a second run adds nothing', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  const first = await r.run();
  t.equal(first.exitCode, 0, first.stderr);
  t.match(first.stdout, /added 10\.0\.1\.21\/32 to ens5/);
  t.match(first.stdout, /added 10\.0\.1\.22\/32 to ens5/);
  t.match(first.stdout, new RegExp(`no interface here has MAC ${OTHER_MAC}; skipped`));
  t.same(await r.addresses(), ['10.0.1.10/24', '10.0.1.21/32', '10.0.1.22/32'], 'the primary is left as it is; nothing from the other interface');

  const second = await r.run();
  t.equal(second.exitCode, 0, second.stderr);
  t.notMatch(second.stdout, /added/);
  t.match(second.stdout, /nothing to add/);
  t.same(await r.addresses(), ['10.0.1.10/24', '10.0.1.21/32', '10.0.1.22/32'], 'idempotent');
});

t.test('an address added to the instance later is picked up by the next run; odd entries are skipped', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, { ...TREE, [`network/interfaces/macs/${MAC}/local-ipv4s`]: '10.0.1.10\n10.0.1.21\n10.0.1.300x\n10.0.1.23' });
  const result = await r.run();
  t.equal(result.exitCode, 0, result.stderr);
  t.match(result.stdout, /skipping odd address '10\.0\.1\.300x'/);
  t.same(await r.addresses(), ['10.0.1.10/24', '10.0.1.21/32', '10.0.1.23/32']);
});

t.test('where amazon-ec2-net-utils is installed it does nothing', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  const bin = join(scratchDir(t, 'secips-bin'), 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'setup-policy-routes'), '#!/bin/sh\nexit 0\n');
  await chmod(join(bin, 'setup-policy-routes'), 0o755);
  const result = await r.run({ PATH: `${bin}:${process.env.PATH}` });
  t.equal(result.exitCode, 0, result.stderr);
  t.match(result.stdout, /amazon-ec2-net-utils configures secondary addresses on this host; nothing to do/);
  t.same(await r.addresses(), ['10.0.1.10/24'], 'nothing added');
});

// Not on EC2 (the boot test's lab, an on-premises rig): no failed unit at
// boot; in address mode cachenat itself names the missing addresses.
t.test('no metadata service: says so, adds nothing, exits 0', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  const result = await r.run({ CACHENAT_IMDS_URL: 'http://127.0.0.1:9' });
  t.equal(result.exitCode, 0, result.stderr);
  t.match(result.stderr, /no IMDSv2 token from http:\/\/127\.0\.0\.1:9 \(not on EC2, or the metadata service is off\); nothing done/);
  t.same(await r.addresses(), ['10.0.1.10/24']);
});

t.test('without curl: says so, adds nothing, exits 0 (no failed unit at boot)', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  const bin = join(scratchDir(t, 'secips-nocurl'), 'bin');
  await mkdir(bin);
  await symlink('/bin/sh', join(bin, 'sh'));
  const result = await r.run({ PATH: bin });
  t.equal(result.exitCode, 0, result.stderr);
  t.match(result.stderr, /curl is not installed/);
  t.same(await r.addresses(), ['10.0.1.10/24']);
});

t.test('a metadata service that refuses a token-less read is sent the token (IMDSv2)', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  const v1 = await execa('ip', ['netns', 'exec', r.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `${r.url}/latest/meta-data/network/interfaces/macs/`]);
  t.equal(v1.stdout, '401', 'the fake refuses IMDSv1 reads, as an instance with HttpTokens=required does');
  t.equal((await r.run()).exitCode, 0);
  t.same(await r.addresses(), ['10.0.1.10/24', '10.0.1.21/32', '10.0.1.22/32']);
});

t.test('an interface without an IPv4 address yet: exit 75, nothing added', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const r = await rig(t, TREE);
  await execa('ip', ['-n', r.ns, 'addr', 'flush', 'dev', 'ens5']);
  const result = await r.run();
  t.equal(result.exitCode, 75);
  t.match(result.stderr, /ens5 \(02:00:0a:00:01:0a\) has no IPv4 address yet/);
  t.same(await r.addresses(), []);
});

t.test('the unit runs the installed script once per boot, before cachenat', async (t) => {
  const text = await readFile(unitPath, 'utf8');
  const one = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1];
  t.equal(one('Type'), 'oneshot');
  t.equal(one('ExecStart'), '/bin/sh /opt/cachenat/current/ami/secondary-ips.sh', 'the script as install.sh puts it (the release under /opt/cachenat/current)');
  t.match(one('Before'), /\bcachenat\.service\b/);
  t.match(one('After'), /\bnetwork-online\.target\b/);
  t.equal(one('WantedBy'), 'multi-user.target');

  const root = scratchDir(t, 'secips-unit');
  await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
  await mkdir(join(root, 'usr/lib/systemd'), { recursive: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await cp('/bin/sh', join(root, 'bin/sh'), { dereference: true }); // often a link to dash
  await cp('/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  await cp(unitPath, join(root, 'etc/systemd/system/cachenat-secondary-ips.service'));
  const verify = await execa('systemd-analyze', ['verify', `--root=${root}`, 'cachenat-secondary-ips.service'], { reject: false });
  t.equal(verify.exitCode, 0, verify.stderr);
  t.equal(verify.stderr, '', 'no warnings');
});
