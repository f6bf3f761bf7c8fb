// The CDK app in deploy/ (issue #12, an HA pair) synthesizes offline, and its
// template holds what the pair needs: two instances in two subnets that may
// forward and only speak IMDSv2, the lease table, one Elastic IP, a role with
// exactly the actions of ami/iam-policy.json + ami/iam-policy-ha.json (scoped,
// no wildcard action), and user data whose config cachenat itself accepts.
//
// deploy/ has its own packages (the daemon's install stays free of CDK):
// without deploy/node_modules (npm --prefix deploy ci) this reports a skip.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

import { acquireLabSlot } from '../../lab/serial.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const deploy = join(root, 'deploy');
const cdkCli = join(deploy, 'node_modules/aws-cdk/bin/cdk');
const tsc = join(deploy, 'node_modules/typescript/bin/tsc');

interface Resource {
  Type: string;
  Properties?: Record<string, unknown>;
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

/** Runs a Node script of deploy/node_modules in deploy/, as CI does: offline, no version check, no coverage. */
function runInDeploy(args: string[]): Promise<{ code: number | null; output: string }> {
  // tap follows every child it spawns; deploy/ (and its node_modules, outside
  // the root's) must not count towards the root's coverage.
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  delete env.NODE_V8_COVERAGE;
  // The app command in deploy/cdk.json is `node ...`: this test's Node first.
  env.PATH = [dirname(process.execPath), process.env.PATH ?? ''].join(delimiter);
  env.CDK_DISABLE_VERSION_CHECK = '1';
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: deploy, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, output }));
  });
}

/** The actions of one of the policy files in ami/. */
function policyFileActions(file: string): string[] {
  const policy = JSON.parse(readFileSync(join(root, 'ami', file), 'utf8')) as { Statement: { Action: string | string[] }[] };
  return policy.Statement.flatMap((s) => ([] as string[]).concat(s.Action));
}

const ofType = (template: Template, type: string): [string, Resource][] =>
  Object.entries(template.Resources).filter(([, r]) => r.Type === type);

/** Fn::Base64 of Fn::Join text, each GetAtt replaced by what stands for it at deploy time. */
function userDataText(value: unknown, attributes: Record<string, string>): string {
  const joined = (value as { 'Fn::Base64': unknown })['Fn::Base64'];
  if (typeof joined === 'string') return joined;
  const [separator, parts] = (joined as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const key = JSON.stringify(part);
      const stand = attributes[key];
      if (stand === undefined) throw new Error(`user data holds ${key}, which this test does not know`);
      return stand;
    })
    .join(separator);
}

if (!existsSync(cdkCli)) {
  t.test('the HA pair template', { skip: 'deploy/node_modules is missing: run npm --prefix deploy ci --no-audit --no-fund' }, async () => {});
} else {
  const out = mkdtempSync(join(tmpdir(), 'cachenat-cdk-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // The type-check and the synth keep both cores busy for tens of seconds: they
  // take the machine's lab lock, so a lab test's timing never shares the CPU with them.
  const releaseSlot = await acquireLabSlot();
  t.teardown(releaseSlot);

  t.test('the app type-checks (synth only strips the types)', async (t) => {
    const { code, output } = await runInDeploy([tsc, '-p', 'tsconfig.json']);
    t.equal(code, 0, 'tsc -p deploy/tsconfig.json', { output });
  });

  t.test('the HA pair template', async (t) => {
    const started = performance.now();
    const { code, output } = await runInDeploy([cdkCli, 'synth', '--quiet', '--no-version-reporting', '--no-notices', '--output', out]);
    t.comment(`cdk synth took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    t.equal(code, 0, 'cdk synth exits 0', { output });
    if (code !== 0) return;
    const template = JSON.parse(readFileSync(join(out, 'CachenatHa.template.json'), 'utf8')) as Template;

    // --- the table: the lease and the shared map
    const tables = ofType(template, 'AWS::DynamoDB::Table');
    t.equal(tables.length, 1, 'one DynamoDB table');
    const [tableId, table] = tables[0]!;
    t.strictSame(table.Properties?.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }], 'partition key pk, nothing else');
    t.strictSame(table.Properties?.AttributeDefinitions, [{ AttributeName: 'pk', AttributeType: 'S' }], 'pk is a string');
    t.equal(table.Properties?.BillingMode, 'PAY_PER_REQUEST', 'on-demand');
    t.match(table.Properties?.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true }, 'point-in-time recovery');
    t.equal(table.DeletionPolicy, 'Retain', 'kept when the stack is deleted');
    t.equal(table.UpdateReplacePolicy, 'Retain', 'kept when replaced');

    // --- the Elastic IP (port mode), not associated by CloudFormation: the leader takes it
    const eips = ofType(template, 'AWS::EC2::EIP');
    t.equal(eips.length, 1, 'one Elastic IP');
    const [eipId, eip] = eips[0]!;
    t.equal(eip.Properties?.Domain, 'vpc');
    t.notOk(eip.Properties?.InstanceId, 'CloudFormation does not pin it to an instance');
    t.equal(ofType(template, 'AWS::EC2::EIPAssociation').length, 0, 'no EIPAssociation: which instance holds it is the lease\'s business');

    // --- two instances, two subnets
    const instances = ofType(template, 'AWS::EC2::Instance');
    t.equal(instances.length, 2, 'two instances');
    const subnets = new Set(instances.map(([, i]) => JSON.stringify(i.Properties?.SubnetId)));
    t.equal(subnets.size, 2, `in two different subnets: ${[...subnets].join(', ')}`);
    const zones = new Set(instances.map(([, i]) => JSON.stringify(i.Properties?.AvailabilityZone)));
    t.equal(zones.size, 2, 'in two zones');
    for (const [id, instance] of instances) {
      t.equal(instance.Properties?.SourceDestCheck, true, `${id}: source/destination check left on (DNAT and SNAT: every packet is the instance's own)`);
      t.match(instance.Properties?.MetadataOptions, { HttpTokens: 'required' }, `${id}: IMDSv2 only`);
      t.ok(instance.Properties?.IamInstanceProfile, `${id}: has the instance profile`);
    }

    // --- IAM: exactly the actions of the policy files, scoped, no wildcard action
    const roles = ofType(template, 'AWS::IAM::Role');
    t.equal(roles.length, 1, 'one role');
    t.notOk(roles[0]![1].Properties?.ManagedPolicyArns, 'no managed policies (their actions are not ours to check)');
    const statements: Statement[] = [
      ...ofType(template, 'AWS::IAM::Policy').flatMap(([, p]) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement),
      ...roles.flatMap(([, r]) => ((r.Properties?.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).flatMap((p) => p.PolicyDocument.Statement)),
    ];
    const granted = new Set(statements.flatMap((s) => ([] as string[]).concat(s.Action)));
    const expected = new Set([...policyFileActions('iam-policy.json'), ...policyFileActions('iam-policy-ha.json')]);
    t.ok(expected.has('dynamodb:PutItem') && expected.has('elasticache:DescribeCacheClusters'), 'read the actions from ami/');
    t.strictSame([...granted].sort(), [...expected].sort(), 'the role grants exactly ami/iam-policy.json + ami/iam-policy-ha.json');
    for (const statement of statements) {
      const actions = ([] as string[]).concat(statement.Action);
      t.equal(statement.Effect, 'Allow');
      for (const action of actions) t.notMatch(action, /\*/, `${action}: no wildcard in an action`);
      if (actions.some((a) => a.startsWith('dynamodb:'))) {
        t.strictSame(statement.Resource, { 'Fn::GetAtt': [tableId, 'Arn'] }, `${actions.join(', ')}: on the stack's table only`);
      }
      if (statement.Resource === '*') {
        for (const action of actions) t.match(action, /^[a-z0-9-]+:Describe[A-Za-z]+$/, `${action} on every resource only because it is a describe call`);
      }
    }

    if (expected.has('ec2:AssociateAddress')) {
      const eipArn = statements.filter((s) => ([] as string[]).concat(s.Action).includes('ec2:AssociateAddress')).map((s) => JSON.stringify(s.Resource));
      t.ok(eipArn.some((r) => r.includes(`:elastic-ip/`) && r.includes(JSON.stringify({ 'Fn::GetAtt': [eipId, 'AllocationId'] }))), 'AssociateAddress: on this Elastic IP, not every address');
    }

    // --- security groups
    const groups = ofType(template, 'AWS::EC2::SecurityGroup');
    t.equal(groups.length, 1, 'one group of its own, for the NAT instances');
    const [natSgId, natSg] = groups[0]!;
    const ingress = natSg.Properties?.SecurityGroupIngress as { CidrIp?: string; FromPort: number; ToPort: number }[];
    const egress = natSg.Properties?.SecurityGroupEgress as { CidrIp?: string; FromPort: number; ToPort: number }[];
    t.notOk(egress.some((e) => e.FromPort === undefined || (e as { IpProtocol?: string }).IpProtocol === '-1'), 'no "all traffic" egress');
    const natRef = { 'Fn::GetAtt': [natSgId, 'GroupId'] };
    const cacheIngress = ofType(template, 'AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties!);
    const cacheEgress = ofType(template, 'AWS::EC2::SecurityGroupEgress').map(([, r]) => r.Properties!);
    t.ok(cacheIngress.length > 0 && cacheIngress.every((r) => JSON.stringify(r.SourceSecurityGroupId) === JSON.stringify(natRef) && typeof r.GroupId === 'string'), 'the caches\' group lets the NAT group in');
    t.strictSame(
      cacheEgress.map((r) => r.FromPort).sort(),
      cacheIngress.map((r) => r.FromPort).sort(),
      'the NAT group reaches the caches on the same ports',
    );

    // --- user data: cloud-config whose config.yaml cachenat accepts, with the ha section
    const standIns: Record<string, string> = {
      [JSON.stringify({ 'Fn::GetAtt': [eipId, 'AllocationId'] })]: 'eipalloc-0123abcd',
      [JSON.stringify({ 'Fn::GetAtt': [eipId, 'PublicIp'] })]: '203.0.113.73',
    };
    const tableName = table.Properties?.TableName;
    for (const [id, instance] of instances) {
      const text = userDataText(instance.Properties?.UserData, standIns);
      t.equal(text.split('\n', 1)[0], '#cloud-config', `${id}: cloud-config`);
      const cloud = parse(text) as { write_files?: { path: string; content?: string }[]; runcmd?: string[][] };
      const file = (cloud.write_files ?? []).find((f) => f.path === '/etc/cachenat/config.yaml');
      t.ok(file, `${id}: writes /etc/cachenat/config.yaml`);
      const { config, warnings } = parseConfig(file?.content ?? '', `${id} user data`);
      t.strictSame(warnings, [], `${id}: no risky choices`);
      t.match(config.ha, { table: tableName, group: 'cachenat', lease: 10_000, elasticIp: 'eipalloc-0123abcd' }, `${id}: the ha section names the table and the Elastic IP's allocation id`);
      t.equal(config.forward.publicAddress, '203.0.113.73', `${id}: clients dial the Elastic IP`);
      t.strictSame(config.forward.allowedSources, ingress.map((r) => r.CidrIp).filter((c, i, all) => all.indexOf(c) === i), `${id}: the same client CIDRs as the security group`);
      for (const first of [config.ports.redis, config.ports.memcached]) {
        t.ok(ingress.some((r) => r.FromPort === first && r.ToPort > first), `${id}: the group opens a range from port ${first}`);
      }
      t.ok((cloud.runcmd ?? []).some((c) => c.join(' ') === 'systemctl enable --now cachenat'), `${id}: starts cachenat`);
    }

    // --- outputs
    const outputs = template.Outputs ?? {};
    t.strictSame(outputs.ElasticIpAddress?.Value, { 'Fn::GetAtt': [eipId, 'PublicIp'] }, 'outputs the Elastic IP');
    t.strictSame(outputs.ElasticIpAllocationId?.Value, { 'Fn::GetAtt': [eipId, 'AllocationId'] }, 'outputs its allocation id');
    t.strictSame(outputs.TableName?.Value, { Ref: tableId }, 'outputs the table name');
    t.strictSame(
      Object.values(outputs).filter((o) => instances.some(([id]) => JSON.stringify(o.Value) === JSON.stringify({ Ref: id }))).length,
      2,
      'outputs both instance ids',
    );
    const counts: Record<string, number> = {};
    for (const r of Object.values(template.Resources)) counts[r.Type] = (counts[r.Type] ?? 0) + 1;
    t.comment(`resources: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  });
}
