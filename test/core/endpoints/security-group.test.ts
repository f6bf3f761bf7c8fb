import { execFileSync } from 'node:child_process';
import t from 'tap';
import type { Engine } from '../../../src/core/model.js';
import {
  renderSecurityGroupRulesAwsCli,
  renderSecurityGroupRulesTable,
  securityGroupRules,
  type SecurityGroupRule,
} from '../../../src/core/endpoints/security-group.js';

const fwd = (engine: Engine, listenPort: number) => ({ engine, listenPort });
const rule = (fromPort: number, toPort: number, cidr: string, description: string): SecurityGroupRule => ({
  protocol: 'tcp',
  fromPort,
  toPort,
  cidr,
  description,
});

const cases: {
  name: string;
  forwards: { engine: Engine; listenPort: number }[];
  allowedSources: string[];
  want: SecurityGroupRule[];
}[] = [
  {
    name: 'no forwards, no rules',
    forwards: [],
    allowedSources: ['198.51.100.27/32'],
    want: [],
  },
  {
    name: 'one forward, one client',
    forwards: [fwd('redis', 6379)],
    allowedSources: ['198.51.100.27/32'],
    want: [rule(6379, 6379, '198.51.100.27/32', 'cachenat redis/valkey')],
  },
  {
    name: 'contiguous ports merge into one range; redis and valkey share a label',
    forwards: [fwd('redis', 6381), fwd('valkey', 6379), fwd('redis', 6380)],
    allowedSources: ['198.51.100.27/32'],
    want: [rule(6379, 6381, '198.51.100.27/32', 'cachenat redis/valkey')],
  },
  {
    name: "AWS's three-node Memcached example plus a gap in the Redis range",
    forwards: [fwd('memcached', 11213), fwd('memcached', 11211), fwd('memcached', 11212), fwd('redis', 6379), fwd('redis', 6382)],
    allowedSources: ['198.51.100.27/32'],
    want: [
      rule(6379, 6379, '198.51.100.27/32', 'cachenat redis/valkey'),
      rule(6382, 6382, '198.51.100.27/32', 'cachenat redis/valkey'),
      rule(11211, 11213, '198.51.100.27/32', 'cachenat memcached'),
    ],
  },
  {
    name: 'every range from every CIDR, sorted by port then address',
    forwards: [fwd('memcached', 11211), fwd('redis', 6379)],
    allowedSources: ['203.0.113.0/24', '198.51.100.27/32'],
    want: [
      rule(6379, 6379, '198.51.100.27/32', 'cachenat redis/valkey'),
      rule(6379, 6379, '203.0.113.0/24', 'cachenat redis/valkey'),
      rule(11211, 11211, '198.51.100.27/32', 'cachenat memcached'),
      rule(11211, 11211, '203.0.113.0/24', 'cachenat memcached'),
    ],
  },
  {
    name: 'duplicate ports and CIDRs collapse; a bare address means /32',
    forwards: [fwd('redis', 6379), fwd('redis', 6379)],
    allowedSources: ['198.51.100.27', '198.51.100.27/32', ' 198.51.100.27/32 '],
    want: [rule(6379, 6379, '198.51.100.27/32', 'cachenat redis/valkey')],
  },
  {
    name: 'a range spanning both families names both',
    forwards: [fwd('redis', 7000), fwd('memcached', 7001)],
    allowedSources: ['0.0.0.0/0'],
    want: [rule(7000, 7001, '0.0.0.0/0', 'cachenat memcached, redis/valkey')],
  },
  {
    name: 'wider prefixes of the same network sort first',
    forwards: [fwd('redis', 6379)],
    allowedSources: ['10.0.0.0/16', '10.0.0.0/8'],
    want: [rule(6379, 6379, '10.0.0.0/8', 'cachenat redis/valkey'), rule(6379, 6379, '10.0.0.0/16', 'cachenat redis/valkey')],
  },
];

t.test('securityGroupRules', async (t) => {
  for (const c of cases) {
    t.strictSame(securityGroupRules({ forwards: c.forwards, allowedSources: c.allowedSources }), c.want, c.name);
  }
});

t.test('securityGroupRules rejects what cannot become a rule', async (t) => {
  t.throws(() => securityGroupRules({ forwards: [fwd('redis', 6379)], allowedSources: ['198.51.100.27/24'] }), /forward\.allowedSources: .*host bits/);
  t.throws(() => securityGroupRules({ forwards: [fwd('redis', 6379)], allowedSources: ['example.com'] }), /forward\.allowedSources/);
  t.throws(() => securityGroupRules({ forwards: [fwd('redis', 0)], allowedSources: ['0.0.0.0/0'] }), /listen port 0 of a redis forward/);
  t.throws(() => securityGroupRules({ forwards: [fwd('memcached', 65536)], allowedSources: ['0.0.0.0/0'] }), /not a TCP port/);
});

t.test('renderSecurityGroupRulesTable', async (t) => {
  const rules = securityGroupRules({
    forwards: [fwd('redis', 6379), fwd('redis', 6380), fwd('memcached', 11211)],
    allowedSources: ['198.51.100.27/32'],
  });
  t.equal(
    renderSecurityGroupRulesTable(rules),
    [
      'DIRECTION  PROTOCOL  PORTS      SOURCE            DESCRIPTION',
      'inbound    tcp       6379-6380  198.51.100.27/32  cachenat redis/valkey',
      'inbound    tcp       11211      198.51.100.27/32  cachenat memcached',
      '',
    ].join('\n'),
  );
  t.match(renderSecurityGroupRulesTable([]), /^No forwards yet/);
});

t.test('renderSecurityGroupRulesAwsCli', async (t) => {
  const rules = securityGroupRules({
    forwards: [fwd('redis', 6379), fwd('redis', 6380), fwd('memcached', 11211)],
    allowedSources: ['198.51.100.27/32', '203.0.113.0/24'],
  });
  const text = renderSecurityGroupRulesAwsCli(rules);
  const lines = text.trimEnd().split('\n');
  t.equal(lines.length, 2, 'one command over two lines');
  t.equal(lines[0], 'aws ec2 authorize-security-group-ingress --group-id sg-XXXXXXXX \\');

  const json = /^ {2}--ip-permissions '(.*)'$/.exec(lines[1]!)?.[1];
  t.ok(json, 'the permissions are one single-quoted word');
  t.strictSame(JSON.parse(json!), [
    {
      IpProtocol: 'tcp',
      FromPort: 6379,
      ToPort: 6380,
      IpRanges: [
        { CidrIp: '198.51.100.27/32', Description: 'cachenat redis/valkey' },
        { CidrIp: '203.0.113.0/24', Description: 'cachenat redis/valkey' },
      ],
    },
    {
      IpProtocol: 'tcp',
      FromPort: 11211,
      ToPort: 11211,
      IpRanges: [
        { CidrIp: '198.51.100.27/32', Description: 'cachenat memcached' },
        { CidrIp: '203.0.113.0/24', Description: 'cachenat memcached' },
      ],
    },
  ]);

  t.match(renderSecurityGroupRulesAwsCli(rules, 'sg-0123456789abcdef0'), /--group-id sg-0123456789abcdef0 \\/);
  t.match(renderSecurityGroupRulesAwsCli(rules, "<nat group's id>"), /--group-id '<nat group'\\''s id>' \\/, 'an odd placeholder is quoted for the shell');
  t.match(renderSecurityGroupRulesAwsCli([]), /^# No forwards yet/);
});

t.test('the AWS CLI command runs in a real shell and passes the JSON through intact', async (t) => {
  const rules = securityGroupRules({ forwards: [fwd('redis', 6379)], allowedSources: ['198.51.100.27/32'] });
  // Replace `aws` with a function that prints its arguments, one per line.
  const script = `aws() { printf '%s\\n' "$@"; }\n${renderSecurityGroupRulesAwsCli(rules, "it's-a-group")}`;
  const args = execFileSync('sh', ['-c', script], { encoding: 'utf8' }).trimEnd().split('\n');
  t.strictSame(args.slice(0, 5), ['ec2', 'authorize-security-group-ingress', '--group-id', "it's-a-group", '--ip-permissions']);
  t.strictSame(JSON.parse(args[5]!), [
    { IpProtocol: 'tcp', FromPort: 6379, ToPort: 6379, IpRanges: [{ CidrIp: '198.51.100.27/32', Description: 'cachenat redis/valkey' }] },
  ]);
});
