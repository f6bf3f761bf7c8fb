// The inputs of the stack, read from CDK context (cdk.json, or `-c key=value`
// on the command line), each with a default so that a bare `cdk synth` works
// offline. The defaults for ids are documentation placeholders: they
// synthesize, but a deploy with them fails. Nothing is looked up in AWS.
//
// Only the shape is checked here (two subnets in two zones, whole ports, a
// sane port count). The values that end up in /etc/cachenat/config.yaml are
// checked by the daemon's own config schema when it starts, and by the root
// test (test/deploy/cdk-synth.test.ts), so no grammar is repeated here.

export interface HaSettings {
  /** The region of the caches and of everything this stack creates. */
  region: string;
  vpcId: string;
  /** Two public subnets (a route to an internet gateway), one per zone. */
  subnetIds: [string, string];
  availabilityZones: [string, string];
  /** The cachenat AMI built by Packer (ami/); its architecture must match instanceType. */
  amiId: string;
  instanceType: string;
  /** The security group of the ElastiCache clusters: gets an ingress rule from the NAT group. */
  cacheSecurityGroupId: string;
  /** The ports the caches listen on (opened from the NAT group on the cache group). */
  cachePorts: number[];
  /** Client CIDRs allowed to the forwarded ports (also forward.allowedSources). */
  clientCidrs: string[];
  /** Administrators' CIDRs for SSH (port 22); none by default. */
  sshCidrs: string[];
  /** An existing EC2 key pair for SSH; none by default. */
  keyName: string | undefined;
  /** ports.redis and ports.memcached: the first external port of each engine. */
  redisPort: number;
  memcachedPort: number;
  /** How many external ports per engine the NAT group opens (first port .. first + count - 1). */
  portsPerEngine: number;
  /** forward.inboundInterface: Amazon Linux 2023 on Nitro names the first interface ens5. */
  inboundInterface: string;
  haGroup: string;
  tableName: string;
  /** ha.lease, as the config takes it (e.g. 10s). */
  lease: string;
}

export const DEFAULTS: HaSettings = {
  region: 'us-east-1',
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'],
  availabilityZones: ['us-east-1a', 'us-east-1b'],
  amiId: 'ami-0123456789abcdef0',
  // Graviton (arm64): build the AMI with `packer build -var arch=arm64 ami/`.
  instanceType: 't4g.small',
  cacheSecurityGroupId: 'sg-0123456789abcdef0',
  cachePorts: [6379, 6380, 11211, 11212],
  clientCidrs: ['198.51.100.27/32'],
  sshCidrs: [],
  keyName: undefined,
  redisPort: 6379,
  memcachedPort: 11211,
  portsPerEngine: 100,
  inboundInterface: 'ens5',
  haGroup: 'cachenat',
  tableName: 'cachenat',
  lease: '10s',
};

type Lookup = (key: string) => unknown;

/** A list from context: a JSON array (cdk.json) or comma-separated text (`-c key=a,b`). */
function list(key: string, value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v).trim());
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('[')) return list(key, JSON.parse(text) as unknown);
    return text === '' ? [] : text.split(',').map((v) => v.trim());
  }
  throw new Error(`context ${key}: expected a list (JSON array or comma-separated text), got ${JSON.stringify(value)}`);
}

function text(key: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '' || /[\s"'\\]/.test(value.trim())) {
    throw new Error(`context ${key}: expected one word of text, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}

function port(key: string, value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new Error(`context ${key}: expected a TCP port (1-65535), got ${JSON.stringify(value)}`);
  }
  return n;
}

function pair(key: string, values: string[]): [string, string] {
  const [a, b] = values;
  if (values.length !== 2 || a === undefined || b === undefined || a === b) {
    throw new Error(`context ${key}: expected two different values, got ${JSON.stringify(values)}`);
  }
  return [text(key, a), text(key, b)];
}

/** The settings from context, defaults filled in; throws on a malformed value. */
export function haSettings(lookup: Lookup): HaSettings {
  const get = <K extends keyof HaSettings>(key: K): unknown => lookup(key) ?? DEFAULTS[key];
  const s: HaSettings = {
    region: text('region', get('region')),
    vpcId: text('vpcId', get('vpcId')),
    subnetIds: pair('subnetIds', list('subnetIds', get('subnetIds'))),
    availabilityZones: pair('availabilityZones', list('availabilityZones', get('availabilityZones'))),
    amiId: text('amiId', get('amiId')),
    instanceType: text('instanceType', get('instanceType')),
    cacheSecurityGroupId: text('cacheSecurityGroupId', get('cacheSecurityGroupId')),
    cachePorts: list('cachePorts', get('cachePorts')).map((p) => port('cachePorts', p)),
    clientCidrs: list('clientCidrs', get('clientCidrs')).map((c) => text('clientCidrs', c)),
    sshCidrs: list('sshCidrs', get('sshCidrs')).map((c) => text('sshCidrs', c)),
    keyName: lookup('keyName') === undefined ? undefined : text('keyName', lookup('keyName')),
    redisPort: port('redisPort', get('redisPort')),
    memcachedPort: port('memcachedPort', get('memcachedPort')),
    portsPerEngine: Number(get('portsPerEngine')),
    inboundInterface: text('inboundInterface', get('inboundInterface')),
    haGroup: text('haGroup', get('haGroup')),
    tableName: text('tableName', get('tableName')),
    lease: text('lease', get('lease')),
  };
  if (!Number.isInteger(s.portsPerEngine) || s.portsPerEngine < 1 || s.portsPerEngine > 1000) {
    throw new Error(`context portsPerEngine: expected a whole number from 1 to 1000, got ${JSON.stringify(get('portsPerEngine'))}`);
  }
  for (const [engine, first] of [['redisPort', s.redisPort], ['memcachedPort', s.memcachedPort]] as const) {
    port(engine, first + s.portsPerEngine - 1);
  }
  const [redisEnd, memcachedEnd] = [s.redisPort + s.portsPerEngine, s.memcachedPort + s.portsPerEngine];
  if (s.redisPort < memcachedEnd && s.memcachedPort < redisEnd) {
    throw new Error(`context redisPort/memcachedPort/portsPerEngine: the two ranges overlap (${s.redisPort}+${s.portsPerEngine}, ${s.memcachedPort}+${s.portsPerEngine})`);
  }
  if (s.clientCidrs.length === 0) throw new Error('context clientCidrs: list at least one client CIDR (0.0.0.0/0 to allow everyone)');
  if (s.cachePorts.length === 0) throw new Error('context cachePorts: list at least one cache port');
  return s;
}
