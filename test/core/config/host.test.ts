// The config against the host (src/core/config/host.ts) and the /proc/net
// readers it relies on. The promise about forward.inboundInterface is checked
// on generated hosts: a name (or "+" pattern) is accepted exactly when it
// matches an interface, and a refusal names what was written and every
// interface the host has; auto picks the primary MAC's holder, else the
// default route's, else refuses.

import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../../../src/config/load.js';
import { configForHost, decideInterface, decideRegion, imdsQuestions, portListenerIssues, type HostFacts } from '../../../src/core/config/host.js';
import { inboundInterfaces } from '../../../src/core/config/listen-addresses.js';
import { defaultRouteInterface, interfaceNames, tcpListeners } from '../../../src/core/host/proc-net.js';

const RUNS = Number(process.env.HOST_RUNS ?? 2000);
const SEED = Number(process.env.HOST_SEED ?? Date.now() % 2 ** 31);
const replay = `replay: HOST_SEED=${SEED} npx tap --disable-coverage test/core/config/host.test.ts`;

const file = (forward = '', top = '') => parseConfig(`forward: {allowedSources: [198.51.100.27/32]${forward}}\n${top}`, 'c.yaml').config;
const AL2023: HostFacts = {
  interfaces: [
    { name: 'lo', ipv4: ['127.0.0.1'] },
    { name: 'ens5', mac: '0e:49:61:0f:c3:11', ipv4: ['10.0.1.10'] },
  ],
  defaultRoute: 'ens5',
};

t.test('AL2023 on Nitro: auto finds ens5 from the primary MAC; eth0 is refused, naming eth0 and ens5', async (t) => {
  const auto = decideInterface(file(), { ...AL2023, primaryMac: { value: '0e:49:61:0f:c3:11' } });
  t.same(auto, { value: 'ens5', note: "forward.inboundInterface is auto: ens5 holds the instance's primary MAC 0e:49:61:0f:c3:11 (IMDS)" });
  t.same(decideInterface(file(', inboundInterface: eth0'), AL2023), {
    path: 'forward.inboundInterface',
    message:
      "expected an interface of this host (it has ens5, lo), got eth0, which does not exist here. Set it to auto (the instance's primary interface: ens5 on Nitro instances such as Amazon Linux 2023, eth0 on older ones) or to one of those names",
  });
  t.same(decideInterface(file(', inboundInterface: ens+'), AL2023), { value: 'ens+' }, 'a pattern that matches is kept as written');
  t.same(decideInterface(file(', inboundInterface: ens5'), AL2023), { value: 'ens5' });
});

t.test('auto without IMDS: the default route; without either: refused, saying what was tried', async (t) => {
  t.same(decideInterface(file(), { ...AL2023, primaryMac: { reason: 'not asked: AWS_EC2_METADATA_DISABLED=true' } }), {
    value: 'ens5',
    note: 'forward.inboundInterface is auto: ens5 carries the default route (IMDSv2 mac: not asked: AWS_EC2_METADATA_DISABLED=true)',
  });
  t.same(decideInterface(file(), { ...AL2023, primaryMac: { value: '0e:00:00:00:00:99' } }), {
    value: 'ens5',
    note: 'forward.inboundInterface is auto: ens5 carries the default route (IMDS names the primary MAC 0e:00:00:00:00:99, which no interface here holds)',
  });
  t.same(decideInterface(file(), { interfaces: AL2023.interfaces, primaryMac: { reason: 'no answer within 2000 ms' } }), {
    path: 'forward.inboundInterface',
    message: 'auto found no interface (IMDSv2 mac: no answer within 2000 ms; there is no default route); this host has ens5, lo. Set forward.inboundInterface to the interface clients arrive on',
  });
});

t.test('aws.region: the file, else IMDS, else $AWS_REGION, else refused', async (t) => {
  t.same(decideRegion(file('', 'aws: {region: eu-west-1}'), { ...AL2023, imdsRegion: { value: 'us-east-1' } }), { value: 'eu-west-1' });
  t.same(decideRegion(file(), { ...AL2023, imdsRegion: { value: 'ap-south-1' }, envRegion: 'us-west-2' }), { value: 'ap-south-1', note: "aws.region is auto: ap-south-1, the instance's region (IMDS)" });
  t.same(decideRegion(file(), { ...AL2023, imdsRegion: { reason: 'no answer' }, envRegion: 'us-west-2' }), { value: 'us-west-2', note: 'aws.region is auto and IMDS gave none: us-west-2, from $AWS_REGION' });
  t.same(decideRegion(file(), { ...AL2023, imdsRegion: { reason: 'not asked: AWS_EC2_METADATA_DISABLED=true' } }), {
    path: 'aws.region',
    message: "auto found no region (IMDSv2 placement/region: not asked: AWS_EC2_METADATA_DISABLED=true; $AWS_REGION is not set). Set aws.region to the caches' region, e.g. us-east-1",
  });
  t.match(decideRegion(file(), { ...AL2023, imdsRegion: { reason: 'x' }, envRegion: 'Frankfurt' }), { message: /\$AWS_REGION expected an AWS region like us-east-1 \(lower case\), got "Frankfurt"/ });
  t.same(imdsQuestions(file()), { region: true, primaryMac: true }, 'IMDS is asked only for what the file leaves open');
  t.same(imdsQuestions(file(', inboundInterface: ens5', 'aws: {region: us-east-1}')), { region: false, primaryMac: false });
});

t.test('a port range over a local service is refused; loopback-only listeners and other ports are not', async (t) => {
  const config = configForHost(file(), { ...AL2023, primaryMac: { value: '0e:49:61:0f:c3:11' }, envRegion: 'us-east-1' });
  t.ok('config' in config);
  const facts = (listeners: HostFacts['listeners']): HostFacts => ({ ...AL2023, listeners });
  const cfg = file(', inboundInterface: ens5');
  t.same(portListenerIssues(cfg, facts([{ address: '127.0.0.1', port: 6379 }, { address: '0.0.0.0', port: 22 }, { address: '0.0.0.0', port: 6479 }]), 'ens5'), [], 'loopback, ssh and the port after the range');
  t.same(portListenerIssues(cfg, facts([{ address: '0.0.0.0', port: 6380 }, { address: '10.0.1.10', port: 11300 }]), 'ens5'), [
    {
      path: 'ports.redis',
      message:
        "expected a range free of local services, got 6379, and its first 100 ports (6379-6478) include 6380, where a local process listens (0.0.0.0:6380): cachenat's forwards would take that port over for allowedSources. Move ports.redis, or the service (ss -ltnp shows which)",
    },
    {
      path: 'ports.memcached',
      message:
        "expected a range free of local services, got 11211, and its first 100 ports (11211-11310) include 11300, where a local process listens (10.0.1.10:11300): cachenat's forwards would take that port over for allowedSources. Move ports.memcached, or the service (ss -ltnp shows which)",
    },
  ]);
  t.same(portListenerIssues(cfg, { interfaces: AL2023.interfaces }, 'ens5'), [], 'listeners unknown: not judged');
});

t.test('configForHost: every reason at once, or the config with both decided', async (t) => {
  const refused = configForHost(file(', inboundInterface: eth0'), { ...AL2023, imdsRegion: { reason: 'off' } });
  t.same('issues' in refused ? refused.issues.map((i) => i.path) : [], ['aws.region', 'forward.inboundInterface']);
  const decided = configForHost(file(), { ...AL2023, primaryMac: { value: '0e:49:61:0f:c3:11' }, imdsRegion: { value: 'eu-central-1' }, listeners: [] });
  t.ok('config' in decided);
  if (!('config' in decided)) return;
  t.equal(decided.config.aws.region, 'eu-central-1');
  t.equal(decided.config.forward.inboundInterface, 'ens5');
  t.equal(decided.notes.length, 2);
});

t.test('/proc/net/route: the default route with the lowest metric that is up', async (t) => {
  const table = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
ens6\t00000000\t0100000A\t0002\t0\t0\t50\t00000000\t0\t0\t0
ens5\t00000000\t0101000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
ens7\t00000000\t0101000A\t0003\t0\t0\t200\t00000000\t0\t0\t0
ens5\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
  t.equal(defaultRouteInterface(table), 'ens5', 'ens6 is not up (flags without RTF_UP)');
  t.equal(defaultRouteInterface('Iface\tDestination\n'), undefined);
});

t.test('/proc/net/dev: every interface, with an address or not', async (t) => {
  const dev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ens5: 25672399   58071    0    0    0     0          0         0 25672399   58071    0    0    0     0       0          0
eth0.100: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
`;
  t.same(interfaceNames(dev), ['lo', 'ens5', 'eth0.100']);
});

t.test('/proc/net/tcp and tcp6: listeners that can take IPv4', async (t) => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0A01000A:18EC 0B01000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`;
  const tcp6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A
   1: 0000000000000000FFFF00000A01000A:2BCB 00000000000000000000000000000000:0000 0A
   2: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A
`;
  t.same(tcpListeners(tcp, tcp6), [
    { address: '0.0.0.0', port: 22 },
    { address: '127.0.0.1', port: 6379 },
    { address: '0.0.0.0', port: 8080 },
    { address: '10.0.1.10', port: 11211 },
  ]);
});

t.test(`property: a named interface is accepted exactly when the host has a match, and a refusal names it and every interface (${RUNS} hosts, seed ${SEED})`, async (t) => {
  const name = fc.stringMatching(/^[a-z]{1,4}[0-9]{0,2}$/);
  let ran = 0;
  try {
    fc.assert(
      fc.property(fc.uniqueArray(name, { minLength: 0, maxLength: 6 }), name, fc.boolean(), (names, wanted, wildcard) => {
        ran++;
        const configured = wildcard ? `${wanted.replace(/[0-9]+$/, '')}+` : wanted;
        const facts: HostFacts = { interfaces: names.map((n) => ({ name: n, ipv4: [] })) };
        const decided = decideInterface(file(`, inboundInterface: "${configured}"`), facts);
        const matches = inboundInterfaces(configured, Object.fromEntries(names.map((n) => [n, []])));
        if (matches.length > 0) return 'value' in decided && decided.value === configured;
        return 'message' in decided && decided.message.includes(`got ${configured},`) && names.every((n) => decided.message.includes(n));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  } catch (err) {
    t.fail(`${(err as Error).message}\n${replay}`);
  }
  t.equal(ran >= RUNS, true, `${ran} hosts checked`);
});

t.test(`property: auto picks the primary MAC's holder, else the default route's, else refuses (${RUNS} hosts, seed ${SEED})`, async (t) => {
  const mac = fc.constantFrom('0e:00:00:00:00:01', '0e:00:00:00:00:02', '0e:00:00:00:00:03');
  let ran = 0;
  try {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: fc.constantFrom('ens5', 'ens6', 'eth0', 'lo'), mac: fc.option(mac, { nil: undefined }) }), { selector: (i) => i.name, maxLength: 4 }),
        fc.option(mac, { nil: undefined }),
        fc.option(fc.constantFrom('ens5', 'ens6', 'eth0', 'wg0'), { nil: undefined }),
        (interfaces, primaryMac, defaultRoute) => {
          ran++;
          const facts: HostFacts = {
            interfaces: interfaces.map((i) => ({ name: i.name, ...(i.mac ? { mac: i.mac } : {}), ipv4: [] })),
            defaultRoute,
            primaryMac: primaryMac ? { value: primaryMac } : { reason: 'off' },
          };
          const decided = decideInterface(file(), facts);
          const holder = interfaces.find((i) => primaryMac !== undefined && i.mac === primaryMac)?.name;
          const route = interfaces.some((i) => i.name === defaultRoute) ? defaultRoute : undefined;
          const expected = holder ?? route;
          return expected === undefined ? 'message' in decided : 'value' in decided && decided.value === expected;
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  } catch (err) {
    t.fail(`${(err as Error).message}\n${replay}`);
  }
  t.equal(ran >= RUNS, true, `${ran} hosts checked`);
});
