import t from 'tap';
import type { RuleForward } from '../../../src/core/model.js';
import { renderRules, type RenderOptions } from '../../../src/core/netfilter/render.js';

const options: RenderOptions = { inboundInterface: 'eth0', allowedSources: ['198.51.100.27/32'], snat: 'masquerade' };
const node1: RuleForward = { key: 'node/c1/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.231', targetPort: 6379 };
const mc: RuleForward = { key: 'node/mc-1/0001', engine: 'memcached', listenPort: 11211, targetIp: '10.0.2.9', targetPort: 11211 };
const primary: RuleForward = { key: 'primary/rg1', engine: 'valkey', listenPort: 6379, targetIp: '10.0.1.5', targetPort: 6379 };

t.test('renders the canonical lines iptables-save prints back', async (t) => {
  t.same(renderRules([node1], options), {
    nat: {
      'CACHENAT-PREROUTING': ['-A CACHENAT-PREROUTING -s 198.51.100.27/32 -i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT'],
      'CACHENAT-OUTPUT': ['-A CACHENAT-OUTPUT -m addrtype --dst-type LOCAL -j CACHENAT-DNAT'],
      'CACHENAT-DNAT': [
        '-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x1000000/0x1000000',
        '-A CACHENAT-DNAT -p tcp -m tcp --dport 6380 -m comment --comment "cachenat redis node/c1/0001" -j DNAT --to-destination 10.0.1.231:6379',
        '-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x0/0x1000000',
      ],
      'CACHENAT-POSTROUTING': ['-A CACHENAT-POSTROUTING -m connmark --mark 0x1000000/0x1000000 -j MASQUERADE'],
    },
    filter: {
      'CACHENAT-FORWARD': ['-A CACHENAT-FORWARD -m connmark --mark 0x1000000/0x1000000 -j ACCEPT'],
    },
  });
});

t.test('another connmark bit; a value that is not one bit is refused', async (t) => {
  const rules = renderRules([node1], { ...options, connmark: 0x40 });
  t.equal(rules.filter['CACHENAT-FORWARD']![0], '-A CACHENAT-FORWARD -m connmark --mark 0x40/0x40 -j ACCEPT');
  t.throws(() => renderRules([node1], { ...options, connmark: 0x41 }), /forward\.connmark/);
  t.throws(() => renderRules([node1], { ...options, connmark: 0 }), /forward\.connmark/);
});

t.test('SNAT to an address instead of masquerade', async (t) => {
  const rules = renderRules([node1], { ...options, snat: '10.0.0.5' });
  t.match(rules.nat['CACHENAT-POSTROUTING']![0], / -j SNAT --to-source 10\.0\.0\.5$/);
});

t.test('sources in config order, 0.0.0.0/0 without -s, duplicates once, bare addresses as /32', async (t) => {
  const rules = renderRules([], { ...options, allowedSources: ['203.0.113.0/24', '0.0.0.0/0', '198.51.100.27', '203.0.113.0/24'] });
  t.same(rules.nat['CACHENAT-PREROUTING'], [
    '-A CACHENAT-PREROUTING -s 203.0.113.0/24 -i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT',
    '-A CACHENAT-PREROUTING -i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT',
    '-A CACHENAT-PREROUTING -s 198.51.100.27/32 -i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT',
  ]);
  t.same(rules.nat['CACHENAT-DNAT'], [], 'no forwards: owned chains present and empty');
  t.same(rules.filter['CACHENAT-FORWARD'], []);
});

t.test('forwards sorted by listen port, whatever the input order', async (t) => {
  const rules = renderRules([mc, node1, primary], options);
  t.same(
    rules.nat['CACHENAT-DNAT']!.flatMap((line) => /--dport (\d+)/.exec(line)?.[1] ?? []),
    ['6379', '6380', '11211'],
  );
  t.match(rules.nat['CACHENAT-DNAT']![1], /--comment "cachenat valkey primary\/rg1"/);
  t.equal(rules.filter['CACHENAT-FORWARD']!.length, 1, 'one FORWARD rule covers every forward');
});

const bad: [string, Partial<RuleForward>, RegExp][] = [
  ['key with a space', { key: 'node/c1/0001 -j ACCEPT' }, /target key/],
  ['key with a quote', { key: 'node/c"1/0001' }, /target key/],
  ['key of unknown kind', { key: 'writer/rg1' }, /target key/],
  ['key with a newline', { key: 'primary/rg1\n-A INPUT' }, /target key/],
  ['empty key part', { key: 'node//0001' }, /target key/],
  ['unknown engine', { engine: 'mysql' as never }, /engine/],
  ['port 0', { listenPort: 0 }, /port 0/],
  ['port too high', { targetPort: 65536 }, /port 65536/],
  ['fractional port', { listenPort: 6379.5 }, /port/],
  ['port as text', { listenPort: '6379' as never }, /port/],
  ['target not an address', { targetIp: '10.0.1.2 -j ACCEPT' }, /not an IPv4 address/],
  ['target with leading zero', { targetIp: '10.0.01.2' }, /not an IPv4 address/],
  ['target in loopback', { targetIp: '127.0.0.1' }, /never forwarded to/],
  ['target is metadata service', { targetIp: '169.254.169.254' }, /never forwarded to/],
];
for (const [name, change, error] of bad) {
  t.test(`refuses a forward with ${name}`, async (t) => {
    t.throws(() => renderRules([{ ...node1, ...change }], options), error);
  });
}

const badOptions: [string, Partial<RenderOptions>, RegExp][] = [
  ['interface with a space', { inboundInterface: 'eth0 -j ACCEPT' }, /inboundInterface/],
  ['interface too long', { inboundInterface: 'a23456789012345x' }, /inboundInterface/],
  ['empty interface', { inboundInterface: '' }, /inboundInterface/],
  ['source with host bits', { allowedSources: ['198.51.100.27/24'] }, /host bits/],
  ['source not a CIDR', { allowedSources: ['any'] }, /allowedSources/],
  ['snat not an address', { snat: '10.0.0.5; reboot' }, /forward\.snat/],
];
for (const [name, change, error] of badOptions) {
  t.test(`refuses options with ${name}`, async (t) => {
    t.throws(() => renderRules([node1], { ...options, ...change }), error);
  });
}

t.test('accepts usual interface names', async (t) => {
  for (const name of ['eth0', 'ens5', 'enp0s31f6', 'eth0.100', 'veth-cn_1', 'eth+']) {
    t.doesNotThrow(() => renderRules([], { ...options, inboundInterface: name }), name);
  }
});

t.test('refuses two forwards on one port or one key', async (t) => {
  t.throws(() => renderRules([node1, { ...mc, listenPort: 6380 }], options), /listens on :6380, and so does/);
  t.throws(() => renderRules([node1, { ...node1, listenPort: 6390 }], options), /appears twice/);
});
