// A first run on a NAT instance shaped like Amazon Linux 2023 on Nitro: the
// client-facing interface is ens5, IMDSv2 (the fake, token required) answers
// at 169.254.169.254 with the instance's MAC and region. A config of only
// forward.allowedSources (and the lab's API URL) forwards; the same with
// inboundInterface: eth0 exits 78 naming eth0 and ens5, leaving the ruleset
// byte-identical. The daemon runs with the default state, run and persist
// paths, each on a tmpfs in a mount namespace of its own, so nothing of this
// machine's is written.

import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, daemonEnv, startRig, waitFor } from '../../lab/rig.js';
import type { LabProcess } from '../../lab/process.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : !existsSync(CLI) ? `${CLI} is missing: run npx tsc -p .` : false;

const FAKE_IMDS = fileURLToPath(new URL('../../dist/lab/fake-imds.js', import.meta.url));
const MAC = '0e:49:61:0f:c3:11';
const REGION = 'eu-central-1';
// Where the daemon's default paths live (/var/lib/cachenat, /run/cachenat, /etc/sysctl.d/90-cachenat.conf),
// each a tmpfs in its own mount namespace: nothing is created on this machine, not even an empty directory.
const PRIVATE_DIRS = ['/var/lib', '/run', '/etc/sysctl.d'];
// Mounts a tmpfs on each argument up to "--", then runs the rest (no word of it is interpolated into the script).
const WITH_PRIVATE_DIRS = 'while [ "$1" != -- ]; do mount -t tmpfs cachenat-test "$1"; shift; done; shift; exec "$@"';

t.test('AL2023 on Nitro: auto finds ens5 and the region; eth0 is refused with 78 and nothing changes', { skip }, async (t) => {
  const rig = await startRig();
  t.teardown(() => rig.down());
  const { lab } = rig;
  const ns = lab.ns.nat;

  // The instance: ext0 becomes ens5 with the MAC IMDS names; IMDSv2 on the link-local address.
  await lab.exec(ns, 'ip', ['link', 'set', 'ext0', 'down']);
  await lab.exec(ns, 'ip', ['link', 'set', 'ext0', 'name', 'ens5', 'address', MAC]);
  await lab.exec(ns, 'ip', ['link', 'set', 'ens5', 'up']);
  await lab.exec(ns, 'ip', ['addr', 'add', '169.254.169.254/32', 'dev', 'lo']);
  const imds = lab.spawnIn(ns, process.execPath, [FAKE_IMDS, '--listen', '169.254.169.254:80', '--instance-id', 'i-0123456789abcdef0', '--mac', MAC, '--eni', 'eni-0123456789abcdef0', '--ips', '198.18.0.1', '--region', REGION], {
    label: 'fake imds',
    env: { NODE_OPTIONS: '' },
  });
  await imds.waitForLine(/fake-imds listening on http:\/\/169\.254\.169\.254:80/, 10_000);

  // The SDK's switch is off no more: IMDS is how the instance knows itself. Credentials stay in the environment.
  const env = { ...daemonEnv(rig.dir), AWS_EC2_METADATA_DISABLED: 'false', NODE_OPTIONS: '' };
  const args = (configPath: string) => ['--mount', '--propagation', 'private', '--', '/bin/sh', '-ec', WITH_PRIVATE_DIRS, 'sh', ...PRIVATE_DIRS, '--', process.execPath, CLI, 'run', '--config', configPath];
  const run = (configPath: string): LabProcess => lab.spawnIn(ns, 'unshare', args(configPath), { env, label: 'cachenat run (private dirs)' });
  // Every table's rules as iptables-save prints them, without its timestamp comments and the packet counters of the chain policies.
  const ruleset = async () => (await lab.exec(ns, 'iptables-save', [])).stdout.replace(/^#.*$/gm, '').replace(/\[\d+:\d+\]$/gm, '[-]');

  const minimal = join(rig.dir, 'minimal.yaml');
  writeFileSync(minimal, `aws:\n  endpoint: ${rig.apiUrl}\nforward:\n  allowedSources: [198.18.0.10/32]\n`);
  const daemon = run(minimal);
  await daemon.waitForLine(/"msg":"ready/, 30_000);
  t.match(daemon.output.join('\n'), /"msg":"aws\.region is auto: eu-central-1, the instance's region \(IMDS\)"/);
  t.match(daemon.output.join('\n'), /"msg":"forward\.inboundInterface is auto: ens5 holds the instance's primary MAC 0e:49:61:0f:c3:11 \(IMDS\)"/);
  await waitFor('forwarded through ens5', async () => (await rig.probe('client', 6379)) === 'redis-11', 15_000).catch(() => undefined);
  t.equal(await rig.probe('client', 6379), 'redis-11', 'a client reaches redis-11 through ens5:6379');
  t.match(await ruleset(), /-A CACHENAT-PREROUTING -s 198\.18\.0\.10\/32 -i ens5 /, 'the PREROUTING rule names ens5');
  await daemon.stop(5000);

  const eth0 = join(rig.dir, 'eth0.yaml');
  writeFileSync(eth0, `aws:\n  endpoint: ${rig.apiUrl}\nforward:\n  allowedSources: [198.18.0.10/32]\n  inboundInterface: eth0\n`);
  const before = await ruleset();
  const refused = run(eth0);
  const exit = await refused.exited;
  t.equal(exit.exitCode, 78, 'exit 78 (EX_CONFIG)');
  const stderr = refused.stderr.join('\n');
  t.match(stderr, /forward\.inboundInterface: expected an interface of this host \(it has ens5, int0, lo, side0\), got eth0, which does not exist here/, `says: ${stderr.split('\n')[1]}`);
  t.equal(refused.stdout.join(''), '', 'nothing on stdout');
  t.equal(await ruleset(), before, 'the ruleset is byte-identical');
});
