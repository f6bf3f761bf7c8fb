// The AMI template validates with the Packer CI has (Debian's 1.6.6, offline,
// no AWS credentials), and every shell script in the repository is clean
// under shellcheck.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const template = 'ami/cachenat.pkr.hcl';

const has = (program: string): boolean => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', program]).status === 0;

// No credentials and no metadata lookups: validation must not need AWS.
const offlineEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/root',
  CHECKPOINT_DISABLE: '1',
  AWS_EC2_METADATA_DISABLED: 'true',
};

const run = (program: string, args: string[], input?: string) =>
  spawnSync(program, args, { cwd: root, env: offlineEnv, encoding: 'utf8', input, timeout: 60_000 });

t.test('packer validate', { skip: has('packer') ? false : 'packer is not installed (apt-get install packer)' }, async (t) => {
  for (const arch of ['x86_64', 'arm64']) {
    const r = run('packer', ['validate', '-var', `arch=${arch}`, template]);
    t.equal(r.status, 0, `packer validate ${template} (arch=${arch})`, { output: r.stdout + r.stderr });
  }
  const plain = run('packer', ['validate', template]);
  t.equal(plain.status, 0, `packer validate ${template} with no variables`, { output: plain.stdout + plain.stderr });

  const wrong = run('packer', ['validate', '-var', 'arch=i386', template]);
  t.not(wrong.status, 0, 'an unknown architecture is refused');
  t.match(wrong.stdout + wrong.stderr, /must be "x86_64" or "arm64"/);
});

t.test('packer evaluates the locals as intended', { skip: has('packer') ? false : 'packer is not installed (apt-get install packer)' }, async (t) => {
  const evaluate = (expr: string, ...vars: string[]) =>
    run('packer', ['console', ...vars.flatMap((v) => ['-var', v]), template], `${expr}\n`).stdout.trim();

  t.equal(evaluate('local.instance_type'), 't3.small', 'x86_64 builds on t3.small');
  t.equal(evaluate('local.instance_type', 'arch=arm64'), 't4g.small', 'arm64 builds on t4g.small');
  t.equal(evaluate('local.instance_type', 'arch=arm64', 'instance_type=c7g.large'), 'c7g.large', 'instance_type overrides');

  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  t.equal(evaluate('local.version'), version, 'the version defaults to package.json');
  t.equal(resolve(evaluate('local.release')), join(root, `release/cachenat-${version}-linux-x64.tar.gz`), 'x86_64 uploads the x64 tarball npm run package makes');
  t.equal(resolve(evaluate('local.release', 'arch=arm64')), join(root, `release/cachenat-${version}-linux-arm64.tar.gz`), 'arm64 uploads the arm64 tarball');
  t.equal(evaluate('local.version', 'cachenat_version=1.2.3'), '1.2.3');
  t.match(evaluate('local.ami_name', 'ami_name_prefix=acme-nat', 'arch=arm64'), new RegExp(`^acme-nat-${version.replaceAll('.', '\\.')}-al2023-arm64-\\d{8}-\\d{6}$`));
});

t.test('the template asks for what the AMI must be', async (t) => {
  const hcl = readFileSync(join(root, template), 'utf8');
  t.match(hcl, /owners\s*=\s*\["amazon"\]/, 'source image owned by Amazon');
  t.match(hcl, /name\s*=\s*"al2023-ami-minimal-\*-\$\{var\.arch\}"/, 'AL2023 minimal, found by filter');
  t.match(hcl, /most_recent\s*=\s*true/);
  t.notMatch(hcl, /source_ami\s*=/, 'no hard-coded source AMI id');
  t.match(hcl, /encrypted\s*=\s*true/, 'encrypted root volume');
  t.match(hcl, /ssh_username\s*=\s*"ec2-user"/);
  t.notMatch(hcl, /\bnodejs\d*\b|dnf install[^"]*\bnode/, 'no distro Node: the release carries its runtime');
  t.match(hcl, /cachenat\/ami\/install\.sh/, 'installs with the release’s own install.sh');
  t.match(hcl, /env -i PATH=\/nonexistent \/usr\/local\/bin\/cachenat --help/, 'the installed command runs without any PATH');
  t.match(hcl, /--imds-support v2\.0/, 'the AMI is marked IMDSv2-only');
  t.match(hcl, /truncate -s 0 \/etc\/machine-id/);
  t.match(hcl, /rm -f \/etc\/ssh\/ssh_host_\*/);
  t.match(hcl, /cloud-init clean/);
  t.notMatch(hcl, /required_plugins\s*\{/, 'required_plugins stays in plugins.pkr.hcl: packer 1.6.6 rejects it');

  const plugins = readFileSync(join(root, 'ami/plugins.pkr.hcl'), 'utf8');
  t.match(plugins, /required_plugins\s*\{[^}]*source\s*=\s*"github\.com\/hashicorp\/amazon"/);
});

/** Shell scripts: every *.sh, plus extension-less files that start with a shell shebang. */
function shellScripts(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // a folder that does not exist yet has no scripts
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && !entry.name.startsWith('.cache')) walk(path);
      } else if (entry.isFile()) {
        if (entry.name.endsWith('.sh')) found.push(path);
        else if (!entry.name.includes('.') && /^#!.*\b(ba|da)?sh\b/.test(readFileSync(path, 'utf8').split('\n', 1)[0]!)) found.push(path);
      }
    }
  };
  for (const dir of ['scripts', 'ami', '.ci', 'test']) walk(join(root, dir));
  return found.map((p) => relative(root, p)).sort();
}

t.test('shellcheck', { skip: has('shellcheck') ? false : 'shellcheck is not installed (apt-get install shellcheck)' }, async (t) => {
  const scripts = shellScripts();
  // The scripts the README commands, CI and the AMI run: a walk that stopped
  // finding them would leave nothing to check.
  for (const known of ['.ci/run', 'ami/install.sh', 'scripts/ensure-node.sh', 'scripts/ensure-system.sh', 'scripts/test.sh']) {
    t.ok(scripts.includes(known), `${known} is among the ${scripts.length} scripts checked`);
  }
  for (const script of scripts) {
    const r = run('shellcheck', ['--external-sources', '--source-path=SCRIPTDIR', script]);
    t.equal(r.status, 0, `shellcheck ${script}`, { output: r.stdout + r.stderr });
  }
});
