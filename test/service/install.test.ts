// ami/install.sh into a throwaway tree (--root), and shellcheck on the
// service scripts. The boot test runs the same script in a real Debian rootfs.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const installSh = join(repo, 'ami/install.sh');

t.test('shellcheck is clean', async (t) => {
  const scripts = ['ami/install.sh', 'ami/secondary-ips.sh', 'scripts/package.sh', 'scripts/launcher.sh', 'test/boot/pid1.sh', 'test/boot/build-rootfs.sh'];
  const result = await execa('shellcheck', ['--external-sources', ...scripts], { cwd: repo, reject: false });
  t.equal(result.exitCode, 0, result.stdout);
});

/**
 * A release directory with the real unit, example config, scripts and
 * launcher, a stub CLI, and in place of the Node runtime `node` (a shell
 * script unless given bytes).
 */
async function fakeRelease(dir: string, version: string, node: string | Buffer = '#!/bin/sh\necho 22.23.5\n'): Promise<string> {
  const app = join(dir, `release-${version}`, 'cachenat');
  await mkdir(join(app, 'dist/src/cli'), { recursive: true });
  await mkdir(join(app, 'systemd'), { recursive: true });
  await mkdir(join(app, 'ami'), { recursive: true });
  await mkdir(join(app, 'bin'), { recursive: true });
  await mkdir(join(app, 'node/bin'), { recursive: true });
  await writeFile(join(app, 'package.json'), `{\n  "name": "cachenat",\n  "version": "${version}"\n}\n`);
  await writeFile(join(app, 'dist/src/cli/main.js'), `console.log('cachenat ${version}');\n`);
  await writeFile(join(app, 'node/bin/node'), node, { mode: 0o755 });
  await cp(join(repo, 'scripts/launcher.sh'), join(app, 'bin/cachenat'));
  await cp(join(repo, 'systemd/cachenat.service'), join(app, 'systemd/cachenat.service'));
  await cp(join(repo, 'systemd/cachenat-secondary-ips.service'), join(app, 'systemd/cachenat-secondary-ips.service'));
  await cp(join(repo, 'config.example.yaml'), join(app, 'config.example.yaml'));
  await cp(installSh, join(app, 'ami/install.sh'));
  await cp(join(repo, 'ami/secondary-ips.sh'), join(app, 'ami/secondary-ips.sh'));
  await mkdir(join(app, 'etc/logrotate.d'), { recursive: true });
  await cp(join(repo, 'etc/logrotate.d/cachenat-audit'), join(app, 'etc/logrotate.d/cachenat-audit'));
  return app;
}

/** Every path under root with its type, mode, size, mtime and link target. */
async function snapshotTree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, rel))).sort()) {
    const path = join(rel, name);
    const st = await lstat(join(root, path));
    const link = st.isSymbolicLink() ? ` -> ${await readlink(join(root, path))}` : '';
    out.push(`${path} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}${link}`);
    if (st.isDirectory()) out.push(...(await snapshotTree(root, path)));
  }
  return out;
}

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-install-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  await mkdir(root);
  const install = (release: string) => execa('sh', [installSh, '--root', root, release], { reject: false });
  return { dir, root, install };
}

t.test('installs a release directory; a second run changes nothing', async (t) => {
  const { dir, root, install } = await setup(t);
  const release = await fakeRelease(dir, '1.2.3');
  const first = await install(release);
  t.equal(first.exitCode, 0, first.stderr);
  t.equal(await readlink(join(root, 'opt/cachenat/current')), '1.2.3');
  t.match(await readFile(join(root, 'usr/local/bin/cachenat'), 'utf8'), 'exec /opt/cachenat/current/bin/cachenat "$@"', 'the command runs the release on its own runtime');
  t.equal((await lstat(join(root, 'opt/cachenat/current/node/bin/node'))).mode & 0o777, 0o755, 'the runtime is executable');
  t.equal((await lstat(join(root, 'usr/local/bin/cachenat'))).mode & 0o777, 0o755);
  t.equal(await readFile(join(root, 'etc/systemd/system/cachenat.service'), 'utf8'), await readFile(join(repo, 'systemd/cachenat.service'), 'utf8'));
  t.equal(await readFile(join(root, 'etc/cachenat/config.yaml'), 'utf8'), await readFile(join(repo, 'config.example.yaml'), 'utf8'));
  t.match(await readFile(join(root, 'etc/sysctl.d/90-cachenat.conf'), 'utf8'), /^net\.ipv4\.ip_forward = 1$/m);
  t.equal(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/cachenat.service')), '/etc/systemd/system/cachenat.service', 'enabled');
  // Address mode: the secondary private IPv4s go on the interface at boot where the OS does not do it.
  t.equal(await readFile(join(root, 'etc/systemd/system/cachenat-secondary-ips.service'), 'utf8'), await readFile(join(repo, 'systemd/cachenat-secondary-ips.service'), 'utf8'));
  t.equal(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/cachenat-secondary-ips.service')), '/etc/systemd/system/cachenat-secondary-ips.service', 'secondary-ips enabled');
  t.equal(await readFile(join(root, 'opt/cachenat/current/ami/secondary-ips.sh'), 'utf8'), await readFile(join(repo, 'ami/secondary-ips.sh'), 'utf8'), 'the script is where the unit runs it');
  t.equal(await readFile(join(root, 'etc/logrotate.d/cachenat-audit'), 'utf8'), await readFile(join(repo, 'etc/logrotate.d/cachenat-audit'), 'utf8'), "audit.file's rotation");

  const before = await snapshotTree(root);
  const second = await install(release);
  t.equal(second.exitCode, 0, second.stderr);
  t.match(second.stdout, /release 1\.2\.3 already installed; nothing changed/);
  t.same(await snapshotTree(root), before, 'not a byte, mode or mtime changed');
});

t.test('never overwrites a config; an upgrade switches current', async (t) => {
  const { dir, root, install } = await setup(t);
  await mkdir(join(root, 'etc/cachenat'), { recursive: true });
  await writeFile(join(root, 'etc/cachenat/config.yaml'), 'aws: { region: eu-west-1 }\n');
  t.equal((await install(await fakeRelease(dir, '1.0.0'))).exitCode, 0);
  const upgrade = await install(await fakeRelease(dir, '1.1.0'));
  t.equal(upgrade.exitCode, 0, upgrade.stderr);
  t.match(upgrade.stdout, /current -> 1\.1\.0/);
  t.equal(await readlink(join(root, 'opt/cachenat/current')), '1.1.0');
  t.equal(await readFile(join(root, 'opt/cachenat/1.1.0/dist/src/cli/main.js'), 'utf8'), "console.log('cachenat 1.1.0');\n");
  t.equal(await readFile(join(root, 'etc/cachenat/config.yaml'), 'utf8'), 'aws: { region: eu-west-1 }\n');
});

t.test('a tarball in the release layout installs too', async (t) => {
  const { dir, root, install } = await setup(t);
  const app = await fakeRelease(dir, '2.0.0');
  const tarball = join(dir, 'cachenat-2.0.0-linux-x64.tar.gz');
  await execa('tar', ['-C', join(app, '..'), '-czf', tarball, 'cachenat']);
  const result = await install(tarball);
  t.equal(result.exitCode, 0, result.stderr);
  t.equal(await readlink(join(root, 'opt/cachenat/current')), '2.0.0');
});

t.test('refuses what is not a release', async (t) => {
  const { dir, install } = await setup(t);
  const result = await install(dir);
  t.equal(result.exitCode, 66);
  t.match(result.stderr, /is not a cachenat release/);
});

t.test('refuses two releases at once (a glob that matched both architectures)', async (t) => {
  const { dir, root } = await setup(t);
  const result = await execa('sh', [installSh, '--root', root, await fakeRelease(dir, '1.0.0'), await fakeRelease(dir, '1.0.1')], { reject: false });
  t.equal(result.exitCode, 64);
  t.match(result.stderr, /install\.sh: one release at a time, not both .*release-1\.0\.0\/cachenat and .*release-1\.0\.1\/cachenat/);
  t.same(await readdir(root), [], 'nothing installed');
});

t.test('refuses a release without its Node runtime', async (t) => {
  const { dir, root, install } = await setup(t);
  const app = await fakeRelease(dir, '1.0.0');
  await rm(join(app, 'node'), { recursive: true });
  const result = await install(app);
  t.equal(result.exitCode, 66);
  t.match(result.stderr, /carries no Node runtime \(no node\/bin\/node and bin\/cachenat\): it is from an older npm run package; build it again/);
  t.same(await readdir(root), [], 'nothing installed');
});

/** The first 20 bytes of an ELF executable for machine `machine` (0x3e x86-64, 0xb7 AArch64): enough for the check, not to run. */
const elfHeader = (machine: number): Buffer => Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, machine, 0]);
const hostMachine = process.arch === 'arm64' ? 0xb7 : 0x3e;
const otherMachine = process.arch === 'arm64' ? 0x3e : 0xb7;

/**
 * install.sh on this host (no --root), --offline, in a mount namespace where
 * /opt, /usr/local and /etc are empty tmpfs: should the script not refuse in
 * time, whatever it writes is thrown away. Prints what it left there.
 */
async function installSandboxed(release: string) {
  const script = [
    'mount --make-rprivate /',
    'for d in /opt /usr/local /etc; do mount -t tmpfs cachenat-test "$d"; done',
    'sh "$1" --offline "$2"; rc=$?',
    'echo "left behind: $(find /opt /usr/local /etc -mindepth 1 | wc -l)"',
    'exit $rc',
  ].join('\n');
  return execa('unshare', ['--mount', 'sh', '-c', script, 'sandbox', installSh, release], { reject: false });
}

const asRoot = process.getuid?.() === 0 ? false : 'installs on this host (sandboxed): needs root';

t.test('refuses a release for another CPU architecture before changing anything', { skip: asRoot }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-install-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const result = await installSandboxed(await fakeRelease(dir, '1.0.0', elfHeader(otherMachine)));
  t.equal(result.exitCode, 69, result.stderr);
  const [ours, theirs, name] = process.arch === 'arm64' ? ['aarch64', 'x86_64', 'arm64'] : ['x86_64', 'aarch64', 'x64'];
  t.equal(result.stderr, `install.sh: this release's Node runtime is for ${theirs}, this host is ${ours}: install cachenat-1.0.0-linux-${name}.tar.gz instead`, 'that one message, nothing after it');
  t.match(result.stdout, /^left behind: 0$/m);
});

t.test('refuses a runtime that does not run here before changing anything', { skip: asRoot }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-install-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // The right architecture, but not a program the kernel can load (as a
  // runtime missing its libraries would fail).
  const result = await installSandboxed(await fakeRelease(dir, '1.0.0', elfHeader(hostMachine)));
  t.equal(result.exitCode, 69, result.stderr);
  t.match(result.stderr, /^install\.sh: the release's Node runtime does not run on this host \(it needs glibc >= 2\.28 and libstdc\+\+\): .*Exec format error$/);
  t.notMatch(result.stderr, /\n./, 'that one message, nothing after it');
  t.match(result.stdout, /^left behind: 0$/m);
});

t.test('--node-exporter wires node_exporter to the textfile directory; a second run changes nothing', async (t) => {
  const { dir, root } = await setup(t);
  await mkdir(join(root, 'lib/systemd/system'), { recursive: true });
  await writeFile(join(root, 'lib/systemd/system/prometheus-node-exporter.service'), '[Service]\nExecStart=/usr/bin/prometheus-node-exporter $ARGS\n[Install]\nWantedBy=multi-user.target\n');
  const release = await fakeRelease(dir, '1.2.3');
  const install = () => execa('sh', [installSh, '--root', root, '--node-exporter', release], { reject: false });
  const first = await install();
  t.equal(first.exitCode, 0, first.stderr);
  t.equal(((await lstat(join(root, 'var/lib/node_exporter/textfile_collector'))).mode & 0o777).toString(8), '755');
  const dropIn = await readFile(join(root, 'etc/systemd/system/prometheus-node-exporter.service.d/cachenat-textfile.conf'), 'utf8');
  t.match(dropIn, /^ExecStart=$/m, 'the packaged ExecStart is cleared first');
  t.match(dropIn, /^ExecStart=\/usr\/bin\/prometheus-node-exporter \$ARGS --collector\.textfile\.directory=\/var\/lib\/node_exporter\/textfile_collector$/m);
  t.ok(await lstat(join(root, 'etc/systemd/system/multi-user.target.wants/prometheus-node-exporter.service')), 'enabled');
  t.match(await readFile(join(root, 'etc/systemd/system/cachenat.service'), 'utf8'), /ReadWritePaths=.* -\/var\/lib\/node_exporter\/textfile_collector/, 'the sandboxed daemon may write there');
  const before = await snapshotTree(root);
  const second = await install();
  t.equal(second.exitCode, 0, second.stderr);
  t.same(await snapshotTree(root), before, 'idempotent');
  t.match(second.stdout, /nothing changed/);
});
