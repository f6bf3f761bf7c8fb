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
  const result = await execa('shellcheck', [installSh, join(repo, 'ami/secondary-ips.sh'), join(repo, 'scripts/package.sh'), join(repo, 'test/boot/pid1.sh'), join(repo, 'test/boot/build-rootfs.sh')], { reject: false });
  t.equal(result.exitCode, 0, result.stdout);
});

/** A release directory with the real unit, example config and script, and a stub CLI. */
async function fakeRelease(dir: string, version: string): Promise<string> {
  const app = join(dir, `release-${version}`, 'cachenat');
  await mkdir(join(app, 'dist/src/cli'), { recursive: true });
  await mkdir(join(app, 'systemd'), { recursive: true });
  await mkdir(join(app, 'ami'), { recursive: true });
  await writeFile(join(app, 'package.json'), `{\n  "name": "cachenat",\n  "version": "${version}"\n}\n`);
  await writeFile(join(app, 'dist/src/cli/main.js'), `console.log('cachenat ${version}');\n`);
  await cp(join(repo, 'systemd/cachenat.service'), join(app, 'systemd/cachenat.service'));
  await cp(join(repo, 'systemd/cachenat-secondary-ips.service'), join(app, 'systemd/cachenat-secondary-ips.service'));
  await cp(join(repo, 'config.example.yaml'), join(app, 'config.example.yaml'));
  await cp(installSh, join(app, 'ami/install.sh'));
  await cp(join(repo, 'ami/secondary-ips.sh'), join(app, 'ami/secondary-ips.sh'));
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
  t.match(await readFile(join(root, 'usr/local/bin/cachenat'), 'utf8'), 'exec node /opt/cachenat/current/dist/src/cli/main.js "$@"');
  t.equal((await lstat(join(root, 'usr/local/bin/cachenat'))).mode & 0o777, 0o755);
  t.equal(await readFile(join(root, 'etc/systemd/system/cachenat.service'), 'utf8'), await readFile(join(repo, 'systemd/cachenat.service'), 'utf8'));
  t.equal(await readFile(join(root, 'etc/cachenat/config.yaml'), 'utf8'), await readFile(join(repo, 'config.example.yaml'), 'utf8'));
  t.match(await readFile(join(root, 'etc/sysctl.d/90-cachenat.conf'), 'utf8'), /^net\.ipv4\.ip_forward = 1$/m);
  t.equal(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/cachenat.service')), '/etc/systemd/system/cachenat.service', 'enabled');
  // Address mode: the secondary private IPv4s go on the interface at boot where the OS does not do it.
  t.equal(await readFile(join(root, 'etc/systemd/system/cachenat-secondary-ips.service'), 'utf8'), await readFile(join(repo, 'systemd/cachenat-secondary-ips.service'), 'utf8'));
  t.equal(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/cachenat-secondary-ips.service')), '/etc/systemd/system/cachenat-secondary-ips.service', 'secondary-ips enabled');
  t.equal(await readFile(join(root, 'opt/cachenat/current/ami/secondary-ips.sh'), 'utf8'), await readFile(join(repo, 'ami/secondary-ips.sh'), 'utf8'), 'the script is where the unit runs it');

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
  const tarball = join(dir, 'cachenat-2.0.0-linux.tar.gz');
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
