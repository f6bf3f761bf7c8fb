// What the instances of one deployment share: the table that holds the lease
// and the port map, the Elastic IP, the role and its instance profile, the
// NAT security group (and its rules on the caches' groups), and the VPC
// endpoints the standby needs. A CachenatPair makes one set for its two
// instances; a CachenatInstance on its own makes one for itself.

import { Annotations, Stack, Tags, Token, Validations } from 'aws-cdk-lib';
import { aws_dynamodb as dynamodb, aws_ec2 as ec2, aws_iam as iam } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { HA_GROUP_TAG, policyActions, statementsFor } from './iam.js';
import { InvalidPropError } from './props.js';
import type { Settings } from './settings.js';

/** What both constructs expose of the shared resources. */
export interface CachenatResources {
  /** The lease and the shared port map (ha.table). */
  readonly table: dynamodb.ITable;
  /** What clients dial (forward.publicAddress). */
  readonly elasticIpAddress: string;
  /** ha.elasticIp. */
  readonly elasticIpAllocationId: string;
  /** The instances' group: clients in on the forwarded ports, out to the AWS APIs and the caches. */
  readonly securityGroup: ec2.SecurityGroup;
  /** The instances' role: exactly the actions of ami/iam-policy.json and ami/iam-policy-ha.json. */
  readonly role: iam.Role;
  readonly dynamoDbEndpoint: ec2.GatewayVpcEndpoint | undefined;
  /** Let other groups in with `ec2Endpoint.connections.allowDefaultPortFrom(...)`. */
  readonly ec2Endpoint: ec2.InterfaceVpcEndpoint | undefined;
}

export interface SharedResources extends CachenatResources {
  readonly instanceProfile: iam.InstanceProfile;
}

/** CachenatPair and CachenatInstance: constructs that expose the shared resources they made (or were handed). */
export abstract class ConstructWithResources extends Construct implements CachenatResources {
  declare readonly table: dynamodb.ITable;
  declare readonly elasticIpAddress: string;
  declare readonly elasticIpAllocationId: string;
  declare readonly securityGroup: ec2.SecurityGroup;
  declare readonly role: iam.Role;
  declare readonly dynamoDbEndpoint: ec2.GatewayVpcEndpoint | undefined;
  declare readonly ec2Endpoint: ec2.InterfaceVpcEndpoint | undefined;

  protected expose(shared: CachenatResources): void {
    const { table, elasticIpAddress, elasticIpAllocationId, securityGroup, role, dynamoDbEndpoint, ec2Endpoint } = shared;
    Object.assign(this, { table, elasticIpAddress, elasticIpAllocationId, securityGroup, role, dynamoDbEndpoint, ec2Endpoint });
  }
}

/** Makes the shared resources as children of `scope`; `subnets`: the instances' subnets (the endpoints go there). */
export function createSharedResources(scope: Construct, s: Settings, subnets: ec2.ISubnet[]): SharedResources {
  const stack = Stack.of(scope);

  // The lease and the shared port map (docs/design/ha.md, "The table and its items").
  const table =
    s.table ??
    new dynamodb.Table(scope, 'Table', {
      tableName: s.tableName,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: s.tableRemovalPolicy,
    });

  // Port mode: the leader associates it with its own primary private IP.
  // CloudFormation never associates it: which instance holds it is the
  // lease's business, and a stack update must not move it back.
  let elasticIpAddress: string;
  let elasticIpAllocationId: string;
  if (s.elasticIp === undefined) {
    const eip = new ec2.CfnEIP(scope, 'ElasticIp', { domain: 'vpc' });
    Tags.of(eip).add('Name', `cachenat-${s.haGroup}`);
    // The pair's tag, as on its instances: a policy that narrows AssociateAddress by tag lets it move this address.
    Tags.of(eip).add(HA_GROUP_TAG, s.haGroup);
    elasticIpAddress = eip.attrPublicIp;
    elasticIpAllocationId = eip.attrAllocationId;
  } else {
    elasticIpAddress = s.elasticIp.publicIp;
    elasticIpAllocationId = s.elasticIp.allocationId;
  }

  const role = new iam.Role(scope, 'Role', {
    assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
    description: `cachenat ${s.haGroup}: ElastiCache discovery, the lease table, the Elastic IP`,
  });
  for (const statement of statementsFor(stack, policyActions(), { table, allocationId: elasticIpAllocationId, haGroup: s.haGroup })) {
    role.addToPrincipalPolicy(statement);
  }
  // cdk-nag names a finding by the resource as it renders it: pseudo parameters in angle brackets.
  const rendered = (value: string, pseudo: string): string => (Token.isUnresolved(value) ? `<AWS::${pseudo}>` : value);
  const ec2Wildcard = (resource: string): string => `arn:<AWS::Partition>:ec2:${rendered(stack.region, 'Region')}:${rendered(stack.account, 'AccountId')}:${resource}/*`;
  Validations.of(role).acknowledge(
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ElastiCache Describe* calls and ec2:DescribeAddresses take no resource ARN: IAM allows them only on "*" (ami/iam-policy*.json)',
    },
    {
      id: `AwsSolutions-IAM5[Resource::${ec2Wildcard('instance')}]`,
      reason: `ec2:AssociateAddress on instances only with the tag cachenat-ha-group=${s.haGroup} (condition aws:ResourceTag): the pair's instances are replaced by their groups, so no instance id is known in advance`,
    },
    {
      id: `AwsSolutions-IAM5[Resource::${ec2Wildcard('network-interface')}]`,
      reason: "ec2:AssociateAddress names the instance's network interface too; interfaces carry no tag of the pair, so they are allowed in this account and region only, next to the one Elastic IP and the tagged instances",
    },
  );
  // Through an immutable view: the Auto Scaling group's signals would add
  // cloudformation:SignalResource, which cfn-signal does not use (without
  // credentials it signs with the instance's identity document and
  // CloudFormation checks the instance belongs to the stack). So the role
  // holds exactly what the policy files grant.
  const instanceProfile = new iam.InstanceProfile(scope, 'InstanceProfile', { role: role.withoutPolicyUpdates() });

  const securityGroup = new ec2.SecurityGroup(scope, 'SecurityGroup', {
    vpc: s.vpc,
    description: `cachenat ${s.haGroup}: clients to the forwarded ports`,
    allowAllOutbound: false,
  });
  for (const cidr of s.clientCidrs) {
    const peer = ec2.Peer.ipv4(cidr);
    securityGroup.addIngressRule(peer, ec2.Port.tcpRange(s.redisPort, s.redisPort + s.portsPerEngine - 1), 'cachenat redis/valkey');
    securityGroup.addIngressRule(peer, ec2.Port.tcpRange(s.memcachedPort, s.memcachedPort + s.portsPerEngine - 1), 'cachenat memcached');
  }
  if (s.clientCidrs.includes('0.0.0.0/0')) {
    const reason = 'clientCidrs lists 0.0.0.0/0: the deployment lets every client in on the forwarded ports, on purpose (the caches still ask for their own auth)';
    Validations.of(securityGroup).acknowledge({ id: 'AwsSolutions-EC23', reason }, { id: 'CloudFormation-Validate::W2508', reason });
  }
  for (const cidr of s.sshCidrs) securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(22), 'SSH from administrators');
  // The AWS APIs (ElastiCache, DynamoDB, EC2, CloudFormation's signal) over
  // HTTPS. DNS, NTP and IMDS go to link-local addresses groups do not filter.
  securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs');
  // The forwarded flows (SNATed to the instance): egress here, ingress on the caches' groups.
  for (const cacheGroup of s.cacheSecurityGroups) {
    for (const cachePort of s.cachePorts) securityGroup.connections.allowTo(cacheGroup, ec2.Port.tcp(cachePort), `cachenat to the caches (${cachePort})`);
  }

  // The standby reaches DynamoDB (the lease, the map) without the Elastic IP,
  // and so does a leader at the moment it takes over (docs/aws-setup.md,
  // "The standby and the AWS APIs").
  let dynamoDbEndpoint: ec2.GatewayVpcEndpoint | undefined;
  if (s.dynamoDbGatewayEndpoint) {
    const noRouteTable = subnets.find((subnet) => subnet.routeTable?.routeTableId === undefined);
    if (noRouteTable !== undefined) {
      throw new InvalidPropError(
        s.name,
        'dynamoDbGatewayEndpoint',
        `subnet ${noRouteTable.subnetId} has no known route table for the gateway endpoint: import the VPC with its route table ids (Vpc.fromVpcAttributes publicSubnetRouteTableIds, or Vpc.fromLookup), or set dynamoDbGatewayEndpoint: false if those route tables already have one`,
      );
    }
    dynamoDbEndpoint = new ec2.GatewayVpcEndpoint(scope, 'DynamoDbEndpoint', {
      vpc: s.vpc,
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [{ subnets }],
    });
  }
  let ec2Endpoint: ec2.InterfaceVpcEndpoint | undefined;
  if (s.ec2InterfaceEndpoint) {
    ec2Endpoint = new ec2.InterfaceVpcEndpoint(scope, 'Ec2Endpoint', {
      vpc: s.vpc,
      service: ec2.InterfaceVpcEndpointAwsService.EC2,
      subnets: { subnets, onePerAz: true },
      privateDnsEnabled: true,
      open: false,
    });
    ec2Endpoint.connections.allowDefaultPortFrom(securityGroup, 'cachenat: AssociateAddress without a public IP');
  }

  if (!s.associatePublicIpAddress) {
    Annotations.of(scope).addWarningV2(
      'cachenat:noPublicIp',
      'associatePublicIpAddress is false: only the leader (through the Elastic IP) reaches the internet. The standby needs VPC endpoints for every AWS API it calls: DynamoDB (dynamoDbGatewayEndpoint), EC2 (ec2InterfaceEndpoint), ElastiCache, and CloudFormation for the boot signal (the last two are not made here)',
    );
  }

  return { table, elasticIpAddress, elasticIpAllocationId, securityGroup, role, instanceProfile, dynamoDbEndpoint, ec2Endpoint };
}
