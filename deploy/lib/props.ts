// The props of CachenatPair and CachenatInstance. Four are required (the VPC,
// the AMI, who may connect, the caches' security groups); everything else has
// a default that is safe to deploy. A required prop left out (from
// JavaScript, or an app that fills props from context) stops the synth with a
// MissingPropError naming it.

import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { aws_dynamodb as dynamodb, aws_ec2 as ec2, aws_sns as sns } from 'aws-cdk-lib';

/** An Elastic IP made elsewhere, kept when the stack goes (clients keep their address across a new stack). */
export interface ExistingElasticIp {
  /** eipalloc-…: ha.elasticIp. */
  readonly allocationId: string;
  /** Its address: forward.publicAddress, what clients dial. */
  readonly publicIp: string;
}

export interface CachenatProps {
  /** Required. The caches' VPC. */
  readonly vpc: ec2.IVpc;
  /** Required. The cachenat AMI (ami/, built with Packer); its architecture must match instanceType. */
  readonly machineImage: ec2.IMachineImage;
  /** Required. Who may connect: the client CIDRs let in on the forwarded ports, also forward.allowedSources. 0.0.0.0/0 allows everyone. */
  readonly clientCidrs: string[];
  /** Required. The ElastiCache clusters' security groups: each gets an ingress rule from the NAT group on cachePorts. */
  readonly cacheSecurityGroups: ec2.ISecurityGroup[];

  /**
   * Where the instances run: public subnets (a route to an internet gateway).
   * A pair takes the first subnet of each of the first two zones; a single
   * instance's group may use all of them.
   * @default { subnetType: ec2.SubnetType.PUBLIC }
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** @default t4g.small (Graviton: build the AMI with `packer build -var arch=arm64 ami/`) */
  readonly instanceType?: ec2.InstanceType;
  /** The ports the caches listen on (opened from the NAT group on the caches' groups). @default [6379, 6380, 11211, 11212] */
  readonly cachePorts?: number[];
  /** ports.redis: the first external port for Redis and Valkey. @default 6379 */
  readonly redisPort?: number;
  /** ports.memcached: the first external port for Memcached. @default 11211 */
  readonly memcachedPort?: number;
  /** How many ports from each first port the NAT group opens to the clients. @default 100 */
  readonly portsPerEngine?: number;
  /** forward.inboundInterface. @default the daemon's `auto`: the interface holding the instance's primary MAC (ens5 on Amazon Linux 2023 on Nitro) */
  readonly inboundInterface?: string;

  /** ha.group: the pair's name; also the tag value AssociateAddress is narrowed to. @default 'cachenat' */
  readonly haGroup?: string;
  /** ha.lease: a leader that has not renewed for this long is replaced. @default 10 seconds */
  readonly lease?: Duration;
  /**
   * A table made elsewhere (e.g. by `cachenat ha init`, or kept from an
   * earlier stack): the instances use it and the stack makes none.
   * @default a table of the stack's own
   */
  readonly table?: dynamodb.ITable;
  /**
   * The name of the stack's own table. A fixed name with a retained table
   * means a new stack of the same name fails until the old table is deleted
   * (or passed in as `table`).
   * @default a name CloudFormation generates
   */
  readonly tableName?: string;
  /** What happens to the stack's own table when it leaves the stack. @default RemovalPolicy.RETAIN (the port map outlives the stack) */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /** @default a new Elastic IP of the stack's own */
  readonly elasticIp?: ExistingElasticIp;

  /**
   * Whether each instance gets a public IPv4 of its own at launch. The
   * standby needs a way to DynamoDB and EC2 that does not depend on the
   * Elastic IP: its own public IP, or the VPC endpoints.
   * @default true
   */
  readonly associatePublicIpAddress?: boolean;
  /**
   * A DynamoDB gateway endpoint on the route tables of the instances' subnets
   * (no charge): the lease and the map never depend on a public address.
   * Turn it off when those route tables already have one.
   * @default true
   */
  readonly dynamoDbGatewayEndpoint?: boolean;
  /**
   * An EC2 interface endpoint with private DNS in the instances' subnets
   * (billed per hour and zone): a new leader can take the Elastic IP while
   * it has no public IP. Private DNS sends the whole VPC's EC2 API calls to
   * it, and it lets in only the NAT group: add other groups through
   * `ec2Endpoint.connections`.
   * @default false
   */
  readonly ec2InterfaceEndpoint?: boolean;

  /** An EC2 key pair for SSH. @default none */
  readonly keyPair?: ec2.IKeyPair;
  /** Administrators' CIDRs let in on port 22. @default none */
  readonly sshCidrs?: string[];
  /**
   * Where each group sends its launches, terminations and their failures: a
   * lost instance and its replacement, as they happen.
   * @default none (they are in each group's activity history)
   */
  readonly notificationTopic?: sns.ITopic;
  /** How long CloudFormation waits for a new instance's cfn-ready signal. @default 15 minutes */
  readonly signalTimeout?: Duration;
  /** The root volume (gp3, encrypted). At least the AMI's 8 GiB. @default 8 */
  readonly rootVolumeGiB?: number;
}

export interface CachenatPairProps extends CachenatProps {}

export interface CachenatInstanceProps extends CachenatProps {}

/** A required prop is missing: the synth stops here, naming it. */
export class MissingPropError extends Error {
  constructor(
    readonly construct: string,
    readonly prop: string,
    what: string,
  ) {
    super(`${construct}: the required prop "${prop}" is missing (${what})`);
    this.name = 'MissingPropError';
  }
}

/** A prop with a value the pair cannot run with. */
export class InvalidPropError extends Error {
  constructor(
    readonly construct: string,
    readonly prop: string,
    problem: string,
  ) {
    super(`${construct}: prop "${prop}": ${problem}`);
    this.name = 'InvalidPropError';
  }
}

/** The required props, in the order they are checked (and reported). */
export const REQUIRED_PROPS = [
  { prop: 'vpc', what: "the caches' VPC, an ec2.IVpc" },
  { prop: 'machineImage', what: 'the cachenat AMI, an ec2.IMachineImage' },
  { prop: 'clientCidrs', what: 'the client CIDRs allowed through, at least one; 0.0.0.0/0 allows everyone' },
  { prop: 'cacheSecurityGroups', what: "the ElastiCache clusters' security groups, at least one" },
] as const satisfies readonly { prop: keyof CachenatProps; what: string }[];
