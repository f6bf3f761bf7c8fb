// An HA pair of cachenat NAT instances (issue #12, docs/design/ha.md): two
// instances in two zones, the DynamoDB table that holds the lease and the
// shared port map, the Elastic IP the leader holds (port mode), the instance
// role with exactly the actions cachenat calls, and the security groups.

import { readFileSync } from 'node:fs';
import { Annotations, CfnOutput, RemovalPolicy, Stack, Tags, Validations, type StackProps } from 'aws-cdk-lib';
import { aws_dynamodb as dynamodb, aws_ec2 as ec2, aws_iam as iam } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { HaSettings } from './settings.ts';

/** The tag that marks the pair's instances; AssociateAddress is allowed only on instances carrying it. */
export const HA_GROUP_TAG = 'cachenat-ha-group';

/** The IAM policy files in ami/: the one list of actions cachenat calls (checked against src/ by test/ami/iam-policy.test.ts). */
const POLICY_FILES = ['../../ami/iam-policy.json', '../../ami/iam-policy-ha.json'];

/** Every action the policy files grant, in file order, without duplicates. */
export function policyActions(): string[] {
  const actions = new Set<string>();
  for (const file of POLICY_FILES) {
    const policy = JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8')) as { Statement?: { Action?: unknown }[] };
    for (const statement of policy.Statement ?? []) {
      for (const action of ([] as unknown[]).concat(statement.Action ?? [])) {
        if (typeof action !== 'string' || !/^[a-z0-9-]+:[A-Za-z0-9]+$/.test(action)) {
          throw new Error(`${file}: ${JSON.stringify(action)} is not one IAM action (no wildcards)`);
        }
        actions.add(action);
      }
    }
  }
  return [...actions];
}

export interface CachenatHaStackProps extends StackProps {
  settings: HaSettings;
}

export class CachenatHaStack extends Stack {
  constructor(scope: Construct, id: string, props: CachenatHaStackProps) {
    super(scope, id, props);
    const s = props.settings;

    // Imported, not looked up: synth needs no account and no network.
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: s.vpcId, availabilityZones: s.availabilityZones });
    const subnets = s.subnetIds.map((subnetId, i) => {
      const subnet = ec2.Subnet.fromSubnetAttributes(this, `Subnet${i + 1}`, { subnetId, availabilityZone: s.availabilityZones[i]! });
      Annotations.of(subnet).acknowledgeWarning('@aws-cdk/aws-ec2:noSubnetRouteTableId', 'no route is added: the subnets are public already');
      return subnet;
    });

    // The lease and the shared port map (docs/design/ha.md, "The table and its items").
    const table = new dynamodb.Table(this, 'Table', {
      tableName: s.tableName,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Port mode: the leader associates it with its own primary private IP.
    // CloudFormation does not associate it: which instance holds it is the
    // lease's business, and a stack update must not move it back.
    const eip = new ec2.CfnEIP(this, 'ElasticIp', { domain: 'vpc' });
    Tags.of(eip).add('Name', `cachenat-${s.haGroup}`);

    const role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: `cachenat HA pair ${s.haGroup}: ElastiCache discovery, the lease table, the Elastic IP`,
    });
    for (const statement of this.statementsFor(policyActions(), { table, eip, haGroup: s.haGroup })) role.addToPrincipalPolicy(statement);

    const natSg = new ec2.SecurityGroup(this, 'NatSecurityGroup', {
      vpc,
      description: `cachenat HA pair ${s.haGroup}: clients to the forwarded ports`,
      allowAllOutbound: false,
    });
    for (const cidr of s.clientCidrs) {
      const peer = ec2.Peer.ipv4(cidr);
      natSg.addIngressRule(peer, ec2.Port.tcpRange(s.redisPort, s.redisPort + s.portsPerEngine - 1), 'cachenat redis/valkey');
      natSg.addIngressRule(peer, ec2.Port.tcpRange(s.memcachedPort, s.memcachedPort + s.portsPerEngine - 1), 'cachenat memcached');
    }
    for (const cidr of s.sshCidrs) natSg.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(22), 'SSH from administrators');
    // The AWS APIs (ElastiCache, DynamoDB, EC2) over HTTPS. DNS, NTP and IMDS
    // go to link-local addresses security groups do not filter.
    natSg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs');
    // The forwarded flows (SNATed to the instance): egress here, and an
    // ingress rule on the caches' own group.
    const cacheSg = ec2.SecurityGroup.fromSecurityGroupId(this, 'CacheSecurityGroup', s.cacheSecurityGroupId, {
      allowAllOutbound: false,
      mutable: true,
    });
    for (const cachePort of s.cachePorts) natSg.connections.allowTo(cacheSg, ec2.Port.tcp(cachePort), `cachenat to the caches (${cachePort})`);

    const instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role });
    const keyPair = s.keyName === undefined ? undefined : ec2.KeyPair.fromKeyPairName(this, 'KeyPair', s.keyName);
    const userData = ec2.UserData.custom(this.cloudConfig(s, eip));
    const instances = subnets.map((subnet, i) => {
      const instance = new ec2.Instance(this, `Nat${i + 1}`, {
        vpc,
        vpcSubnets: { subnets: [subnet] },
        instanceType: new ec2.InstanceType(s.instanceType),
        machineImage: ec2.MachineImage.genericLinux({ [s.region]: s.amiId }),
        securityGroup: natSg,
        instanceProfile,
        userData,
        keyPair,
        // Left on: cachenat rewrites both ends of every flow (DNAT and SNAT),
        // so every packet is to or from the instance itself
        // (docs/aws-setup.md, "Source/destination check: leave it on").
        sourceDestCheck: true,
        // IMDSv2 only, set on the instance itself (requireImdsv2 would add a
        // launch template per instance for the same one setting); one hop:
        // only this host, never a forwarded flow, reaches the metadata service.
        httpEndpoint: true,
        httpTokens: ec2.HttpTokens.REQUIRED,
        httpPutResponseHopLimit: 1,
        instanceName: `cachenat-${s.haGroup}-${i + 1}`,
      });
      Tags.of(instance).add(HA_GROUP_TAG, s.haGroup);
      // An instance sits in one zone and runs one AMI: both are inputs here.
      Validations.of(instance).acknowledge({ id: 'CloudFormation-Validate::W3010', reason: "the zone is the subnet's, an input" });
      Validations.of(instance).acknowledge({ id: 'CloudFormation-Validate::W9010', reason: 'the AMI id is an input (amiId)' });
      return instance;
    });

    new CfnOutput(this, 'ElasticIpAddress', { value: eip.attrPublicIp, description: 'What clients dial (the leader holds it)' });
    new CfnOutput(this, 'ElasticIpAllocationId', { value: eip.attrAllocationId, description: 'ha.elasticIp' });
    new CfnOutput(this, 'TableName', { value: table.tableName, description: 'ha.table' });
    instances.forEach((instance, i) => new CfnOutput(this, `InstanceId${i + 1}`, { value: instance.instanceId }));
  }

  /**
   * One statement per action (or per action and resource type), each scoped
   * as narrowly as IAM allows. An action this stack does not know how to
   * scope stops the synth: a new call in src/ must be placed here on purpose.
   */
  private statementsFor(actions: string[], r: { table: dynamodb.Table; eip: ec2.CfnEIP; haGroup: string }): iam.PolicyStatement[] {
    const statements: iam.PolicyStatement[] = [];
    const arn = (resource: string, resourceName: string): string =>
      this.formatArn({ service: 'ec2', resource, resourceName });
    for (const action of actions) {
      const [service, name] = action.split(':') as [string, string];
      if (service === 'elasticache' && /^Describe/.test(name)) {
        // Describe calls take no resource ARN.
        statements.push(new iam.PolicyStatement({ actions: [action], resources: ['*'] }));
      } else if (service === 'dynamodb') {
        statements.push(new iam.PolicyStatement({ actions: [action], resources: [r.table.tableArn] }));
      } else if (action === 'ec2:DescribeAddresses') {
        statements.push(new iam.PolicyStatement({ actions: [action], resources: ['*'] }));
      } else if (action === 'ec2:AssociateAddress') {
        // Every resource of the request must be allowed: this Elastic IP,
        // an instance of this pair (by tag), a network interface in this
        // account and region (ENIs carry no tag of the pair).
        statements.push(
          new iam.PolicyStatement({ actions: [action], resources: [arn('elastic-ip', r.eip.attrAllocationId)] }),
          new iam.PolicyStatement({
            actions: [action],
            resources: [arn('instance', '*')],
            conditions: { StringEquals: { [`aws:ResourceTag/${HA_GROUP_TAG}`]: r.haGroup } },
          }),
          new iam.PolicyStatement({ actions: [action], resources: [arn('network-interface', '*')] }),
        );
      } else {
        throw new Error(`deploy/lib/cachenat-ha-stack.ts does not know how to scope ${action}; add it to statementsFor`);
      }
    }
    return statements;
  }

  /** cloud-init user data: /etc/cachenat/config.yaml with the ha section, then the service. */
  private cloudConfig(s: HaSettings, eip: ec2.CfnEIP): string {
    // Every scalar is written as a JSON string (valid YAML): no value can
    // break out of its line. Tokens (region, the Elastic IP) resolve at deploy.
    const q = (value: string | number): string => (typeof value === 'number' ? String(value) : JSON.stringify(value));
    const config = [
      'aws:',
      `  region: ${q(this.region)}`,
      'forward:',
      `  inboundInterface: ${q(s.inboundInterface)}`,
      '  allowedSources:',
      ...s.clientCidrs.map((cidr) => `    - ${q(cidr)}`),
      '  snat: masquerade',
      `  publicAddress: ${q(eip.attrPublicIp)}`,
      'ports:',
      `  redis: ${q(s.redisPort)}`,
      `  memcached: ${q(s.memcachedPort)}`,
      'ha:',
      `  table: ${q(s.tableName)}`,
      `  group: ${q(s.haGroup)}`,
      `  lease: ${q(s.lease)}`,
      `  elasticIp: ${q(eip.attrAllocationId)}`,
    ];
    return [
      '#cloud-config',
      '# Written by the cachenat CDK app (deploy/). Every key: config.example.yaml.',
      'write_files:',
      '  - path: /etc/cachenat/config.yaml',
      '    owner: root:root',
      '    permissions: "0644"',
      '    content: |',
      ...config.map((line) => `      ${line}`),
      'runcmd:',
      '  - [systemctl, enable, --now, cachenat]',
      '',
    ].join('\n');
  }
}
