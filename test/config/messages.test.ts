// What a person reads when a config is refused: each message names the key,
// what was expected and what was given. One row per message, compared whole,
// so a change of wording is a deliberate change of this table.

import t from 'tap';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const base = 'forward: {allowedSources: [198.51.100.27/32]}\n';

/** [what, config text, the issues as "path: message"] */
const CASES: [string, string, string[]][] = [
  ['a port in quotes is a wrong type, not a missing key', `${base}ports: {redis: "6379"}`, ['ports.redis: expected a TCP port number, got the text "6379"; write the number without quotes']],
  ['a word where a list belongs', `${base}discovery: {include: x}`, ['discovery.include: expected a list, got the text "x"']],
  ['a missing required key', 'aws: {region: us-east-1}\nforward: {snat: masquerade}', ['forward.allowedSources: required: expected a list of the client CIDRs allowed through, e.g. [198.51.100.27/32]; write 0.0.0.0/0 to allow everyone']],
  ['a misspelt key', `${base}discovery: {intreval: 5s}`, ['discovery.intreval: unknown key; did you mean discovery.interval?']],
  ['a key at the wrong level', `${base}region: us-east-1`, ['region: unknown key here; did you mean aws.region?']],
  ['an unknown key with nothing near', `${base}forward2: {}`, ['forward2: unknown key; did you mean forward?']],
  ['a wrong enum value', `${base}ipForward: yes`, ['ipForward: expected "enable" or "check", got the text "yes"']],
  ['a region in capitals', `${base}aws: {region: US-EAST-1}`, ['aws.region: expected an AWS region like us-east-1 (lower case), got "US-EAST-1"']],
  [
    'a duration beyond Node timers',
    `${base}dns: {interval: 700h}`,
    ['dns.interval: expected at most 596h for dns.interval, got "700h": Node\'s timers wait at most 2147483647 ms (about 24.8 days) and fire at once beyond it, so the loop would spin'],
  ],
  [
    'the status file on the port map',
    `${base}state: {dir: /var/lib/cachenat, statusFile: /var/lib/cachenat/ports.json}`,
    ['state.statusFile: expected a file of its own, got /var/lib/cachenat/ports.json, which is also the port map (state.dir): the two would overwrite each other'],
  ],
  [
    'the rules file on the port map',
    `${base}persist: {rulesFile: /var/lib/cachenat/ports.json}`,
    ['persist.rulesFile: expected a file of its own, got /var/lib/cachenat/ports.json, which is also the port map (state.dir): the two would overwrite each other'],
  ],
  ['the status file on state.dir itself', `${base}state: {dir: /srv/cn, statusFile: /srv/cn/}`, ['state.statusFile: expected a file path, got /srv/cn/, which is state.dir itself (a directory)']],
  [
    'snat to the broadcast address',
    'forward: {allowedSources: [198.51.100.27/32], snat: 255.255.255.255}',
    ['forward.snat: expected "masquerade" or a unicast IPv4 address of this host, got 255.255.255.255 (not in 0/8, 127/8, 169.254/16, 224/4 or 240/4: replies could never come back to it)'],
  ],
  ['snat to a word', 'forward: {allowedSources: [198.51.100.27/32], snat: masq}', ['forward.snat: expected "masquerade" or an IPv4 address of this host, got "masq"']],
  [
    'overlapping port ranges',
    `${base}ports: {redis: 7000, memcached: 7050}`,
    [
      'ports.memcached: expected at least 100 ports between the two ranges, got 50 (ports.redis 7000, ports.memcached 7050): the redis range would run into the memcached range after 50 targets and the two would interleave (the defaults are 6379 and 11211)',
    ],
  ],
  [
    'a range starting at ssh',
    `${base}ports: {redis: 22}`,
    [
      'ports.redis: expected a first port of 1024 or above, got 22: ports below 1024 are well-known services (22 is ssh), and in port mode cachenat would take them over on every address of forward.inboundInterface for allowedSources',
    ],
  ],
  [
    'a private address as the Elastic IP',
    'forward: {allowedSources: [198.51.100.27/32], listenAddresses: [{address: 10.0.1.21, public: 172.16.0.9}]}',
    ['forward.listenAddresses[0].public: expected the public Elastic IP clients dial, got 172.16.0.9, a private address (10/8, 172.16/12, 192.168/16 or 100.64/10); the private one belongs in address'],
  ],
  [
    'credentials in the API URL (never echoed)',
    `${base}aws: {endpoint: "https://AKIDEXAMPLE:wJalrXUtnFEMI@elasticache.example/"}`,
    ['aws.endpoint: expected a URL without credentials (they come from the instance role or the environment, never the URL), got https://***@elasticache.example'],
  ],
  ['a YAML syntax error', 'forward:\n  allowedSources: [198.51.100.27/32\n  snat: masquerade\n', ['(the file): YAML syntax error at line 3, column 3: Flow sequence in block collection must be sufficiently indented and end with a ] ("  snat: masquerade")']],
  ['a duplicate key', `${base}log: {level: info}\nlog: {level: debug}\n`, ['(the file): YAML syntax error at line 3, column 1: Map keys must be unique ("log: {level: debug}")']],
  ['a list for the whole file', '- forward\n', ['(the file): expected a mapping, got a list ["forward"]']],
];

t.test(`${CASES.length} refused configs, each message whole`, async (t) => {
  for (const [what, text, expected] of CASES) {
    const err = t.throws(() => parseConfig(text, 'c.yaml'), what) as unknown as ConfigError;
    t.type(err, ConfigError, what);
    t.same(err.issues.map((i) => `${i.path || '(the file)'}: ${i.message}`), expected, what);
  }
  t.equal(CASES.length, 21);
});

t.test('the credentials of a URL never reach the message', async (t) => {
  const err = t.throws(() => parseConfig(`${base}aws: {endpoint: "http://user:hunter2@127.0.0.1:9/"}`, 'c.yaml')) as unknown as ConfigError;
  t.notMatch(err.message, /hunter2|user/);
});

t.test('region and interface default to auto; a config of only allowedSources is valid', async (t) => {
  const { config } = parseConfig(base, 'c.yaml');
  t.equal(config.aws.region, 'auto');
  t.equal(config.forward.inboundInterface, 'auto');
});
