// `npm run package`: one tarball per architecture, each with the official Node
// runtime of that architecture, a launcher that needs no PATH, production
// node_modules only, and SHA-256 sums. Builds both for real (about a minute,
// under the machine's lab lock so no lab test's timing shares the CPU with
// tsc and gzip); the x64 one (this machine's) is unpacked and run.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { mkdtemp, open, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLabSlot } from '../../lab/serial.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const pinned = /^NODE_PINNED=(\S+)$/m.exec(await readFile(join(repo, 'scripts/ensure-node.sh'), 'utf8'))?.[1];
const hostArch = process.arch === 'arm64' ? 'arm64' : 'x64';
const ARCHES = ['x64', 'arm64'] as const;
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;

/** The ELF e_machine field: what CPU the binary is for. */
async function elfMachine(t: Test, path: string): Promise<number> {
  const file = await open(path, 'r');
  try {
    const { buffer } = await file.read(Buffer.alloc(20), 0, 20, 0);
    t.equal(buffer.subarray(0, 4).toString('latin1'), '\x7fELF', `${path} is an ELF binary`);
    return buffer.readUInt16LE(18);
  } finally {
    await file.close();
  }
}

/** Every path in a tar.gz with its owner and mtime, as `tar -tv` prints them. */
async function listing(tarball: string): Promise<{ path: string; owner: string; mtime: string }[]> {
  const { stdout } = await execa('tar', ['--numeric-owner', '--full-time', '-tvzf', tarball]);
  return stdout.split('\n').map((line) => {
    const [, owner, , date, time, ...rest] = line.split(/\s+/);
    return { path: rest.join(' ').replace(/ -> .*$/, ''), owner: owner!, mtime: `${date} ${time}` };
  });
}

const work = await mkdtemp(join(tmpdir(), 'cachenat-package-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const out = join(work, 'out');

t.test('npm run package builds one tarball per architecture with their sums', async (t) => {
  const release = await acquireLabSlot();
  const built = await execa('npm', ['run', '--silent', 'package', '--', '--out', out], { cwd: repo, reject: false, all: true }).finally(release);
  t.equal(built.exitCode, 0, `npm run package -- --out ${out}`, { output: built.all?.slice(-3000) });

  const names = ARCHES.map((arch) => `cachenat-${pkg.version}-linux-${arch}.tar.gz`);
  t.same((await readdir(out)).sort(), [...names, 'SHA256SUMS'].sort(), 'the two tarballs and SHA256SUMS, nothing else');
  const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
  t.same(sums.trim().split('\n').map((l) => l.split(/\s+/)[1]).sort(), [...names].sort(), 'SHA256SUMS lists both');
  const check = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out, reject: false });
  t.equal(check.exitCode, 0, 'sha256sum -c SHA256SUMS', { output: check.stdout + check.stderr });

  const listings = await Promise.all(names.map((n) => listing(join(out, n))));
  for (const [i, entries] of listings.entries()) {
    t.ok(entries.length > 100, `${names[i]}: ${entries.length} entries`);
    t.same([...new Set(entries.map((e) => e.owner))], ['0/0'], `${names[i]}: every entry owned by 0/0`);
    t.equal(new Set(entries.map((e) => e.mtime)).size, 1, `${names[i]}: one mtime for every entry (reproducible)`);
    t.ok(entries.every((e) => e.path.startsWith('cachenat/')), `${names[i]}: everything under cachenat/`);
  }
  t.same(listings[0]!.map((e) => e.path), listings[1]!.map((e) => e.path), 'both hold the same files');
});

t.test('each tarball carries the runtime of its architecture', async (t) => {
  for (const arch of ARCHES) {
    const dir = join(work, arch);
    await execa('mkdir', ['-p', dir]);
    await execa('tar', ['-C', dir, '-xzf', join(out, `cachenat-${pkg.version}-linux-${arch}.tar.gz`), 'cachenat/node']);
    t.equal(await elfMachine(t, join(dir, 'cachenat/node/bin/node')), ELF_MACHINE[arch], `${arch}: node/bin/node is built for ${arch}`);
    t.ok((await stat(join(dir, 'cachenat/node/LICENSE'))).size > 0, `${arch}: Node's LICENSE ships with it`);
  }
});

t.test(`the ${hostArch} release runs with an empty PATH`, async (t) => {
  const dir = join(work, 'unpacked');
  await execa('mkdir', ['-p', dir]);
  await execa('tar', ['-C', dir, '-xzf', join(out, `cachenat-${pkg.version}-linux-${hostArch}.tar.gz`)]);
  const app = join(dir, 'cachenat');

  const node = await execa(join(app, 'node/bin/node'), ['--version'], { env: {}, extendEnv: false });
  t.equal(node.stdout, `v${pinned}`, `the runtime is NODE_PINNED (${pinned})`);

  const help = await execa(join(app, 'bin/cachenat'), ['--help'], { env: { PATH: '/nonexistent' }, extendEnv: false, reject: false });
  t.equal(help.exitCode, 0, 'env -i PATH=/nonexistent bin/cachenat --help', { stderr: help.stderr });
  t.match(help.stdout, /^Usage: cachenat <command>/);

  // As /opt/cachenat/current/bin/cachenat: through a symlinked directory, from another directory.
  await symlink('cachenat', join(dir, 'current'));
  const viaLink = await execa(join(dir, 'current/bin/cachenat'), ['--help'], { cwd: '/', env: { PATH: '/nonexistent' }, extendEnv: false, reject: false });
  t.equal(viaLink.exitCode, 0, 'through a symlinked directory, from /', { stderr: viaLink.stderr });
  const bySh = await execa('/bin/sh', ['cachenat', '--help'], { cwd: join(app, 'bin'), env: {}, extendEnv: false, reject: false });
  t.equal(bySh.exitCode, 0, 'as `sh cachenat` from its own directory', { stderr: bySh.stderr });

  for (const file of ['LICENSE', 'README.md', 'config.example.yaml', 'package.json', 'package-lock.json', 'systemd/cachenat.service', 'systemd/cachenat-secondary-ips.service', 'ami/install.sh', 'ami/secondary-ips.sh', 'etc/logrotate.d/cachenat-audit']) {
    t.equal(await readFile(join(app, file), 'utf8'), await readFile(join(repo, file), 'utf8'), `${file} as in the repository`);
  }
  t.same((await readdir(join(app, 'dist'))).sort(), ['src'], 'dist/ holds the app only (no lab, no benchmarks)');
});

t.test('production node_modules only, without type declarations', async (t) => {
  const modules = join(work, 'unpacked/cachenat/node_modules');
  for (const dep of Object.keys(pkg.dependencies)) {
    const installed = JSON.parse(await readFile(join(modules, dep, 'package.json'), 'utf8')) as { name: string };
    t.equal(installed.name, dep, `dependency ${dep} is there`);
  }
  for (const dev of Object.keys(pkg.devDependencies)) {
    await t.rejects(stat(join(modules, dev)), { code: 'ENOENT' }, `devDependency ${dev} is not`);
  }
  const { stdout } = await execa('find', [modules, '(', '-name', 'dist-types', '-o', '-name', '*.d.ts', '-o', '-name', '*.node', ')', '-print']);
  t.equal(stdout, '', 'no dist-types, .d.ts or compiled .node files');
});
