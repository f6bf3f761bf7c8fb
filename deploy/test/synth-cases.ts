// Synthesizes the constructs with many sets of props in one process (loading
// aws-cdk-lib once) and prints one JSON document: for each case its template
// and cdk-nag's verdict, or the error the props stopped at. Run by
// test/deploy/cdk-synth.test.ts after `tsc -p deploy/tsconfig.json`:
//
//   node deploy/dist/deploy/test/synth-cases.js OUTDIR

import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { aws_dynamodb as dynamodb, aws_ec2 as ec2, aws_sns as sns } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { sampleRequiredProps } from '../bin/sample.js';
import { CachenatInstance, CachenatPair, type CachenatProps } from '../lib/index.js';

const outRoot = process.argv[2];
if (outRoot === undefined) throw new Error('usage: synth-cases.js OUTDIR');
mkdirSync(outRoot, { recursive: true });

/** `required`: the four required props (made once per case), the VPC's attributes overridden as given. */
type Build = (stack: Stack, required: (vpcAttributes?: Partial<ec2.VpcAttributes>) => CachenatProps) => void;
interface Case {
  name: string;
  build: Build;
  /** Whether the stack's env has a region (the AMI map needs one); the default: yes. */
  envAgnostic?: boolean;
}

export interface CaseResult {
  name: string;
  /** The props stopped the synth: the error's class, the prop, its message. */
  error?: { name: string; prop?: string; message: string };
  template?: unknown;
  /** What the validation plugins (cdk-nag's AwsSolutions, CDK's CloudFormation-Validate) found and was not acknowledged: plugin, rule, severity. */
  findings?: { plugin: string; rule: string; severity: string }[];
  /** The warnings of the synth (Annotations), as their messages. */
  warnings?: string[];
}

const without = (props: CachenatProps, prop: keyof CachenatProps): CachenatProps => {
  const copy: Partial<CachenatProps> = { ...props };
  delete copy[prop];
  return copy as CachenatProps;
};

const pair = (extra: (stack: Stack) => Partial<CachenatProps> = () => ({})): Build => (stack, required) => {
  new CachenatPair(stack, 'Pair', { ...required(), ...extra(stack) });
};
const single = (extra: (stack: Stack) => Partial<CachenatProps> = () => ({})): Build => (stack, required) => {
  new CachenatInstance(stack, 'Nat', { ...required(), ...extra(stack) });
};

const REQUIRED = ['vpc', 'machineImage', 'clientCidrs', 'cacheSecurityGroups'] as const;

const CASES: Case[] = [
  { name: 'pair', build: pair() },
  { name: 'instance', build: single() },
  { name: 'pair, env-agnostic', build: pair(), envAgnostic: true },
  { name: 'pair, EC2 endpoint', build: pair(() => ({ ec2InterfaceEndpoint: true })) },
  { name: 'pair, no endpoints, no public IPs', build: pair(() => ({ dynamoDbGatewayEndpoint: false, associatePublicIpAddress: false })) },
  {
    name: 'pair, table and Elastic IP made elsewhere',
    build: pair((stack) => ({
      table: dynamodb.Table.fromTableName(stack, 'Existing', 'cachenat'),
      elasticIp: { allocationId: 'eipalloc-0123456789abcdef0', publicIp: '203.0.113.73' },
    })),
  },
  { name: 'pair, named table, destroyed with the stack', build: pair(() => ({ tableName: 'cachenat-prod', tableRemovalPolicy: RemovalPolicy.DESTROY })) },
  {
    name: 'pair, every option',
    build: pair((stack) => ({
      instanceType: new ec2.InstanceType('t3.small'),
      cachePorts: [6379],
      redisPort: 16379,
      memcachedPort: 21211,
      portsPerEngine: 20,
      inboundInterface: 'eth0',
      haGroup: 'prod-nat',
      lease: Duration.seconds(20),
      keyPair: ec2.KeyPair.fromKeyPairName(stack, 'Key', 'admin'),
      sshCidrs: ['192.0.2.0/24'],
      signalTimeout: Duration.minutes(20),
      rootVolumeGiB: 16,
      notificationTopic: sns.Topic.fromTopicArn(stack, 'Topic', 'arn:aws:sns:us-east-1:123456789012:nat-events'),
    })),
  },
  { name: 'pair, every client', build: pair(() => ({ clientCidrs: ['0.0.0.0/0'] })) },
  // cdk-nag must be able to fail here: SSH from everywhere is nobody's choice the construct can vouch for.
  { name: 'pair, SSH from everywhere', build: pair(() => ({ sshCidrs: ['0.0.0.0/0'] })) },

  ...REQUIRED.flatMap((prop): Case[] => [
    { name: `pair without ${prop}`, build: (stack, required) => new CachenatPair(stack, 'Pair', without(required(), prop)) },
    { name: `instance without ${prop}`, build: (stack, required) => new CachenatInstance(stack, 'Nat', without(required(), prop)) },
  ]),
  { name: 'pair without any props', build: (stack) => new CachenatPair(stack, 'Pair', undefined as unknown as CachenatProps) },
  { name: 'pair, empty clientCidrs', build: pair(() => ({ clientCidrs: [] })) },
  { name: 'pair, a malformed client CIDR', build: pair(() => ({ clientCidrs: ['198.51.100.0/33'] })) },
  { name: 'pair, a malformed haGroup', build: pair(() => ({ haGroup: 'prod nat' })) },
  { name: 'pair, a lease too short', build: pair(() => ({ lease: Duration.seconds(1) })) },
  { name: 'pair, overlapping port ranges', build: pair(() => ({ redisPort: 11200, portsPerEngine: 100 })) },
  { name: 'pair, a table and a tableName', build: pair((stack) => ({ table: dynamodb.Table.fromTableName(stack, 'Existing', 'cachenat'), tableName: 'other' })) },
  { name: 'pair, a malformed allocation id', build: pair(() => ({ elasticIp: { allocationId: 'eip-1', publicIp: '203.0.113.73' } })) },
  { name: 'pair, a short signal timeout', build: pair(() => ({ signalTimeout: Duration.minutes(5) })) },
  {
    name: 'pair in one zone',
    build: (stack, required) => new CachenatPair(stack, 'Pair', required({ availabilityZones: ['us-east-1a'], publicSubnetIds: ['subnet-0aaaaaaaaaaaaaaa1'], publicSubnetRouteTableIds: ['rtb-0aaaaaaaaaaaaaaa1'] })),
  },
  {
    name: 'pair, gateway endpoint without route tables',
    build: (stack, required) => new CachenatPair(stack, 'Pair', required({ publicSubnetRouteTableIds: undefined })),
  },
];

function run(c: Case, index: number): CaseResult {
  const app = new App({ outdir: mkdtempSync(join(outRoot!, `case-${index}-`)) });
  const stack = new Stack(app, 'Case', c.envAgnostic ? {} : { env: { region: 'us-east-1', account: '123456789012' } });
  try {
    c.build(stack, (vpcAttributes) => sampleRequiredProps(stack, vpcAttributes));
  } catch (err) {
    const e = err as Error & { prop?: string };
    return { name: c.name, error: { name: e.name, ...(e.prop === undefined ? {} : { prop: e.prop }), message: e.message } };
  }
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  // Findings go to the console as a report: keep this process's output one JSON document.
  const log = console.error;
  console.error = () => {};
  try {
    app.synth();
  } catch (err) {
    // The template is written before the validation that failed; the report says what failed.
    if (!(err as Error).message.includes('Validation failed')) throw err;
  } finally {
    console.error = log;
  }
  const read = (file: string): unknown => JSON.parse(readFileSync(join(app.outdir, file), 'utf8'));
  const report = existsSync(join(app.outdir, 'validation-report.json'))
    ? (read('validation-report.json') as { pluginReports: { pluginName: string; violations: { ruleName: string; severity: string }[] }[] })
    : { pluginReports: [] };
  const metadata = read('Case.metadata.json') as Record<string, { type: string; data: unknown }[]>;
  const warnings = Object.values(metadata)
    .flat()
    .filter((m) => m.type === 'aws:cdk:warning')
    .map((m) => String(m.data));
  return {
    name: c.name,
    template: read('Case.template.json'),
    findings: report.pluginReports.flatMap((p) => p.violations.map((v) => ({ plugin: p.pluginName, rule: v.ruleName, severity: v.severity }))),
    warnings,
  };
}

process.stdout.write(JSON.stringify({ cases: CASES.map(run) }) + '\n');
