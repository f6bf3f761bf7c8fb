// The CDK constructs in deploy/ (CachenatPair, CachenatInstance) synthesize
// offline, as CI runs them:
//   - the library and its apps compile (tsc; no type stripping at synth);
//   - a bare `cdk synth` stops at synth, naming the first missing prop;
//   - `npm run synth:example` (sample values) gives a pair of Auto Scaling
//     groups of one whose CreationPolicy waits for cfn-ready, IMDSv2-only
//     launch templates with explicit public addressing, the DynamoDB gateway
//     endpoint, a role with exactly the actions of the runtime policy files
//     in ami/, user data whose config cachenat itself accepts, and cdk-nag's
//     AwsSolutions pack clean with every acknowledgment justified;
//   - the minimal app (required props only) and a run of prop sets in one
//     process (deploy/test/synth-cases.ts): defaults, options, every
//     required prop missing and values the daemon would refuse.
//
// deploy/ has its own packages (the daemon's install stays free of CDK):
// without deploy/node_modules (npm --prefix deploy ci) this reports a skip.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { acquireLabSlot } from '../../lab/serial.js';
import { BOOT_CHECK_PATH, BOOT_CHECK_SCRIPT, CONFIG_PATH } from '../../deploy/lib/user-data.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const deploy = join(root, 'deploy');
const cdkCli = join(deploy, 'node_modules/aws-cdk/bin/cdk');
const tsc = join(deploy, 'node_modules/typescript/bin/tsc');

interface Resource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  CreationPolicy?: unknown;
  UpdatePolicy?: unknown;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}
interface Template {
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: unknown }>;
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}
interface CaseResult {
  name: string;
  error?: { name: string; prop?: string; message: string };
  template?: Template;
  findings?: { plugin: string; rule: string; severity: string }[];
  warnings?: string[];
}

/** Runs a Node script in deploy/, as CI does: offline, no version check, not counted towards the root's coverage. */
function runInDeploy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string; stdout: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', CDK_DISABLE_VERSION_CHECK: '1', ...env };
  delete childEnv.NODE_V8_COVERAGE;
  // cdk.json's app and build commands are `node …`: this test's Node first.
  childEnv.PATH = [dirname(process.execPath), process.env.PATH ?? ''].join(delimiter);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: deploy, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => ((output += b.toString()), (stdout += b.toString())));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, output, stdout }));
  });
}

/** Runs an app of deploy/dist directly (no CLI): CDK reads its context and output directory from the environment. */
const runApp = (app: string, context: Record<string, string>, outdir: string) =>
  runInDeploy([join('dist/deploy/bin', app)], { CDK_CONTEXT_JSON: JSON.stringify(context), CDK_OUTDIR: outdir });

/** The actions of one of the policy files in ami/. */
function policyFileActions(file: string): string[] {
  const policy = JSON.parse(readFileSync(join(root, 'ami', file), 'utf8')) as { Statement: { Action: string | string[] }[] };
  return policy.Statement.flatMap((s) => ([] as string[]).concat(s.Action));
}
/** What a running instance needs: the files the constructs read (deploy/lib/iam.ts RUNTIME_POLICY_FILES). */
const RUNTIME_ACTIONS = [...new Set([...policyFileActions('iam-policy.json'), ...policyFileActions('iam-policy-ha.json')])].sort();

const ofType = (template: Template, type: string): [string, Resource][] => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
const refs = (value: unknown): string => JSON.stringify(value);

/** Fn::Base64 of Fn::Join text, each reference replaced by what stands for it at deploy time. */
function userDataText(value: unknown, standIns: Record<string, string>): string {
  const joined = (value as { 'Fn::Base64': unknown })['Fn::Base64'];
  if (typeof joined === 'string') return joined;
  const [separator, parts] = (joined as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const stand = standIns[refs(part)];
      if (stand === undefined) throw new Error(`user data holds ${refs(part)}, which this test does not know`);
      return stand;
    })
    .join(separator);
}

function statementsOf(template: Template): Statement[] {
  return [
    ...ofType(template, 'AWS::IAM::Policy').flatMap(([, p]) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement),
    ...ofType(template, 'AWS::IAM::Role').flatMap(([, r]) => ((r.Properties?.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).flatMap((p) => p.PolicyDocument.Statement)),
  ];
}

/** The granted actions equal the runtime policy files'; each is scoped: DynamoDB to `tableArn`, `*` only for describe calls, AssociateAddress to `eipArn`. */
function checkIam(t: Test, template: Template, tableArn: unknown, allocationId: unknown): void {
  const roles = ofType(template, 'AWS::IAM::Role');
  t.equal(roles.length, 1, 'one role');
  t.notOk(roles[0]?.[1].Properties?.ManagedPolicyArns, 'no managed policies (their actions are not ours to check)');
  const statements = statementsOf(template);
  const granted = [...new Set(statements.flatMap((s) => ([] as string[]).concat(s.Action)))].sort();
  t.ok(RUNTIME_ACTIONS.includes('dynamodb:PutItem') && RUNTIME_ACTIONS.includes('elasticache:DescribeCacheClusters'), 'read the actions from ami/');
  t.same(granted, RUNTIME_ACTIONS, 'the role grants exactly ami/iam-policy.json + ami/iam-policy-ha.json');
  for (const s of statements) {
    const actions = ([] as string[]).concat(s.Action);
    t.equal(s.Effect, 'Allow');
    for (const action of actions) t.notMatch(action, /\*/, `${action}: no wildcard in an action`);
    if (actions.some((a) => a.startsWith('dynamodb:'))) t.same(s.Resource, tableArn, `${actions.join(', ')}: on the deployment's table only`);
    if (s.Resource === '*') for (const action of actions) t.match(action, /^[a-z0-9-]+:Describe[A-Za-z]+$/, `${action} on every resource only because it is a describe call`);
  }
  if (RUNTIME_ACTIONS.includes('ec2:AssociateAddress')) {
    const associate = statements.filter((s) => ([] as string[]).concat(s.Action).includes('ec2:AssociateAddress'));
    const resources = associate.map((s) => refs(s.Resource));
    t.equal(associate.length, 3, 'AssociateAddress: the Elastic IP, the tagged instances, network interfaces');
    t.ok(resources.some((r) => r.includes(':elastic-ip/') && r.includes(refs(allocationId).replace(/^"|"$/g, ''))), `AssociateAddress on this Elastic IP only: ${resources.join(' ')}`);
    const onInstances = associate.find((s) => refs(s.Resource).includes(':instance/'));
    t.same(onInstances?.Condition, { StringEquals: { 'aws:ResourceTag/cachenat-ha-group': 'cachenat' } }, 'instances only with the pair\'s tag');
    t.notOk(associate.some((s) => s.Resource === '*'), 'never on "*"');
  }
}

interface GroupView {
  id: string;
  group: Resource;
  launchTemplateId: string;
  data: Record<string, unknown>;
}

/** The Auto Scaling groups of one and their launch templates. */
function groupsOf(t: Test, template: Template, count: number): GroupView[] {
  t.equal(ofType(template, 'AWS::EC2::Instance').length, 0, 'no plain instances: each one is in a group that replaces it');
  const groups = ofType(template, 'AWS::AutoScaling::AutoScalingGroup');
  t.equal(groups.length, count, `${count} Auto Scaling group(s)`);
  return groups.map(([id, group]) => {
    const p = group.Properties!;
    t.equal(p.MinSize, '1', `${id}: min 1`);
    t.equal(p.MaxSize, '1', `${id}: max 1`);
    t.equal(p.HealthCheckType, 'EC2', `${id}: EC2 health checks replace a dead instance`);
    t.same(group.CreationPolicy, { ResourceSignal: { Count: 1, Timeout: 'PT15M' } }, `${id}: CreationPolicy waits for one signal`);
    t.match(group.UpdatePolicy, { AutoScalingRollingUpdate: { MaxBatchSize: 1, MinInstancesInService: 0, WaitOnResourceSignals: true, PauseTime: 'PT15M' } }, `${id}: an update replaces the instance and waits for its signal`);
    const launchTemplateId = (p.LaunchTemplate as { LaunchTemplateId: { Ref: string } }).LaunchTemplateId.Ref;
    const data = template.Resources[launchTemplateId]?.Properties?.LaunchTemplateData as Record<string, unknown>;
    t.same(data.MetadataOptions, { HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1, HttpTokens: 'required' }, `${id}: IMDSv2 only, one hop`);
    t.ok(data.IamInstanceProfile, `${id}: has the instance profile`);
    t.match(data.BlockDeviceMappings, [{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3', VolumeSize: 8 } }], `${id}: encrypted gp3 root volume`);
    t.match(group.Properties?.Tags, [{ Key: 'cachenat-ha-group', Value: 'cachenat', PropagateAtLaunch: true }], `${id}: instances carry the pair's tag (AssociateAddress is narrowed to it)`);
    return { id, group, launchTemplateId, data };
  });
}

/** Checks one instance's user data: cloud-config; the config cachenat accepts; cfn-ready as shipped; the signal to its own group. */
function checkUserData(t: Test, g: GroupView, standIns: Record<string, string>, expect: { table: string; allocationId: string; publicIp: string; clientCidrs: string[] }): string {
  const text = userDataText(g.data.UserData, standIns);
  t.equal(text.split('\n', 1)[0], '#cloud-config', `${g.id}: cloud-config`);
  const cloud = parse(text) as { write_files?: { path: string; content?: string; permissions?: string }[]; runcmd?: string[][] };
  const file = (path: string) => (cloud.write_files ?? []).find((f) => f.path === path);
  const { config, warnings } = parseConfig(file(CONFIG_PATH)?.content ?? '', `${g.id} user data`);
  t.same(warnings, [], `${g.id}: no risky choices`);
  t.match(config.ha, { table: expect.table, group: 'cachenat', lease: 10_000, elasticIp: expect.allocationId }, `${g.id}: the ha section names the table and the Elastic IP's allocation id`);
  t.equal(config.forward.publicAddress, expect.publicIp, `${g.id}: clients dial the Elastic IP`);
  t.same(config.forward.allowedSources, expect.clientCidrs, `${g.id}: the client CIDRs`);
  t.equal(config.forward.inboundInterface, 'auto', `${g.id}: the daemon's auto finds the primary MAC's (ens5 on Amazon Linux 2023)`);
  t.equal(file(BOOT_CHECK_PATH)?.content, BOOT_CHECK_SCRIPT, `${g.id}: cfn-ready as tested (test/deploy/cfn-ready.test.ts)`);
  t.equal(file(BOOT_CHECK_PATH)?.permissions, '0755');
  t.same(cloud.runcmd, [[BOOT_CHECK_PATH, '--stack', standIns[refs({ Ref: 'AWS::StackName' })], '--resource', g.id, '--region', standIns[refs({ Ref: 'AWS::Region' })], '--wait', '300']], `${g.id}: runs cfn-ready, which signals its own group`);
  return text;
}

if (!existsSync(cdkCli)) {
  t.test('the CDK constructs', { skip: 'deploy/node_modules is missing: run npm --prefix deploy ci --no-audit --no-fund' }, async () => {});
} else {
  const out = mkdtempSync(join(tmpdir(), 'cachenat-cdk-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // The compile and the synths keep both cores busy for a while: they take the
  // machine's lab lock, so a lab test's timing never shares the CPU with them.
  const releaseSlot = await acquireLabSlot();
  t.teardown(releaseSlot);
  const timed = async <T>(t: Test, what: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    t.comment(`${what} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return result;
  };

  let compiled = false;
  await t.test('the library and its apps compile (tsc -p deploy/tsconfig.json)', async (t) => {
    const { code, output } = await timed(t, 'tsc', () => runInDeploy([tsc, '-p', 'tsconfig.json']));
    compiled = code === 0;
    t.equal(code, 0, 'tsc', { output });
    const cdkJson = JSON.parse(readFileSync(join(deploy, 'cdk.json'), 'utf8')) as { app: string; build?: string };
    t.notMatch(cdkJson.app, /strip-types|ts-node|tsx/, `cdk.json runs compiled JavaScript: ${cdkJson.app}`);
    t.match(cdkJson.build, /tsc -p tsconfig\.json/, 'and compiles it before every synth');
  });

  if (compiled) {
    await t.test('a bare `cdk synth` stops at synth, naming the first missing prop', async (t) => {
      const bare = join(out, 'bare');
      const { code, output } = await timed(t, 'cdk synth (bare)', () => runInDeploy([cdkCli, 'synth', '--quiet', '--no-version-reporting', '--no-notices', '--output', bare]));
      t.not(code, 0, 'exits non-zero');
      t.match(output, /CachenatPair CachenatHa\/Pair: the required prop "vpc" is missing/, 'names the prop');
      t.match(output, /-c vpcId=vpc-/, 'and the context keys that set it');
      t.notOk(existsSync(join(bare, 'CachenatHa.template.json')), 'no template');
    });

    await t.test('npm run synth:example: the pair', async (t) => {
      const script = (JSON.parse(readFileSync(join(deploy, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['synth:example'] ?? '';
      t.match(script, /^cdk synth .*-c sample=true/, `the script: ${script}`);
      const example = join(out, 'example');
      const { code, output } = await timed(t, 'npm run synth:example', () => runInDeploy([cdkCli, ...script.split(/\s+/).slice(1), '--output', example]));
      t.equal(code, 0, 'cdk synth exits 0 (cdk-nag AwsSolutions found nothing unacknowledged)', { output });
      if (code !== 0) return;
      const template = JSON.parse(readFileSync(join(example, 'CachenatHa.template.json'), 'utf8')) as Template;

      // --- the table: the lease and the shared map; a generated name, kept
      const [tableId, table] = ofType(template, 'AWS::DynamoDB::Table')[0] ?? [];
      t.equal(ofType(template, 'AWS::DynamoDB::Table').length, 1, 'one DynamoDB table');
      t.strictSame(table?.Properties?.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }], 'partition key pk, nothing else');
      t.equal(table?.Properties?.BillingMode, 'PAY_PER_REQUEST', 'on-demand');
      t.match(table?.Properties?.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true }, 'point-in-time recovery');
      t.notOk(table?.Properties?.TableName, 'no fixed name: a kept table never blocks the next stack');
      t.equal(table?.DeletionPolicy, 'Retain', 'kept when the stack is deleted (the port map outlives it)');

      // --- the Elastic IP, never associated by CloudFormation
      const [eipId] = ofType(template, 'AWS::EC2::EIP')[0] ?? [];
      t.equal(ofType(template, 'AWS::EC2::EIP').length, 1, 'one Elastic IP');
      t.equal(ofType(template, 'AWS::EC2::EIPAssociation').length, 0, "no EIPAssociation: which instance holds it is the lease's business");
      const eipTags = (ofType(template, 'AWS::EC2::EIP')[0]?.[1].Properties?.Tags ?? []) as { Key: string; Value: string }[];
      t.equal(eipTags.find((tag) => tag.Key === 'cachenat-ha-group')?.Value, 'cachenat', "it carries the pair's tag, as the instances do");

      // --- two groups of one, in two subnets, one after the other
      const groups = groupsOf(t, template, 2);
      const subnets = groups.map((g) => refs(g.group.Properties?.VPCZoneIdentifier));
      t.same(subnets, [refs(['subnet-0aaaaaaaaaaaaaaa1']), refs(['subnet-0bbbbbbbbbbbbbbb2'])], 'one subnet each, in two zones');
      t.same(([] as string[]).concat(groups[1]?.group.DependsOn ?? []), [groups[0]?.id], 'the second group waits for the first (creation and updates one at a time)');
      t.notOk(groups[0]?.group.DependsOn, 'the first waits for no other group');
      for (const g of groups) {
        t.match(g.data.NetworkInterfaces, [{ AssociatePublicIpAddress: true, DeviceIndex: 0 }], `${g.id}: a public IPv4 of its own, stated`);
      }
      t.not(groups[0]?.launchTemplateId, groups[1]?.launchTemplateId, 'a launch template each');

      // --- the endpoints the standby needs
      const endpoints = ofType(template, 'AWS::EC2::VPCEndpoint');
      t.equal(endpoints.length, 1, 'one VPC endpoint: DynamoDB (the EC2 one is off by default)');
      t.match(endpoints[0]?.[1].Properties, { VpcEndpointType: 'Gateway', RouteTableIds: ['rtb-0aaaaaaaaaaaaaaa1', 'rtb-0bbbbbbbbbbbbbbb2'] }, 'a gateway endpoint on both subnets\' route tables');
      t.match(refs(endpoints[0]?.[1].Properties?.ServiceName), /dynamodb/);

      // --- IAM
      checkIam(t, template, { 'Fn::GetAtt': [tableId, 'Arn'] }, { 'Fn::GetAtt': [eipId, 'AllocationId'] });

      // --- security groups
      const natGroups = ofType(template, 'AWS::EC2::SecurityGroup');
      t.equal(natGroups.length, 1, 'one group of its own, for the NAT instances');
      const [natSgId, natSg] = natGroups[0]!;
      const ingress = natSg.Properties?.SecurityGroupIngress as { CidrIp?: string; FromPort: number; ToPort: number }[];
      const egress = natSg.Properties?.SecurityGroupEgress as { FromPort?: number; IpProtocol?: string }[];
      t.same(ingress.map((r) => [r.CidrIp, r.FromPort, r.ToPort]), [['198.51.100.27/32', 6379, 6478], ['198.51.100.27/32', 11211, 11310]], 'the clients to the forwarded port ranges, nothing else');
      t.notOk(egress.some((e) => e.FromPort === undefined || e.IpProtocol === '-1'), 'no "all traffic" egress');
      const cacheIngress = ofType(template, 'AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties!);
      t.same(cacheIngress.map((r) => r.FromPort as number).sort((a, b) => a - b), [6379, 6380, 11211, 11212], "the caches' group lets the NAT group in on the cache ports");
      t.ok(cacheIngress.every((r) => refs(r.SourceSecurityGroupId) === refs({ 'Fn::GetAtt': [natSgId, 'GroupId'] })), 'from the NAT group');

      // --- user data
      const standIns: Record<string, string> = {
        [refs({ 'Fn::GetAtt': [eipId, 'AllocationId'] })]: 'eipalloc-0123abcd',
        [refs({ 'Fn::GetAtt': [eipId, 'PublicIp'] })]: '203.0.113.73',
        [refs({ Ref: tableId })]: 'cachenat-ha-cachenat-PairTable-1A2B3C',
        [refs({ Ref: 'AWS::StackName' })]: 'cachenat-ha-cachenat',
        [refs({ Ref: 'AWS::Region' })]: 'us-east-1',
      };
      const texts = groups.map((g) => checkUserData(t, g, standIns, { table: 'cachenat-ha-cachenat-PairTable-1A2B3C', allocationId: 'eipalloc-0123abcd', publicIp: '203.0.113.73', clientCidrs: ['198.51.100.27/32'] }));
      const hasCloudInit = spawnSync('sh', ['-c', 'command -v cloud-init']).status === 0;
      await t.test('cloud-init accepts the user data', { skip: hasCloudInit ? false : 'cloud-init is not installed (apt-get install cloud-init)' }, async (t) => {
        const file = join(out, 'user-data.yaml');
        writeFileSync(file, texts[0]!);
        const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
        t.equal(r.status, 0, 'cloud-init schema --config-file', { output: r.stdout + r.stderr });
      });

      // --- outputs
      const outputs = template.Outputs ?? {};
      t.same(outputs.ElasticIpAddress?.Value, { 'Fn::GetAtt': [eipId, 'PublicIp'] }, 'outputs the Elastic IP');
      t.same(outputs.ElasticIpAllocationId?.Value, { 'Fn::GetAtt': [eipId, 'AllocationId'] }, 'outputs its allocation id');
      t.same(outputs.TableName?.Value, { Ref: tableId }, 'outputs the table name');
      t.same([outputs.AutoScalingGroup1?.Value, outputs.AutoScalingGroup2?.Value], groups.map((g) => ({ Ref: g.id })), 'outputs both groups');

      // --- cdk-nag: clean, and each acknowledgment justified in code
      const metadata = JSON.parse(readFileSync(join(example, 'CachenatHa.metadata.json'), 'utf8')) as Record<string, { type: string; data: Record<string, string> }[]>;
      const acknowledged = Object.entries(metadata).flatMap(([path, entries]) =>
        entries.filter((e) => e.type === 'aws:cdk:acknowledged-rules').flatMap((e) => Object.entries(e.data).map(([rule, reason]) => ({ path, rule: rule.replace(/^Annotation::/, ''), reason }))),
      );
      t.same(
        acknowledged.map((a) => `${a.path} ${a.rule.replace(/:ec2:us-east-1:/, ':ec2:<region>:')}`).sort(),
        [
          '/CachenatHa/Pair/Nat1/Group AwsSolutions-AS3',
          '/CachenatHa/Pair/Nat2/Group AwsSolutions-AS3',
          '/CachenatHa/Pair/Role AwsSolutions-IAM5[Resource::*]',
          '/CachenatHa/Pair/Role AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<region>:<AWS::AccountId>:instance/*]',
          '/CachenatHa/Pair/Role AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<region>:<AWS::AccountId>:network-interface/*]',
        ],
        'the acknowledged findings: these and no others',
      );
      for (const a of acknowledged) t.ok(a.reason.length >= 60, `${a.rule}: a reason, not a shrug: "${a.reason}"`);
      const resources: Record<string, number> = {};
      for (const r of Object.values(template.Resources)) resources[r.Type] = (resources[r.Type] ?? 0) + 1;
      t.comment(`resources: ${Object.entries(resources).map(([k, v]) => `${v} ${k}`).join(', ')}`);
    });

    await t.test("the example app's cdk-nag fails on what it cannot vouch for (SSH from everywhere)", async (t) => {
      const { code, output } = await timed(t, 'the example app with sshCidrs=0.0.0.0/0', () => runApp('cachenat-pair.js', { sample: 'true', sshCidrs: '0.0.0.0/0' }, join(out, 'nag')));
      t.not(code, 0, 'the synth fails');
      t.match(output, /AwsSolutions-EC23/, 'cdk-nag names the finding');
    });

    await t.test('the minimal app: the required props only, a pair and a single instance', async (t) => {
      const minimal = join(out, 'minimal');
      const { code, output } = await timed(t, 'the minimal app', () => runApp('minimal.js', {}, minimal));
      t.equal(code, 0, 'synthesizes, cdk-nag clean', { output });
      if (code !== 0) return;
      const pair = JSON.parse(readFileSync(join(minimal, 'MinimalPair.template.json'), 'utf8')) as Template;
      const single = JSON.parse(readFileSync(join(minimal, 'MinimalInstance.template.json'), 'utf8')) as Template;
      groupsOf(t, pair, 2);
      const [group] = groupsOf(t, single, 1);
      t.same(group?.group.Properties?.VPCZoneIdentifier, ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'], 'a single instance\'s group may use every public subnet');
      for (const [name, template] of [['pair', pair], ['single', single]] as const) {
        t.equal(ofType(template, 'AWS::DynamoDB::Table').length, 1, `${name}: its own table`);
        t.equal(ofType(template, 'AWS::EC2::EIP').length, 1, `${name}: its own Elastic IP`);
        t.equal(ofType(template, 'AWS::EC2::VPCEndpoint').length, 1, `${name}: the DynamoDB endpoint, on by default`);
        const [tableId] = ofType(template, 'AWS::DynamoDB::Table')[0]!;
        const [eipId] = ofType(template, 'AWS::EC2::EIP')[0]!;
        checkIam(t, template, { 'Fn::GetAtt': [tableId, 'Arn'] }, { 'Fn::GetAtt': [eipId, 'AllocationId'] });
      }
    });

    await t.test('prop sets: defaults, options, missing and malformed props (deploy/test/synth-cases.ts)', async (t) => {
      const { code, stdout, output } = await timed(t, 'the synth cases', () => runInDeploy(['dist/deploy/test/synth-cases.js', join(out, 'cases')]));
      t.equal(code, 0, 'runs', { output: output.slice(-4000) });
      if (code !== 0) return;
      const cases = new Map((JSON.parse(stdout) as { cases: CaseResult[] }).cases.map((c) => [c.name, c]));
      t.comment(`${cases.size} cases`);
      const ok = (name: string): Template => {
        const c = cases.get(name);
        t.ok(c?.template, `${name}: synthesizes${c?.error ? ` (stopped: ${c.error.message})` : ''}`);
        t.same(c?.findings, [], `${name}: cdk-nag and CloudFormation-Validate find nothing unacknowledged`);
        return c?.template ?? { Resources: {} };
      };

      // Every required prop, on both constructs: the synth stops naming it.
      for (const prop of ['vpc', 'machineImage', 'clientCidrs', 'cacheSecurityGroups']) {
        for (const [kind, construct] of [['pair', 'CachenatPair Case/Pair'], ['instance', 'CachenatInstance Case/Nat']]) {
          const c = cases.get(`${kind} without ${prop}`);
          t.match(c?.error, { name: 'MissingPropError', prop, message: `${construct}: the required prop "${prop}" is missing` }, `${kind} without ${prop}`);
        }
      }
      t.match(cases.get('pair without any props')?.error, { prop: 'vpc' }, 'no props at all: the first, vpc');
      t.match(cases.get('pair, empty clientCidrs')?.error, { name: 'MissingPropError', prop: 'clientCidrs' }, 'an empty list is missing too');
      // Values cachenat would refuse at boot stop the synth, with the daemon's own words.
      for (const [name, prop, words] of [
        ['pair, a malformed client CIDR', 'clientCidrs', /prefix length/],
        ['pair, a malformed haGroup', 'haGroup', /group name of 1-64 letters/],
        ['pair, a lease too short', 'lease', /lease from 3s to 1h/],
        ['pair, overlapping port ranges', 'portsPerEngine', /overlap/],
        ['pair, a table and a tableName', 'table', /takes no tableName/],
        ['pair, a malformed allocation id', 'elasticIp', /allocation id/],
        ['pair, a short signal timeout', 'signalTimeout', /at least 10 minutes/],
        ['pair in one zone', 'vpcSubnets', /two Availability Zones/],
        ['pair, gateway endpoint without route tables', 'dynamoDbGatewayEndpoint', /no known route table/],
      ] as const) {
        t.match(cases.get(name)?.error, { name: 'InvalidPropError', prop, message: words }, name);
      }

      ok('pair');
      ok('instance');
      const agnostic = ok('pair, env-agnostic');
      t.match(refs(ofType(agnostic, 'AWS::IAM::Policy')), /AWS::Region/, 'env-agnostic: ARNs from the pseudo parameters');

      const withEc2 = ok('pair, EC2 endpoint');
      const interfaceEndpoints = ofType(withEc2, 'AWS::EC2::VPCEndpoint').filter(([, r]) => r.Properties?.VpcEndpointType === 'Interface');
      t.equal(interfaceEndpoints.length, 1, 'the EC2 interface endpoint');
      t.match(interfaceEndpoints[0]?.[1].Properties, { PrivateDnsEnabled: true, SubnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'] }, 'with private DNS, in both subnets');
      t.match(refs(interfaceEndpoints[0]?.[1].Properties?.ServiceName), /\.ec2"/);
      const endpointIngress = ofType(withEc2, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) => r.Properties?.FromPort === 443);
      t.equal(endpointIngress.length, 1, 'HTTPS into the endpoint from the NAT group only');

      const bare = ok('pair, no endpoints, no public IPs');
      t.equal(ofType(bare, 'AWS::EC2::VPCEndpoint').length, 0, 'no endpoints when turned off');
      for (const [, lt] of ofType(bare, 'AWS::EC2::LaunchTemplate')) {
        t.match((lt.Properties?.LaunchTemplateData as { NetworkInterfaces: unknown }).NetworkInterfaces, [{ AssociatePublicIpAddress: false }], 'no public IPv4, stated');
      }
      t.match(cases.get('pair, no endpoints, no public IPs')?.warnings?.join('\n'), /associatePublicIpAddress is false: .*VPC endpoints/, 'and a warning saying what the standby then lacks');

      const existing = ok('pair, table and Elastic IP made elsewhere');
      t.equal(ofType(existing, 'AWS::DynamoDB::Table').length, 0, 'no table of its own');
      t.equal(ofType(existing, 'AWS::EC2::EIP').length, 0, 'no Elastic IP of its own');
      checkIam(t, existing, { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':dynamodb:us-east-1:123456789012:table/cachenat']] }, 'eipalloc-0123456789abcdef0');

      const named = ok('pair, named table, destroyed with the stack');
      t.match(ofType(named, 'AWS::DynamoDB::Table')[0]?.[1], { Properties: { TableName: 'cachenat-prod' }, DeletionPolicy: 'Delete' }, 'tableName and tableRemovalPolicy as given');

      const every = ok('pair, every option');
      const everyData = ofType(every, 'AWS::EC2::LaunchTemplate').map(([, lt]) => lt.Properties?.LaunchTemplateData as Record<string, unknown>);
      t.match(everyData[0], { InstanceType: 't3.small', KeyName: 'admin', BlockDeviceMappings: [{ Ebs: { VolumeSize: 16 } }] });
      t.match(ofType(every, 'AWS::AutoScaling::AutoScalingGroup')[0]?.[1], {
        CreationPolicy: { ResourceSignal: { Timeout: 'PT20M' } },
        Properties: { NotificationConfigurations: [{ TopicARN: 'arn:aws:sns:us-east-1:123456789012:nat-events' }] },
      });
      const everyIngress = ofType(every, 'AWS::EC2::SecurityGroup')[0]?.[1].Properties?.SecurityGroupIngress as { CidrIp: string; FromPort: number; ToPort: number }[];
      t.same(everyIngress.map((r) => [r.CidrIp, r.FromPort, r.ToPort]), [['198.51.100.27/32', 16379, 16398], ['198.51.100.27/32', 21211, 21230], ['192.0.2.0/24', 22, 22]], 'the port ranges and SSH as given');

      ok('pair, every client');
      t.match(cases.get('pair, SSH from everywhere')?.findings, [{ plugin: 'AwsSolutions', rule: 'AwsSolutions-EC23', severity: 'error' }], 'cdk-nag can fail: SSH from everywhere is not acknowledged');
    });
  }
}
