// The config against the host, through the real CLI in-process (runCli on the
// fake machine): auto region and interface from IMDS, a named interface the
// host lacks refused with 78 before anything is touched (run, apply, plan and
// each reload), a port range over a local service refused, and health
// CRITICAL once the interface disappears.

import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { ruleLines } from '../support/kernel-sim.js';
import { rig, type Rig } from './harness.js';

/** A config of only what a first run needs, plus the test's own files. */
const firstRun = (r: Rig, forward = '') =>
  writeFile(
    r.configPath,
    `forward: { allowedSources: [198.51.100.27/32]${forward} }\nstate: { dir: ${r.stateDir}, statusFile: ${r.statusFile} }\npersist: { rulesFile: none }\nlog: { level: debug }\n`,
  );

/** An Amazon Linux 2023 instance on Nitro: ens5 with the primary MAC, IMDSv2 answering. */
function al2023(r: Rig): void {
  r.world.interfaces = { lo: '127.0.0.1', ens5: '10.0.1.10' };
  r.world.macs = { ens5: '0e:49:61:0f:c3:11' };
  r.world.defaultRoute = 'ens5';
  r.world.imdsMac = { value: '0e:49:61:0f:c3:11' };
  r.world.imdsRegion = { value: 'eu-west-1' };
}

t.test('a config of only allowedSources: region and interface from IMDS, and it forwards', async (t) => {
  const r = await rig(t);
  al2023(r);
  await firstRun(r);
  r.serve({ a: '10.0.2.1' });
  const applied = await r.cli(['apply', '--config', r.configPath]);
  t.equal(applied.code, 0, applied.stderr);
  t.equal(r.world.edgesBuiltFor[0]?.aws.region, 'eu-west-1', 'the API is asked in the instance\'s region');
  t.equal(r.world.edgesBuiltFor[0]?.forward.inboundInterface, 'ens5');
  t.ok(ruleLines(r.world.kernel).some((l) => /-A CACHENAT-PREROUTING .*-i ens5 /.test(l)), 'the PREROUTING rule matches ens5');
  t.same(r.world.imdsAsked, [{ what: 'region', endpoint: undefined }, { what: 'mac', endpoint: undefined }]);

  r.world.onSleep = () => void r.world.signals.emit('SIGTERM');
  const run = await r.cli(['run', '--config', r.configPath]);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /"msg":"aws\.region is auto: eu-west-1, the instance's region \(IMDS\)"/);
  t.match(run.stdout, /"msg":"forward\.inboundInterface is auto: ens5 holds the instance's primary MAC 0e:49:61:0f:c3:11 \(IMDS\)"/);
  t.match(run.stdout, /"version":"\d+\.\d+\.\d+","node":"v\d+\.\d+\.\d+".*"inboundInterface":"ens5".*"msg":"cachenat \d+\.\d+\.\d+ starting"/);
});

t.test('inboundInterface: eth0 on ens5: run, apply and plan exit 78 naming eth0 and ens5; the ruleset is untouched', async (t) => {
  const r = await rig(t);
  al2023(r);
  await firstRun(r);
  r.serve({ a: '10.0.2.1' });
  t.equal((await r.cli(['apply', '--config', r.configPath])).code, 0);
  const before = ruleLines(r.world.kernel).join('\n');
  const loads = r.world.machineLoads;
  await firstRun(r, ', inboundInterface: eth0');
  for (const command of ['run', 'apply', 'plan']) {
    const refused = await r.cli([command, '--config', r.configPath]);
    t.equal(refused.code, 78, command);
    t.equal(refused.stdout, '', `${command}: nothing on stdout`);
    t.equal(
      refused.stderr,
      `cachenat: invalid configuration in ${r.configPath}:\n  - forward.inboundInterface: expected an interface of this host (it has ens5, lo), got eth0, which does not exist here. Set it to auto (the instance's primary interface: ens5 on Nitro instances such as Amazon Linux 2023, eth0 on older ones) or to one of those names\nFix the keys above and run "cachenat validate".\n`,
      command,
    );
  }
  t.equal(ruleLines(r.world.kernel).join('\n'), before, 'the ruleset is byte-identical');
  t.equal(r.world.machineLoads, loads, 'neither the kernel nor AWS was reached');
  t.equal((await r.cli(['validate', '--config', r.configPath])).code, 0, 'validate judges the file alone');
});

t.test('aws.region: $AWS_REGION when IMDS gives none; neither: 78 saying where it looked', async (t) => {
  const r = await rig(t);
  await firstRun(r);
  r.serve({ a: '10.0.2.1' });
  const fromEnv = await r.cli(['apply', '--config', r.configPath], { AWS_REGION: 'ap-southeast-2' });
  t.equal(fromEnv.code, 0, fromEnv.stderr);
  t.equal(r.world.edgesBuiltFor[0]?.aws.region, 'ap-southeast-2');
  t.equal(r.world.edgesBuiltFor[0]?.forward.inboundInterface, 'eth0', 'no IMDS: the default route\'s interface');
  const nowhere = await r.cli(['plan', '--config', r.configPath]);
  t.equal(nowhere.code, 78);
  t.match(nowhere.stderr, /- aws\.region: auto found no region \(IMDSv2 placement\/region: not asked: AWS_EC2_METADATA_DISABLED=true; \$AWS_REGION is not set\)\. Set aws\.region to the caches' region, e\.g\. us-east-1\n/);
});

t.test('a port range over a local service is refused at start', async (t) => {
  const r = await rig(t);
  al2023(r);
  await firstRun(r);
  r.world.listeners = [{ address: '0.0.0.0', port: 22 }, { address: '127.0.0.1', port: 6379 }, { address: '10.0.1.10', port: 6381 }];
  const refused = await r.cli(['run', '--config', r.configPath]);
  t.equal(refused.code, 78);
  t.match(refused.stderr, /- ports\.redis: expected a range free of local services, got 6379, and its first 100 ports \(6379-6478\) include 6381, where a local process listens \(10\.0\.1\.10:6381\)/);
  t.notMatch(refused.stderr, /include 6379|:22\b|127\.0\.0\.1/, 'loopback-only and ssh listeners are none of its business');
});

t.test('a reload that names a missing interface is refused; health goes CRITICAL when the interface disappears', async (t) => {
  const r = await rig(t);
  al2023(r);
  await firstRun(r);
  r.serve({ a: '10.0.2.1' });
  r.world.onSleep = async (n) => {
    if (n === 1) {
      await firstRun(r, ', inboundInterface: eth0');
      r.world.signals.emit('SIGHUP');
    } else r.world.signals.emit('SIGTERM');
  };
  const run = await r.cli(['run', '--config', r.configPath]);
  t.equal(run.code, 0);
  t.match(run.stdout, /reload refused, keeping the running configuration: .*forward\.inboundInterface: expected an interface of this host \(it has ens5, lo\), got eth0/);
  t.same(r.world.edgesBuiltFor.map((c) => c.forward.inboundInterface), ['ens5'], 'edges built once, for ens5');

  const ok = await r.cli(['health', '--json', '--config', r.configPath]);
  const report = JSON.parse(ok.stdout) as { state: string; version: string; daemonVersion: string; checks: { name: string; state: string; message: string }[] };
  t.equal(report.state, 'OK', ok.stdout);
  t.match(report, { version: /^\d+\.\d+\.\d+$/, daemonVersion: report.version });
  t.match(report.checks.find((c) => c.name === 'interface'), { state: 'OK', message: 'clients arrive on ens5' });
  const status = JSON.parse((await r.cli(['status', '--json', '--config', r.configPath])).stdout) as { version: string };
  t.equal(status.version, report.version);

  delete r.world.interfaces.ens5;
  const gone = await r.cli(['health', '--config', r.configPath]);
  t.equal(gone.code, 2, 'CRITICAL');
  t.match(gone.stdout, /^CRITICAL - forward\.inboundInterface ens5 is gone from this host \(it has lo\): nothing arrives to be forwarded\./);
});
