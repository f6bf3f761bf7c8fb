// A table of bad configurations. Each one, given to `validate` and to `run`
// (the compiled CLI, inside a throwaway network namespace), must exit 78 with
// a message naming the key, and leave the system exactly as it was: the
// namespace's iptables-save and ip_forward, no state dir, status file, rules
// file or sysctl.d file created, and nothing at the default paths either.

import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../../lab/rig.js';
import { runCommand } from '../../src/netfilter/iptables.js';

const skip = process.getuid?.() !== 0 ? 'needs root for a network namespace' : !existsSync(CLI) ? `${CLI} is missing: run npx tsc -p .` : false;

const dir = mkdtempSync(join(tmpdir(), 'cachenat-badcfg-'));
const paths = {
  state: join(dir, 'state'),
  status: join(dir, 'run', 'status.json'),
  rules: join(dir, 'rules.v4'),
  sysctl: join(dir, 'sysctl.d'),
};

// Valid, and touching only the temp dir; each case breaks it in one place.
const GOOD = `aws:
  region: us-east-1
  endpoint: http://127.0.0.1:9
forward:
  inboundInterface: eth0
  allowedSources: [198.51.100.27/32]
state:
  dir: ${paths.state}
  statusFile: ${paths.status}
persist:
  rulesFile: ${paths.rules}
`;
const tail = `state:\n  dir: ${paths.state}\n  statusFile: ${paths.status}\npersist:\n  rulesFile: ${paths.rules}\n`;
const withForward = (forward: string) => `aws:\n  region: us-east-1\nforward:\n${forward}\n${tail}`;
const withExtra = (extra: string) => `${GOOD}${extra}\n`;
const replace = (from: string, to: string) => {
  if (!GOOD.includes(from)) throw new Error(`GOOD has no ${from}`);
  return GOOD.replace(from, to);
};

/** [what, config text, text the message must contain (the key), the commands that refuse it (default both)] */
const CASES: [string, string, RegExp, ('validate' | 'run')[]?][] = [
  ['aws not a mapping', withForward('  allowedSources: [198.51.100.27/32]').replace('aws:\n  region: us-east-1\n', 'aws: us-east-1\n'), /aws: expected a mapping, got the text "us-east-1"/],
  // Left to the host: valid, but this namespace (IMDS off, no $AWS_REGION, only lo) cannot tell.
  ['region left to the host, which cannot tell', replace('  region: us-east-1\n', ''), /aws\.region: auto found no region \(IMDSv2 placement\/region: not asked: AWS_EC2_METADATA_DISABLED=true; \$AWS_REGION is not set\)/, ['run']],
  ['an interface the host does not have', GOOD, /forward\.inboundInterface: expected an interface of this host \(it has lo\), got eth0, which does not exist here/, ['run']],
  ['an interface pattern matching none', replace('inboundInterface: eth0', 'inboundInterface: ens+'), /forward\.inboundInterface: .*got ens\+, which matches none of them/, ['run']],
  ['region upper case', replace('us-east-1', 'US-EAST-1'), /aws\.region/],
  ['region a number', replace('us-east-1', '123'), /aws\.region/],
  ['region with a shell word', replace('us-east-1', '"us-east-1; reboot"'), /aws\.region/],
  ['endpoint not http', replace('http://127.0.0.1:9', 'ftp://127.0.0.1/'), /aws\.endpoint/],
  ['endpoint not a URL', replace('http://127.0.0.1:9', 'not a url'), /aws\.endpoint/],
  ['unknown key under aws', replace('  region: us-east-1\n', '  region: us-east-1\n  profile: prod\n'), /aws\.profile: unknown key; expected one of region, endpoint/],
  ['endpoint with credentials', replace('http://127.0.0.1:9', 'http://AKIDEXAMPLE:wJalrXUtnFEMI@127.0.0.1:9'), /aws\.endpoint: expected a URL without credentials .*got http:\/\/\*\*\*@127\.0\.0\.1:9$/m],
  ['unknown top-level key', withExtra('forwards: {}'), /forwards: unknown key; did you mean forward\?/],
  ['misspelt section', withExtra('dicovery:\n  interval: 30s'), /dicovery: unknown key; did you mean discovery\?/],
  ['a key at the wrong level', withExtra('region: us-east-1'), /region: unknown key here; did you mean aws\.region\?/],
  ['dns interval beyond a timer', withExtra('dns:\n  interval: 700h'), /dns\.interval: expected at most 596h for dns\.interval, got "700h": Node's timers wait at most 2147483647 ms/],
  ['interval not a duration', withExtra('discovery:\n  interval: fast'), /discovery\.interval/],
  ['interval below 1s', withExtra('discovery:\n  interval: 500ms'), /discovery\.interval/],
  ['interval negative', withExtra('discovery:\n  interval: -5'), /discovery\.interval/],
  ['include empty', withExtra('discovery:\n  include: []'), /discovery\.include/],
  ['include with a bad glob', withExtra('discovery:\n  include: ["orders; rm -rf /"]'), /discovery\.include\[0\]/],
  ['exclude not a list', withExtra('discovery:\n  exclude: orders'), /discovery\.exclude/],
  ['exclude holding a number', withExtra('discovery:\n  exclude: [123]'), /discovery\.exclude\[0\]/],
  ['removalGrace in words', withExtra('discovery:\n  removalGrace: 10 minutes'), /discovery\.removalGrace/],
  ['apiTimeout too short', withExtra('discovery:\n  apiTimeout: 50ms'), /discovery\.apiTimeout/],
  ['dns interval too short', withExtra('dns:\n  interval: 10ms'), /dns\.interval/],
  ['dns interval a boolean', withExtra('dns:\n  interval: true'), /dns\.interval/],
  ['no forward section', `aws:\n  region: us-east-1\n${tail}`, /\bforward\b/],
  ['allowedSources missing', withForward('  inboundInterface: eth0'), /forward\.allowedSources/],
  ['allowedSources empty', withForward('  allowedSources: []'), /forward\.allowedSources/],
  ['allowedSources a string', withForward('  allowedSources: 0.0.0.0/0'), /forward\.allowedSources/],
  ['allowedSources prefix 33', withForward('  allowedSources: [10.0.0.0/33]'), /forward\.allowedSources\[0\]/],
  ['allowedSources a word', withForward('  allowedSources: [any]'), /forward\.allowedSources\[0\]/],
  ['allowedSources with -j ACCEPT', withForward('  allowedSources: ["1.2.3.4 -j ACCEPT"]'), /forward\.allowedSources\[0\]/],
  ['allowedSources second bad', withForward('  allowedSources: [10.0.0.0/8, 300.1.1.1/32]'), /forward\.allowedSources\[1\]/],
  ['interface with spaces', withForward('  allowedSources: [10.0.0.0/8]\n  inboundInterface: "eth0 -j ACCEPT"'), /forward\.inboundInterface/],
  ['interface too long', withForward('  allowedSources: [10.0.0.0/8]\n  inboundInterface: averyveryverylongname0'), /forward\.inboundInterface/],
  ['snat a word', withForward('  allowedSources: [10.0.0.0/8]\n  snat: masq'), /forward\.snat/],
  ['snat with a shell word', withForward('  allowedSources: [10.0.0.0/8]\n  snat: "10.0.0.1; reboot"'), /forward\.snat/],
  ['publicAddress not a name', withForward('  allowedSources: [10.0.0.0/8]\n  publicAddress: "not an address!"'), /forward\.publicAddress/],
  ['unknown key under forward', withForward('  allowedSources: [10.0.0.0/8]\n  allowedSource: [10.0.0.0/8]'), /forward\.allowedSource: unknown key; did you mean forward\.allowedSources\?/],
  ['snat broadcast', withForward('  allowedSources: [10.0.0.0/8]\n  snat: 255.255.255.255'), /forward\.snat: expected "masquerade" or a unicast IPv4 address of this host, got 255\.255\.255\.255/],
  ['snat loopback', withForward('  allowedSources: [10.0.0.0/8]\n  snat: 127.0.0.1'), /forward\.snat: .*got 127\.0\.0\.1/],
  ['a private address as the Elastic IP', withForward('  allowedSources: [10.0.0.0/8]\n  listenAddresses: [{address: 10.0.1.21, public: 10.0.1.21}]'), /forward\.listenAddresses\[0\]\.public: expected the public Elastic IP clients dial, got 10\.0\.1\.21, a private address/],
  ['redis port 0', withExtra('ports:\n  redis: 0'), /ports\.redis/],
  ['redis port 70000', withExtra('ports:\n  redis: 70000'), /ports\.redis/],
  ['redis port as text', withExtra('ports:\n  redis: "6379"'), /ports\.redis: expected a TCP port number, got the text "6379"; write the number without quotes/],
  ['redis range at ssh', withExtra('ports:\n  redis: 22'), /ports\.redis: expected a first port of 1024 or above, got 22: ports below 1024 are well-known services \(22 is ssh\)/],
  ['ranges overlapping', withExtra('ports:\n  redis: 7000\n  memcached: 7050'), /ports\.memcached: expected at least 100 ports between the two ranges, got 50/],
  ['status file on the port map', replace(`statusFile: ${paths.status}`, `statusFile: ${paths.state}/ports.json`), /state\.statusFile: expected a file of its own, got .*\/ports\.json, which is also the port map \(state\.dir\)/],
  ['rules file on the port map', replace(`rulesFile: ${paths.rules}`, `rulesFile: ${paths.state}/ports.json`), /persist\.rulesFile: expected a file of its own, got .*\/ports\.json, which is also the port map \(state\.dir\)/],
  ['include not a list', withExtra('discovery:\n  include: orders'), /discovery\.include: expected a list, got the text "orders"/],
  ['memcached port fractional', withExtra('ports:\n  memcached: 11211.5'), /ports\.memcached/],
  ['both engines on one port', withExtra('ports:\n  redis: 7000\n  memcached: 7000'), /ports\.redis and ports\.memcached/],
  ['reuseAfter forever', withExtra('ports:\n  reuseAfter: forever'), /ports\.reuseAfter/],
  ['ipForward yes', withExtra('ipForward: yes'), /ipForward/],
  ['ipForward true', withExtra('ipForward: true'), /ipForward/],
  ['state dir relative', replace(`dir: ${paths.state}`, 'dir: var/lib/cachenat'), /state\.dir/],
  ['status file relative', replace(`statusFile: ${paths.status}`, 'statusFile: status.json'), /state\.statusFile/],
  ['rules file relative', replace(`rulesFile: ${paths.rules}`, 'rulesFile: rules.v4'), /persist\.rulesFile/],
  ['log level verbose', withExtra('log:\n  level: verbose'), /log\.level/],
  ['health warn negative', withExtra('health:\n  syncWarnIntervals: -1'), /health\.syncWarnIntervals/],
  ['health critical below warn', withExtra('health:\n  syncWarnIntervals: 5\n  syncCriticalIntervals: 2'), /health\.syncCriticalIntervals/],
  ['YAML syntax error', 'aws:\n  region: us-east-1\nforward:\n  allowedSources: [10.0.0.0/8\n  snat: masquerade\n', /\(the file\): YAML syntax error at line \d+, column \d+: /],
  ['duplicate key', `${GOOD}aws:\n  region: eu-west-1\n`, /YAML.*(unique|duplicate).*/i],
  ['empty file', '', /forward: required: expected a mapping/],
  ['a list, not a map', '- aws\n- forward\n', /\(the file\): expected a mapping, got a list \["aws","forward"\]/],
  ['binary garbage', '\u0000\u0001\u0002\uFFFD\n', /the file|YAML/],
  ['several problems at once', withExtra('ports:\n  redis: 0\nlog:\n  level: loud').replace('us-east-1', 'nowhere'), /aws\.region[\s\S]*ports\.redis[\s\S]*log\.level/],
];

t.test(`${CASES.length} bad configs: exit 78, the key named, nothing on the system changed`, { skip }, async (t) => {
  const ns = `cn-cfg-${process.pid}`;
  const added = await runCommand('ip', ['netns', 'add', ns]);
  t.equal(added.exitCode, 0, added.stderr);
  t.teardown(async () => {
    await runCommand('ip', ['netns', 'delete', ns]);
    rmSync(dir, { recursive: true, force: true });
  });
  const inNs = (file: string, args: string[], env: Record<string, string> = {}) =>
    runCommand('ip', ['netns', 'exec', ns, 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), file, ...args], { timeoutMs: 30_000 });
  // Something of someone else's in the namespace, so "unchanged" is not trivially empty.
  await inNs('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'MASQUERADE']);
  const system = async () => ({
    save: (await inNs('iptables-save', [])).stdout.replace(/^#.*\n/gm, ''),
    ipForward: (await inNs('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout,
    files: readdirSync(dir).sort().join(','),
    defaults: ['/var/lib/cachenat', '/run/cachenat', '/etc/sysctl.d/90-cachenat.conf', '/etc/iptables/rules.v4', '/etc/sysconfig/iptables'].filter((p) => existsSync(p)).join(','),
  });
  const before = await system();
  // NODE_OPTIONS: the test runner's loaders only slow each CLI start down.
  const env = { NODE_OPTIONS: '', CACHENAT_SYSCTL_DIR: paths.sysctl, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'x' };

  // The table is checked against a config that is fine, so a failure is the case's own.
  writeFileSync(join(dir, 'good.yaml'), GOOD);
  const good = await inNs(process.execPath, [CLI, 'validate', '--config', join(dir, 'good.yaml')], env);
  t.equal(good.exitCode, 0, `the base config validates: ${good.stderr}`);

  const batch = 6;
  let checked = 0;
  for (let i = 0; i < CASES.length; i += batch) {
    await Promise.all(
      CASES.slice(i, i + batch).map(async ([what, text, key, commands = ['validate', 'run']], j) => {
        const file = join(dir, `bad-${i + j}.yaml`);
        writeFileSync(file, text);
        for (const command of commands) {
          const r = await inNs(process.execPath, [CLI, command, '--config', file], env);
          t.equal(r.exitCode, 78, `${what}: ${command} exits 78 (${r.stderr.trim().split('\n').slice(0, 3).join(' | ')})`);
          t.match(r.stderr, key, `${what}: ${command} names the key`);
          t.equal(r.stdout, '', `${what}: ${command} prints nothing on stdout`);
          checked++;
        }
        rmSync(file);
      }),
    );
  }
  rmSync(join(dir, 'good.yaml'));
  const missing = await inNs(process.execPath, [CLI, 'run', '--config', join(dir, 'nope.yaml')], env);
  t.equal(missing.exitCode, 78, 'a missing config file exits 78 too');
  t.match(missing.stderr, /nope\.yaml[\s\S]*file not found/);
  t.same(await system(), before, `after ${checked} runs: iptables-save, ip_forward and the file system as they were`);
});
