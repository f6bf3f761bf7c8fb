// The example app: one stack with a CachenatPair, every input from CDK
// context (`-c key=value`, or "context" in cdk.json), checked by cdk-nag's
// AwsSolutions pack. Nothing is looked up in AWS, so `cdk synth` runs offline.
//
//   npx cdk synth -c vpcId=vpc-… -c availabilityZones=eu-west-1a,eu-west-1b \
//     -c subnetIds=subnet-…,subnet-… -c routeTableIds=rtb-…,rtb-… \
//     -c amiId=ami-… -c clientCidrs=203.0.113.0/24 -c cacheSecurityGroupIds=sg-…
//   npm run synth:example        # sample values (documentation ids), into cdk.out/
//
// A required input left out stops the synth, naming the prop and its context
// keys. deploy/README.md lists every key.

import { App, CfnOutput, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { aws_dynamodb as dynamodb, aws_ec2 as ec2 } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CachenatPair, InvalidPropError, MissingPropError, type CachenatPairProps } from '../lib/index.js';
import { amiById, SAMPLE } from './sample.js';

/** `-c sample=true` (npm run synth:example): every required key not given takes its sample value. */
const SAMPLE_CONTEXT: Record<string, string> = Object.fromEntries(Object.entries(SAMPLE).map(([key, value]) => [key, ([] as string[]).concat(value).join(',')]));

/** The context keys behind each required prop, for the message when one is missing. */
const CONTEXT_OF: Record<string, string> = {
  vpc: '-c vpcId=vpc-… -c availabilityZones=<zone a>,<zone b> -c subnetIds=subnet-…,subnet-… -c routeTableIds=rtb-…,rtb-…',
  machineImage: '-c amiId=ami-…',
  clientCidrs: '-c clientCidrs=203.0.113.0/24',
  cacheSecurityGroups: '-c cacheSecurityGroupIds=sg-…',
};

const app = new App();
const sample = app.node.tryGetContext('sample') === true || app.node.tryGetContext('sample') === 'true';
const raw = (key: string): unknown => app.node.tryGetContext(key) ?? (sample ? SAMPLE_CONTEXT[key] : undefined);

/** A list from context: a JSON array (cdk.json) or comma-separated text (`-c key=a,b`). */
function list(key: string): string[] | undefined {
  const value = raw(key);
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v) => String(v).trim());
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('[')) return (JSON.parse(text) as unknown[]).map((v) => String(v).trim());
    return text === '' ? [] : text.split(',').map((v) => v.trim());
  }
  throw new Error(`context ${key}: expected a list (JSON array or comma-separated text), got ${JSON.stringify(value)}`);
}
function text(key: string): string | undefined {
  const value = raw(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw new Error(`context ${key}: expected text, got ${JSON.stringify(value)}`);
  return value.trim();
}
function number(key: string): number | undefined {
  const value = raw(key);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`context ${key}: expected a number, got ${JSON.stringify(value)}`);
  return n;
}
function flag(key: string): boolean | undefined {
  const value = raw(key);
  if (value === undefined) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`context ${key}: expected true or false, got ${JSON.stringify(value)}`);
}

const haGroup = text('haGroup') ?? 'cachenat';
const region = text('region');
const stack = new Stack(app, 'CachenatHa', {
  stackName: text('stackName') ?? `cachenat-ha-${haGroup}`,
  // The account and region stay unresolved unless given or known to the CLI:
  // nothing is looked up, the template works in the region of the AMI.
  env: { region: region ?? process.env.CDK_DEFAULT_REGION, account: process.env.CDK_DEFAULT_ACCOUNT },
  description: `cachenat HA pair ${haGroup}: NAT instances for ElastiCache, a DynamoDB lease table, an Elastic IP`,
});

// Imported, not looked up: synth needs no account and no network.
function vpc(): ec2.IVpc | undefined {
  const vpcId = text('vpcId');
  if (vpcId === undefined) return undefined;
  const zones = list('availabilityZones');
  const subnetIds = list('subnetIds');
  if (zones === undefined || subnetIds === undefined) throw new Error('context vpcId needs availabilityZones and subnetIds too (public subnets, one per zone, in the same order)');
  const routeTableIds = list('routeTableIds');
  return ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId, availabilityZones: zones, publicSubnetIds: subnetIds, publicSubnetRouteTableIds: routeTableIds });
}
const amiId = text('amiId');
const machineImage = amiId === undefined ? undefined : amiById(amiId);
const existingTable = text('existingTableName');
const removal = text('tableRemovalPolicy');
const allocationId = text('elasticIpAllocationId');
const elasticIpAddress = text('elasticIpAddress');
const leaseSeconds = number('leaseSeconds');
const keyName = text('keyName');

const props: Partial<CachenatPairProps> = {
  vpc: vpc(),
  machineImage,
  clientCidrs: list('clientCidrs'),
  cacheSecurityGroups: list('cacheSecurityGroupIds')?.map((id, i) => ec2.SecurityGroup.fromSecurityGroupId(stack, `CacheSecurityGroup${i + 1}`, id, { allowAllOutbound: false, mutable: true })),
  instanceType: text('instanceType') === undefined ? undefined : new ec2.InstanceType(text('instanceType')!),
  cachePorts: list('cachePorts')?.map(Number),
  redisPort: number('redisPort'),
  memcachedPort: number('memcachedPort'),
  portsPerEngine: number('portsPerEngine'),
  inboundInterface: text('inboundInterface'),
  haGroup,
  lease: leaseSeconds === undefined ? undefined : Duration.seconds(leaseSeconds),
  table: existingTable === undefined ? undefined : dynamodb.Table.fromTableName(stack, 'ExistingTable', existingTable),
  tableName: text('tableName'),
  tableRemovalPolicy: removal === undefined ? undefined : ({ retain: RemovalPolicy.RETAIN, destroy: RemovalPolicy.DESTROY, snapshot: RemovalPolicy.SNAPSHOT } as Record<string, RemovalPolicy>)[removal],
  elasticIp: allocationId === undefined && elasticIpAddress === undefined ? undefined : { allocationId: allocationId ?? '', publicIp: elasticIpAddress ?? '' },
  associatePublicIpAddress: flag('publicIp'),
  dynamoDbGatewayEndpoint: flag('dynamoDbEndpoint'),
  ec2InterfaceEndpoint: flag('ec2Endpoint'),
  keyPair: keyName === undefined ? undefined : ec2.KeyPair.fromKeyPairName(stack, 'KeyPair', keyName),
  sshCidrs: list('sshCidrs'),
};
if (removal !== undefined && props.tableRemovalPolicy === undefined) throw new Error(`context tableRemovalPolicy: expected retain, destroy or snapshot, got ${JSON.stringify(removal)}`);

let pair: CachenatPair;
try {
  // The construct checks the props: a missing required one stops the synth here.
  pair = new CachenatPair(stack, 'Pair', props as CachenatPairProps);
} catch (err) {
  // A prop problem is the user's to fix: its message, without a stack trace.
  if (err instanceof MissingPropError) {
    console.error(`${err.message}; in this app: ${CONTEXT_OF[err.prop] ?? `-c ${err.prop}=…`} (npm run synth:example fills in sample values)`);
    process.exit(1);
  }
  if (err instanceof InvalidPropError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

new CfnOutput(stack, 'ElasticIpAddress', { value: pair.elasticIpAddress, description: 'What clients dial (the leader holds it)' });
new CfnOutput(stack, 'ElasticIpAllocationId', { value: pair.elasticIpAllocationId, description: 'ha.elasticIp' });
new CfnOutput(stack, 'TableName', { value: pair.table.tableName, description: 'ha.table' });
pair.instances.forEach((instance, i) =>
  new CfnOutput(stack, `AutoScalingGroup${i + 1}`, { value: instance.autoScalingGroup.autoScalingGroupName, description: `the group of instance ${i + 1}` }),
);

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
