// Every command and flag of the real CLI, run in-process (runCli) against a
// fake machine. The last test fails when the CLI defines a command, flag or
// flag value that no test here runs.

import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/cli.js';
import { ruleLines } from '../support/kernel-sim.js';
import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import { apiDown, exercised, exercisedBy, rig, topology } from './harness.js';

const BAD_CONFIG = 'aws: { region: US-EAST-1 }\nforward: { allowedSources: [198.51.100.27/32] }\n';
const owned = (lines: string[]) => lines.filter((l) => l.includes('CACHENAT-'));

/** The kernel after someone deleted the jump from filter FORWARD into cachenat's chain. */
const withoutForwardJump = (kernel: InstalledRules): InstalledRules => ({
  nat: kernel.nat,
  filter: { chains: new Map([...kernel.filter.chains].map(([name, chain]) => [name, name === 'FORWARD' ? { ...chain, rules: [] } : chain])) },
});

t.test('the command line itself: usage, help, version, unknown commands and flags with suggestions', async (t) => {
  const r = await rig(t);
  const none = await r.cli([]);
  t.equal(none.code, 64, 'no command is a usage error');
  t.equal(none.stdout, '', 'usage errors go to stderr');
  t.match(none.stderr, /^cachenat: which command\? One of: run, apply, plan, status, endpoints, health, flush, validate, ha, audit\.\n\nUsage: cachenat <command> \[options\]/);

  for (const argv of [['help'], ['--help'], ['-h']]) {
    const help = await r.cli(argv);
    t.equal(help.code, 0, argv.join(' '));
    t.equal(help.stderr, '');
    t.match(help.stdout, /^Usage: cachenat <command> \[options\]\n(.|\n)*\n {2}endpoints +how clients connect/);
  }
  const version = await r.cli(['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout, /^cachenat \d+\.\d+\.\d+ \(node v\d+\.\d+\.\d+, linux-\w+\)\n$/);
  t.equal((await r.cli(['-V'])).stdout, version.stdout);

  // Each command explains itself, the same way whichever way it is asked.
  for (const command of Object.keys(COMMANDS)) {
    const asked = await r.cli([command, '--help']);
    t.equal(asked.code, 0, `${command} --help`);
    t.match(asked.stdout, new RegExp(`^Usage: cachenat ${command} \\[options\\]`), `${command} --help names ${command}`);
    t.match(asked.stdout, /Exit codes/, `${command} --help gives its exit codes`);
    t.equal((await r.cli(['help', command])).stdout, asked.stdout, `help ${command}`);
    t.equal((await r.cli([command, '-h'])).stdout, asked.stdout, `${command} -h`);
  }
  t.match((await r.cli(['endpoints', '--help'])).stdout, /--format <format>\s+what to print \(default: table\) \(choices: "table",\s+"json",\s+"natmap",\s+"security-group",\s+"hosts",\s+"dnsmasq"\)/);

  const unknown = await r.cli(['stauts', '--config', r.configPath]);
  t.equal(unknown.code, 64);
  t.equal(unknown.stdout, '');
  t.equal(unknown.stderr, `cachenat: unknown command 'stauts'\n(Did you mean status?)\nRun "cachenat --help" for the commands.\n`);
  t.equal((await r.cli(['help', 'stauts'])).stderr, unknown.stderr, 'help <unknown> is refused the same way');
  t.match((await r.cli(['reboot'])).stderr, /^cachenat: unknown command 'reboot'\nRun "cachenat --help"/, 'no suggestion when nothing is close');

  const misspelt = await r.cli(['validate', '--confg', r.configPath]);
  t.equal(misspelt.code, 64);
  t.equal(misspelt.stderr, `cachenat: unknown option '--confg'\n(Did you mean --config?)\nRun "cachenat validate --help" for its flags.\n`);
  t.match((await r.cli(['health', '--prob'])).stderr, /unknown option '--prob'\n\(Did you mean --probe\?\)/);
  const wrongFlag = await r.cli(['status', '--probe', '--config', r.configPath]);
  t.equal(wrongFlag.code, 64);
  t.match(wrongFlag.stderr, /^cachenat: unknown option '--probe' \(status takes no --probe; health takes it\)\n/);
  const undefinedFlag = await r.cli(['status', '--verbose']);
  t.equal(undefinedFlag.code, 64);
  t.match(undefinedFlag.stderr, /unknown option '--verbose'/);
  const badValue = await r.cli(['endpoints', '--format', 'xml', '--config', '/nonexistent.yaml']);
  t.equal(badValue.code, 64, 'a bad value is refused before the config is read');
  t.match(badValue.stderr, /argument 'xml' is invalid\. Allowed choices are table, json, natmap, security-group, hosts, dnsmasq/);
  t.equal(r.world.machineLoads, 0);
});

t.test('an unexpected error is one line and says how to get the stack', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1' });
  const broken = new Error('boom: the kernel sim broke\n    with a second line');
  r.world.kernelReadFails = broken;
  const plain = await r.cli(['plan', '--config', r.configPath]);
  t.equal(plain.code, 1);
  t.equal(plain.stderr, 'cachenat: boom: the kernel sim broke | with a second line (unexpected error; run again with CACHENAT_DEBUG=1 for the stack trace)\n');
  const debug = await r.cli(['plan', '--config', r.configPath], { CACHENAT_DEBUG: '1' });
  t.equal(debug.code, 1);
  t.match(debug.stderr, /^cachenat: Error: boom: the kernel sim broke\n {4}with a second line\n {4}at /);
});

t.test('validate: --config, -c, $CACHENAT_CONFIG; 78 on a bad config', async (t) => {
  const r = await rig(t);
  const good = await r.cli(['validate', '--config', r.configPath]);
  t.equal(good.code, 0);
  t.equal(good.stdout, `${r.configPath}: configuration is valid\n`);
  t.equal((await r.cli(['validate', '-c', r.configPath])).code, 0);
  const fromEnv = await r.cli(['validate'], { CACHENAT_CONFIG: r.configPath });
  t.equal(fromEnv.code, 0);
  t.match(fromEnv.stdout, r.configPath);
  t.same(JSON.parse((await r.cli(['validate', '--json', '-c', r.configPath])).stdout), { path: r.configPath, valid: true, issues: [], warnings: [] });
  await r.writeConfig('x: 1\n');
  const bad = await r.cli(['validate', '--config', r.configPath]);
  t.equal(bad.code, 78);
  t.match(bad.stderr, /\n {2}- x: unknown key; expected one of aws, discovery, dns, forward, ports, ipForward, state, persist, health, metrics, log, ha, audit\n/);
  const badJson = await r.cli(['validate', '--json', '--config', r.configPath]);
  t.equal(badJson.code, 78);
  t.match(JSON.parse(badJson.stdout), { path: r.configPath, valid: false, issues: [{ path: 'x', message: /^unknown key; expected one of aws, / }] });
});

t.test('a bad config exits 78 before any command touches anything', async (t) => {
  const r = await rig(t);
  await writeFile(r.configPath, BAD_CONFIG);
  const lines = Object.keys(COMMANDS)
    .filter((c) => c !== 'health')
    .flatMap((c) => (c === 'ha' ? [['ha', 'init'], ['ha', 'handover']] : [[c]]));
  for (const line of lines) {
    const result = await r.cli([...line, '--config', r.configPath]);
    t.equal(result.code, 78, line.join(' '));
    t.match(result.stderr, /aws\.region/, `${line.join(' ')} names the key`);
  }
  t.equal(r.world.machineLoads, 0, 'neither the kernel nor AWS was reached');
  t.notOk(existsSync(r.stateDir), 'no state dir created');
  t.same(owned(ruleLines(r.world.kernel)), []);
});

t.test('apply: one pass writes the rules; API or kernel failure exits 1', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1', b: '10.0.1.2' });
  const first = await r.cli(['apply', '--config', r.configPath]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^rules updated \(.*\): 2 forwards, 2 active/);
  t.same(await r.ports(), { 'node/a/0001': 6379, 'node/b/0001': 6380 });
  t.ok(owned(ruleLines(r.world.kernel)).some((l) => l.includes('--to-destination 10.0.1.2:6379')));
  t.equal(r.world.ipForwardChecks, 1);

  const again = await r.cli(['apply', '--json', '--config', r.configPath]);
  t.equal(again.code, 0);
  t.same(JSON.parse(again.stdout), { applied: false, chainsWritten: [], forwards: 2, active: 2, durationMs: JSON.parse(again.stdout).durationMs });

  r.world.api = apiDown();
  const failed = await r.cli(['apply', '--config', r.configPath]);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /ElastiCache API: .*InternalFailure.*kept every forward as it was/);

  r.serve({ a: '10.0.1.1', b: '10.0.1.2', c: '10.0.1.3' });
  r.world.restoreFails = new Error('iptables-restore: line 3 failed');
  const kernelDown = await r.cli(['apply', '--config', r.configPath]);
  t.equal(kernelDown.code, 1);
  t.match(kernelDown.stderr, /iptables-restore: line 3 failed/);
});

t.test('plan: 0 nothing to do, 2 changes pending (kernel or state only), 1 could not plan', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1' });

  const fresh = await r.cli(['plan', '--config', r.configPath]);
  t.equal(fresh.code, 2, 'rules to write');
  t.match(fresh.stdout, /changes:\n {2}new target node\/a\/0001 on port 6379/);
  t.match(fresh.stdout, /kernel update \(iptables-restore --noflush input\):\n\*nat/);
  t.same(owned(ruleLines(r.world.kernel)), [], 'plan wrote nothing to the kernel');
  t.same(await r.ports(), {}, 'nor the port map');
  const freshJson = await r.cli(['plan', '--json', '--config', r.configPath]);
  t.equal(freshJson.code, 2);
  t.match(JSON.parse(freshJson.stdout), {
    outcome: 'changes-pending',
    changes: [{ type: 'added', message: 'new target node/a/0001 on port 6379', key: 'node/a/0001', listenPort: 6379 }],
    restore: /^\*nat/,
    forwards: 1,
  });

  t.equal((await r.cli(['apply', '--config', r.configPath])).code, 0);
  const idle = await r.cli(['plan', '--config', r.configPath]);
  t.equal(idle.code, 0);
  t.equal(idle.stdout, 'nothing to do: 1 forwards are in place\n');

  r.serve({ a: '10.0.1.9' }); // a failover
  const moved = await r.cli(['plan', '--config', r.configPath]);
  t.equal(moved.code, 2);
  t.match(moved.stdout, /open connections to cut once the rules are in:\n {2}through port 6379 to 10\.0\.1\.1 \(the target moved\)\n/);
  r.serve({ a: '10.0.1.1' });

  r.world.api = topology();
  const stateOnly = await r.cli(['plan', '--config', r.configPath]);
  t.equal(stateOnly.code, 2, 'a target starting its removal grace changes the port map, not the kernel');
  t.match(stateOnly.stdout, /target node\/a\/0001 is gone from the API; keeping port 6379/);
  t.match(stateOnly.stdout, /the kernel rules already match; only the port map changes/);

  r.world.api = apiDown();
  const downIdle = await r.cli(['plan', '--config', r.configPath]);
  t.equal(downIdle.code, 1, 'API down, nothing else pending');
  t.match(downIdle.stderr, /could not plan: ElastiCache API: .*InternalFailure/);
  t.match(JSON.parse((await r.cli(['plan', '--json', '--config', r.configPath])).stdout), { outcome: 'could-not-plan', changes: [], restore: null, apiError: /InternalFailure/ });
  t.notMatch(downIdle.stdout, /nothing to do/, 'no claim that nothing would change');

  r.world.kernel = withoutForwardJump(r.world.kernel);
  const downPending = await r.cli(['plan', '--config', r.configPath]);
  t.equal(downPending.code, 1, 'API down while a jump is missing: still could not plan');
  t.match(downPending.stdout, /even without the API's answer, a pass would change:\n(.|\n)*-I FORWARD 1 .*-j CACHENAT-FORWARD/);
});

t.test('status and status --json: from the port map, then from the running daemon', async (t) => {
  const r = await rig(t);
  const empty = await r.cli(['status', '--config', r.configPath]);
  t.equal(empty.code, 0);
  t.equal(empty.stdout, 'no forwards: cachenat has not run a pass yet on this host\n');

  r.serve({ a: '10.0.1.1' });
  await r.cli(['apply', '--config', r.configPath]);
  const table = await r.cli(['status', '--config', r.configPath]);
  t.match(table.stdout, /^PORT +ENGINE +KIND +TARGET/);
  t.match(table.stdout, /6379 +redis +node +a\/0001/);
  t.match(table.stdout, /from the port map in .*the daemon is not running/);

  r.world.onSleep = () => void r.world.signals.emit('SIGTERM');
  t.equal((await r.cli(['run', '--config', r.configPath])).code, 0);
  const json = await r.cli(['status', '--json', '--config', r.configPath]);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { source: 'daemon', forwards: [{ key: 'node/a/0001', listenPort: 6379, targetIp: '10.0.1.1', state: 'active' }] });
});

t.test('endpoints: every format, and where the address comes from', async (t) => {
  const r = await rig(t);
  const setPublicAddress = async (from: string, to: string) => writeFile(r.configPath, (await readFile(r.configPath, 'utf8')).replace(from, to));
  await setPublicAddress('allowedSources: [198.51.100.27/32] }', 'allowedSources: [198.51.100.27/32], publicAddress: 203.0.113.73 }');
  r.serve({ a: '10.0.1.1' });
  await r.cli(['apply', '--config', r.configPath]);

  const table = await r.cli(['endpoints', '--config', r.configPath]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /203\.0\.113\.73:6379 +redis +node +a\/0001 +active/);
  t.equal((await r.cli(['endpoints', '--format', 'table', '--config', r.configPath])).stdout, table.stdout);

  const json = await r.cli(['endpoints', '--format', 'json', '--config', r.configPath]);
  t.match(JSON.parse(json.stdout), { host: '203.0.113.73', endpoints: [{ endpoint: '203.0.113.73:6379', key: 'node/a/0001' }] });
  t.equal((await r.cli(['endpoints', '--json', '--config', r.configPath])).stdout, json.stdout, '--json is --format json');

  const natmap = JSON.parse((await r.cli(['endpoints', '--format', 'natmap', '--config', r.configPath])).stdout) as unknown;
  t.same(natmap, { '10.0.1.1:6379': { host: '203.0.113.73', port: 6379 }, 'a-0001.cache.example:6379': { host: '203.0.113.73', port: 6379 } });

  const sg = await r.cli(['endpoints', '--format', 'security-group', '--config', r.configPath]);
  t.equal(sg.code, 0);
  t.match(sg.stdout, /198\.51\.100\.27\/32/);
  t.match(sg.stdout, /aws ec2 authorize-security-group-ingress/);

  // Without forward.publicAddress: IMDS, then the interface, then an error that says where it looked.
  await setPublicAddress(', publicAddress: 203.0.113.73', '');
  r.world.imds = { address: '203.0.113.9' };
  const fromImds = await r.cli(['endpoints', '--config', r.configPath]);
  t.equal(fromImds.code, 0);
  t.match(fromImds.stdout, /203\.0\.113\.9:6379/);
  t.equal(fromImds.stderr, '');

  r.world.imds = { reason: 'public-ipv4 answered HTTP 404' };
  r.world.interfaces = { eth0: '10.0.0.5' };
  const fromInterface = await r.cli(['endpoints', '--config', r.configPath]);
  t.equal(fromInterface.code, 0);
  t.match(fromInterface.stdout, /10\.0\.0\.5:6379/);
  t.match(fromInterface.stderr, /note: showing eth0's own address 10\.0\.0\.5 .*clients outside the VPC need forward\.publicAddress/);

  r.world.interfaces = {};
  r.world.defaultRoute = undefined;
  const nowhere = await r.cli(['endpoints', '--format', 'natmap', '--config', r.configPath]);
  t.equal(nowhere.code, 1, 'no usable address is a failure, not 127.0.0.1');
  t.equal(nowhere.stdout, '');
  t.match(
    nowhere.stderr,
    /no address for clients to dial: forward\.publicAddress is not set; IMDSv2 public-ipv4: public-ipv4 answered HTTP 404; forward\.inboundInterface auto: no IPv4 address\. Set forward\.publicAddress in .*config\.yaml/,
  );
  t.notMatch(nowhere.stderr + nowhere.stdout, /127\.0\.0\.1/);
});

t.test('health --config reads that config, not the default one', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1' });
  r.world.onSleep = () => void r.world.signals.emit('SIGTERM');
  t.equal((await r.cli(['run', '--config', r.configPath])).code, 0);

  const ok = await r.cli(['health', '--config', r.configPath]);
  t.equal(ok.code, 0, ok.stdout);
  t.match(ok.stdout, /^OK - 1 forward/);
  t.notMatch(ok.stdout, /\/etc\/cachenat\/config\.yaml/);

  const fromEnv = await r.cli(['health'], { CACHENAT_CONFIG: r.configPath });
  t.equal(fromEnv.code, 0, fromEnv.stdout);

  const json = await r.cli(['health', '--json', '--probe', '-c', r.configPath]);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { state: 'OK', checks: [{ name: 'daemon' }] });
  t.match(json.stdout, /TCP connect to all 1 targets succeeded/);

  const dead = await r.cli(['health', '--config', join(r.dir, 'missing.yaml')]);
  t.equal(dead.code, 2, 'an unusable config still gets an answer');
  t.match(dead.stdout, /note: config .*missing\.yaml not usable/);
});

t.test('flush removes what cachenat installed and keeps the port map', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1' });
  const nothing = await r.cli(['flush', '--config', r.configPath]);
  t.equal(nothing.code, 0);
  t.equal(nothing.stdout, 'nothing installed by cachenat\n');
  await r.cli(['apply', '--config', r.configPath]);
  const flushed = await r.cli(['flush', '--config', r.configPath]);
  t.equal(flushed.code, 0, flushed.stderr);
  t.match(flushed.stdout, /removed every cachenat chain and jump/);
  t.same(owned(ruleLines(r.world.kernel)), []);
  t.same(await r.ports(), { 'node/a/0001': 6379 });
});

t.test('run: SIGHUP reloads the config (a bad one is refused), SIGTERM stops with exit 0', async (t) => {
  const r = await rig(t);
  r.serve({ a: '10.0.1.1' });
  r.world.onSleep = async (n) => {
    if (n === 1) {
      await r.writeConfig('discovery: { include: ["b*"] }\n');
      r.world.signals.emit('SIGHUP');
    } else if (n === 2) {
      await writeFile(r.configPath, BAD_CONFIG);
      r.world.signals.emit('SIGHUP');
    } else r.world.signals.emit('SIGTERM');
  };
  const run = await r.cli(['run', '--config', r.configPath]);
  t.equal(run.code, 0, run.stderr);
  t.same(r.world.edgesBuiltFor.map((c) => c.discovery.include), [['*'], ['b*']], 'edges rebuilt once, for the good reload only');
  t.match(run.stdout, /"msg":"configuration reloaded"/);
  t.match(run.stdout, /reload refused, keeping the running configuration: .*aws\.region/);
  t.match(run.stdout, /"msg":"stopped; forwards left in place"/);
  t.equal(r.world.signals.listenerCount('SIGHUP'), 0, 'signal handlers removed on exit');
  t.ok(owned(ruleLines(r.world.kernel)).length > 0, 'forwards left in place');
});

t.test('address mode: hosts and dnsmasq lines, endpoints and status per address, a missing address refused with 78', async (t) => {
  const r = await rig(t);
  const addressConfig = async (addresses: string[]) => {
    const text = await readFile(r.configPath, 'utf8');
    const list = addresses.map((a, i) => `{address: ${a}, public: 203.0.113.${i + 1}}`).join(', ');
    await writeFile(r.configPath, text.replace(/forward: \{[^}]*\}/, `forward: { allowedSources: [198.51.100.27/32], listenAddresses: [${list}] }`));
  };
  r.serve({ a: '10.0.1.1', b: '10.0.1.2', c: '10.0.1.3' });

  // Port mode first: names cannot express ports.
  await r.cli(['apply', '--config', r.configPath]);
  const portMode = await r.cli(['endpoints', '--format', 'hosts', '--config', r.configPath]);
  t.equal(portMode.code, 1);
  t.equal(portMode.stdout, '');
  t.match(portMode.stderr, /--format hosts needs address mode.*Set forward\.listenAddresses in .*config\.yaml/);

  await addressConfig(['10.0.0.21', '10.0.0.22']);
  r.world.interfaces = { eth0: '10.0.0.5' };
  r.world.secondaryAddresses = { eth0: ['10.0.0.21'] };
  const before = JSON.stringify([...r.world.kernel.nat.chains]);
  const missing = await r.cli(['apply', '--config', r.configPath]);
  t.equal(missing.code, 78, 'an address the interface does not hold is a config error');
  t.match(missing.stderr, /forward\.listenAddresses\[1\]\.address: 10\.0\.0\.22 is not configured on eth0 \(eth0 has 10\.0\.0\.5, 10\.0\.0\.21\)/);
  t.equal(JSON.stringify([...r.world.kernel.nat.chains]), before, 'nothing touched');
  t.equal((await r.cli(['plan', '--config', r.configPath])).code, 78, 'plan checks too');

  r.world.secondaryAddresses = { eth0: ['10.0.0.21', '10.0.0.22'] };
  const applied = await r.cli(['apply', '--config', r.configPath]);
  t.equal(applied.code, 0, applied.stderr);
  const dnat = ruleLines(r.world.kernel).filter((l) => l.includes('-A CACHENAT-DNAT') && l.includes('--dport'));
  t.match(dnat, [/-d 10\.0\.0\.21\/32 -p tcp -m tcp --dport 6379 .*node\/a\/0001/, /-d 10\.0\.0\.22\/32 -p tcp -m tcp --dport 6379 .*node\/b\/0001/, /-d 10\.0\.0\.21\/32 -p tcp -m tcp --dport 6381 .*node\/c\/0001/]);

  const hosts = await r.cli(['endpoints', '--format', 'hosts', '--config', r.configPath]);
  t.equal(hosts.code, 0, hosts.stderr);
  t.equal(
    hosts.stdout,
    '203.0.113.1 a-0001.cache.example\n203.0.113.2 b-0001.cache.example\n# c-0001.cache.example (node/c/0001) has no listen address of its own: dial 203.0.113.1:6381\n',
  );
  const dnsmasq = await r.cli(['endpoints', '--format', 'dnsmasq', '--config', r.configPath]);
  t.match(dnsmasq.stdout, /^address=\/a-0001\.cache\.example\/203\.0\.113\.1\naddress=\/b-0001\.cache\.example\/203\.0\.113\.2\n#/);
  const json = JSON.parse((await r.cli(['endpoints', '--format', 'json', '--config', r.configPath])).stdout) as { mode: string; endpoints: unknown[] };
  t.match(json, { mode: 'address', endpoints: [{ key: 'node/a/0001', listenAddress: '10.0.0.21', publicAddress: '203.0.113.1', endpoint: '203.0.113.1:6379' }] });
  const table = await r.cli(['endpoints', '--config', r.configPath]);
  t.match(table.stdout, /203\.0\.113\.2:6379 +redis +node +b\/0001 +active +no +b-0001\.cache\.example +10\.0\.0\.22:6379/);
  t.match(table.stdout, /203\.0\.113\.1:6381 .* \(by port only\) +10\.0\.0\.21:6381 \(fallback\)/);
  const natmap = JSON.parse((await r.cli(['endpoints', '--format', 'natmap', '--config', r.configPath])).stdout) as Record<string, unknown>;
  t.same(natmap['10.0.1.2:6379'], { host: '203.0.113.2', port: 6379 });
  const status = await r.cli(['status', '--config', r.configPath]);
  t.match(status.stdout, /^LISTEN +ENGINE/);
  t.match(status.stdout, /10\.0\.0\.21:6381 \(fallback\) +redis/);

  // The fallback took its port-mode port back (6381): a client that used it keeps working.
  // Back to port mode: no -d rule is left, and the old ports come back, except where a port-mode
  // listener would catch an address another target just left: :6379 would answer 10.0.0.22:6379,
  // which node/b/0001's clients dialled until now, so node/a/0001 waits out reuseAfter on 6382.
  await r.writeConfig();
  t.equal((await r.cli(['apply', '--config', r.configPath])).code, 0);
  const after = ruleLines(r.world.kernel).filter((l) => l.includes('-A CACHENAT-DNAT') && l.includes('--dport'));
  t.equal(after.filter((l) => l.includes(' -d ')).length, 0);
  t.same(await r.ports(), { 'node/a/0001': 6382, 'node/b/0001': 6380, 'node/c/0001': 6381 });
});

t.test('audit: a window of audit.file and its rotated copies, or --file; text and --json', async (t) => {
  const r = await rig(t);
  const log = join(r.dir, 'log', 'audit.jsonl');
  await mkdir(join(r.dir, 'log'));
  const line = (end: string, client: string, cache: string, reason = 'closed') =>
    JSON.stringify({ audit: true, schema: 1, event: 'end', start: null, end, durationSeconds: null, clientAddress: client, clientPort: 40000, listenAddress: '10.0.0.5', listenPort: 6379, source: `${client}/32`, targetKey: `primary/${cache}`, kind: 'primary', engine: 'redis', cache, targetAddress: '10.0.1.5', targetPort: 6379, bytesFromClient: 100, bytesToClient: 200, packetsFromClient: 1, packetsToClient: 1, reason, tcpState: 'TIME_WAIT', conntrackId: 1 });
  const now = Date.now();
  const ago = (ms: number) => new Date(now - ms).toISOString();
  await writeFile(log, `${line(ago(60_000), '198.51.100.1', 'orders')}\n{"level":30,"msg":"not a record"}\n`);
  await writeFile(`${log}.1`, `${line(ago(2 * 3_600_000), '198.51.100.2', 'orders', 'revoked')}\n`);
  await writeFile(`${log}.2.gz`, gzipSync(`${line(ago(20 * 3_600_000), '198.51.100.3', 'sessions')}\n`));
  await writeFile(`${log}.3.gz`, gzipSync(`${line(ago(40 * 3_600_000), '198.51.100.4', 'sessions')}\n`));
  await utimes(`${log}.3.gz`, (now - 40 * 3_600_000) / 1000, (now - 40 * 3_600_000) / 1000); // last written before the window: skipped unread

  t.equal((await r.cli(['audit', '--config', r.configPath])).code, 1, 'audit off in the config: nothing to summarise');
  await r.writeConfig(`audit: { enabled: true, file: ${log} }\n`);
  const day = await r.cli(['audit', '--json', '--config', r.configPath]);
  t.equal(day.code, 0, day.stderr);
  const summary = JSON.parse(day.stdout) as { flows: number; caches: { cache: string; flows: number }[]; revoked: { clientAddress: string }[] };
  t.same([summary.flows, summary.caches.map((c) => [c.cache, c.flows]), summary.revoked.map((x) => x.clientAddress)], [3, [['orders', 2], ['sessions', 1]], ['198.51.100.2']], 'the last 24 h by default, across the rotated and compressed copies');
  const hour = await r.cli(['audit', '--since', '90m', '--config', r.configPath]);
  t.match(hour.stdout, /: 1 connection ended, 100 B from clients, 200 B to clients$/m);
  const range = await r.cli(['audit', '--since', ago(3 * 3_600_000), '--until', ago(3_600_000), '--config', r.configPath]);
  t.match(range.stdout, /cut by a revocation \(1\):/);
  const copy = await r.cli(['audit', '--file', `${log}.1`, '--since', '7d', '--json']);
  t.equal(JSON.parse(copy.stdout).flows, 1, '--file: that file alone, no config needed');
  t.equal((await r.cli(['audit', '--since', 'last week', '--config', r.configPath])).code, 64, 'a window it cannot read');
  t.equal((await r.cli(['audit', '--since', '1h', '--until', '2h', '--config', r.configPath])).code, 64, 'since after until');
});

t.test('every command, flag, flag value and word is exercised by the tests above', async (t) => {
  const required = ['(none)', 'help', '--help', 'any --config', 'any -c'];
  for (const [command, entry] of Object.entries(COMMANDS)) {
    const module = await entry.load();
    required.push(command, `${command} --config`);
    for (const flag of module.flags) {
      const long = /--([a-z-]+)/.exec(flag.flags)![1]!;
      required.push(`${command} --${long}`);
      for (const value of flag.choices ?? []) required.push(`${command} --${long}=${value}`);
    }
    for (const word of module.words ?? []) for (const value of word.choices) required.push(`${command} ${value}`);
  }
  const seen = new Set((await Promise.all(exercised.map(exercisedBy))).flat());
  t.same(required.filter((item) => !seen.has(item)), [], 'not exercised in-process');
  t.ok(required.length >= 30, `the CLI's definition lists ${required.length} items`);
});
