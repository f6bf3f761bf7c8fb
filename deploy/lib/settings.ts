// Props → the settings the constructs build from: required props present,
// defaults filled in, and every value that is known at synth (not a token)
// checked with the daemon's own grammar (src/core/grammar.ts), so a value
// cachenat would refuse at boot stops the synth instead of a deploy that
// waits for a signal that never comes.

import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import { aws_ec2 as ec2, type aws_sns as sns } from 'aws-cdk-lib';
import { allocationIdProblem, haGroupProblem, interfaceProblem, leaseProblem, portProblem, tableNameProblem } from '../../src/core/grammar.js';
import { parseCidr } from '../../src/core/ipv4.js';
import { InvalidPropError, MissingPropError, REQUIRED_PROPS, type CachenatProps, type ExistingElasticIp } from './props.js';

export const DEFAULTS = {
  instanceType: 't4g.small',
  cachePorts: [6379, 6380, 11211, 11212],
  redisPort: 6379,
  memcachedPort: 11211,
  portsPerEngine: 100,
  haGroup: 'cachenat',
  leaseSeconds: 10,
  signalTimeoutMinutes: 15,
  rootVolumeGiB: 8,
} as const;

/** How long cfn-ready waits for a good `cachenat health` after the start; the signal timeout must leave room for it and the boot. */
export const HEALTH_WAIT_SECONDS = 300;

export interface Settings {
  /** The construct's kind and path, for messages. */
  name: string;
  vpc: ec2.IVpc;
  machineImage: ec2.IMachineImage;
  clientCidrs: string[];
  cacheSecurityGroups: ec2.ISecurityGroup[];
  vpcSubnets: ec2.SubnetSelection;
  instanceType: ec2.InstanceType;
  cachePorts: number[];
  redisPort: number;
  memcachedPort: number;
  portsPerEngine: number;
  /** undefined: the daemon's default. */
  inboundInterface: string | undefined;
  haGroup: string;
  /** As ha.lease takes it, e.g. 10s. */
  lease: string;
  table: CachenatProps['table'];
  tableName: string | undefined;
  tableRemovalPolicy: RemovalPolicy;
  elasticIp: ExistingElasticIp | undefined;
  associatePublicIpAddress: boolean;
  dynamoDbGatewayEndpoint: boolean;
  ec2InterfaceEndpoint: boolean;
  keyPair: ec2.IKeyPair | undefined;
  sshCidrs: string[];
  notificationTopic: sns.ITopic | undefined;
  signalTimeout: Duration;
  rootVolumeGiB: number;
}

/** Props → settings; throws MissingPropError or InvalidPropError. `name`: e.g. "CachenatPair Stack/Pair". */
export function resolveSettings(name: string, props: CachenatProps | undefined): Settings {
  const p = (props ?? {}) as Partial<CachenatProps>;
  for (const { prop, what } of REQUIRED_PROPS) {
    const value = p[prop];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) throw new MissingPropError(name, prop, what);
  }
  const fail = (prop: keyof CachenatProps, problem: string): never => {
    throw new InvalidPropError(name, prop, problem);
  };
  const check = (prop: keyof CachenatProps, value: string, problem: (v: string) => string | undefined): string => {
    const found = Token.isUnresolved(value) ? undefined : problem(value);
    return found === undefined ? value : fail(prop, found);
  };
  const cidrs = (prop: 'clientCidrs' | 'sshCidrs', values: string[]): string[] =>
    values.map((c) => check(prop, c, (v) => {
      const parsed = parseCidr(v);
      return 'error' in parsed ? parsed.error : undefined;
    }));
  const port = (prop: keyof CachenatProps, value: number): number => {
    const problem = portProblem(value);
    return problem === undefined ? value : fail(prop, problem);
  };

  const cachePorts = (p.cachePorts ?? [...DEFAULTS.cachePorts]).map((v) => port('cachePorts', v));
  if (cachePorts.length === 0) fail('cachePorts', 'list at least one port the caches listen on');
  const redisPort = port('redisPort', p.redisPort ?? DEFAULTS.redisPort);
  const memcachedPort = port('memcachedPort', p.memcachedPort ?? DEFAULTS.memcachedPort);
  const portsPerEngine = p.portsPerEngine ?? DEFAULTS.portsPerEngine;
  if (!Number.isInteger(portsPerEngine) || portsPerEngine < 1 || portsPerEngine > 1000) fail('portsPerEngine', `expected a whole number from 1 to 1000, got ${portsPerEngine}`);
  port('redisPort', redisPort + portsPerEngine - 1);
  port('memcachedPort', memcachedPort + portsPerEngine - 1);
  if (redisPort < memcachedPort + portsPerEngine && memcachedPort < redisPort + portsPerEngine) {
    fail('portsPerEngine', `the Redis ports ${redisPort}-${redisPort + portsPerEngine - 1} and the Memcached ports ${memcachedPort}-${memcachedPort + portsPerEngine - 1} overlap`);
  }

  const leaseSeconds = p.lease === undefined ? DEFAULTS.leaseSeconds : p.lease.toSeconds();
  const leaseProblemFound = leaseProblem(leaseSeconds * 1000);
  if (leaseProblemFound !== undefined) fail('lease', leaseProblemFound);

  if (p.table !== undefined && (p.tableName !== undefined || p.tableRemovalPolicy !== undefined)) {
    fail('table', 'a table made elsewhere takes no tableName or tableRemovalPolicy (the stack makes no table)');
  }
  const elasticIp = p.elasticIp;
  if (elasticIp !== undefined) {
    check('elasticIp', elasticIp.allocationId, allocationIdProblem);
    if (!Token.isUnresolved(elasticIp.publicIp) && 'error' in parseCidr(`${elasticIp.publicIp}/32`)) fail('elasticIp', `publicIp: expected an IPv4 address, got ${JSON.stringify(elasticIp.publicIp)}`);
  }
  const associatePublicIpAddress = p.associatePublicIpAddress ?? true;
  const rootVolumeGiB = p.rootVolumeGiB ?? DEFAULTS.rootVolumeGiB;
  if (!Number.isInteger(rootVolumeGiB) || rootVolumeGiB < DEFAULTS.rootVolumeGiB) fail('rootVolumeGiB', `expected whole GiB, at least the AMI's ${DEFAULTS.rootVolumeGiB}, got ${rootVolumeGiB}`);
  const signalTimeout = p.signalTimeout ?? Duration.minutes(DEFAULTS.signalTimeoutMinutes);
  if (signalTimeout.toSeconds() < HEALTH_WAIT_SECONDS + 300) {
    fail('signalTimeout', `at least ${(HEALTH_WAIT_SECONDS + 300) / 60} minutes: the boot, the first pass and cfn-ready's ${HEALTH_WAIT_SECONDS / 60}-minute wait for health`);
  }

  return {
    name,
    vpc: p.vpc!,
    machineImage: p.machineImage!,
    clientCidrs: cidrs('clientCidrs', p.clientCidrs!),
    cacheSecurityGroups: p.cacheSecurityGroups!,
    vpcSubnets: p.vpcSubnets ?? { subnetType: ec2.SubnetType.PUBLIC },
    instanceType: p.instanceType ?? new ec2.InstanceType(DEFAULTS.instanceType),
    cachePorts,
    redisPort,
    memcachedPort,
    portsPerEngine,
    inboundInterface: p.inboundInterface === undefined ? undefined : check('inboundInterface', p.inboundInterface, interfaceProblem),
    haGroup: check('haGroup', p.haGroup ?? DEFAULTS.haGroup, haGroupProblem),
    lease: `${leaseSeconds}s`,
    table: p.table,
    tableName: p.tableName === undefined ? undefined : check('tableName', p.tableName, tableNameProblem),
    tableRemovalPolicy: p.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    elasticIp,
    associatePublicIpAddress,
    dynamoDbGatewayEndpoint: p.dynamoDbGatewayEndpoint ?? true,
    ec2InterfaceEndpoint: p.ec2InterfaceEndpoint ?? false,
    keyPair: p.keyPair,
    sshCidrs: cidrs('sshCidrs', p.sshCidrs ?? []),
    notificationTopic: p.notificationTopic,
    signalTimeout,
    rootVolumeGiB,
  };
}
