// Every part that reads a value agrees on it: the config schema accepts an
// interface name exactly when the renderer can put it in a rule; the topology
// reader, the renderer, the rule recovery and the port-map store accept the
// same ids and keys; the schema, the topology reader and the store the same
// addresses. Checked on a corpus of edge cases and on fuzzed values.

import t from 'tap';
import fc from 'fast-check';
import { configSchema } from '../../src/core/config/schema.js';
import { toTopology } from '../../src/core/discovery/topology.js';
import { isIpv4 } from '../../src/core/ipv4.js';
import { parseSave } from '../../src/core/netfilter/parse-save.js';
import { recoverForwards, recoverState } from '../../src/core/netfilter/recover.js';
import { renderRules, type RenderOptions } from '../../src/core/netfilter/render.js';
import { dnatPacketCounts, forwardId } from '../../src/core/metrics/rule-counters.js';
import { parseState, serializeState } from '../../src/ports/state-store.js';

const RUNS = Number(process.env.GRAMMAR_RUNS ?? 3000);

const RENDER: RenderOptions = { inboundInterface: 'eth0', allowedSources: ['10.0.0.0/8'], snat: 'masquerade' };
const MINIMAL_CONFIG = { aws: { region: 'us-east-1' }, forward: { allowedSources: ['10.0.0.0/8'] } };

/** Runs `check` on every corpus value, then on RUNS fuzzed ones; returns how many ran. */
function agreeOn<T>(corpus: readonly T[], fuzzed: fc.Arbitrary<T>, check: (value: T) => void): number {
  let ran = 0;
  for (const value of corpus) {
    check(value);
    ran++;
  }
  fc.assert(
    fc.property(fuzzed, (value) => {
      check(value);
      ran++;
    }),
    { numRuns: RUNS },
  );
  return ran;
}

/** Text drawn mostly from the characters that sit on the edge of some rule. */
const edgyText = (maxLength: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...'aZ09-_.+@:/ *?"\'\t'), maxLength }) },
    { weight: 1, arbitrary: fc.string({ maxLength }) },
  );

const renders = (options: Partial<RenderOptions>, forwards: Parameters<typeof renderRules>[0] = []): boolean => {
  try {
    renderRules(forwards, { ...RENDER, ...options });
    return true;
  } catch {
    return false;
  }
};

// The kernel's own rule for a device name (dev_valid_name) and iptables' for
// `-i` (shorter than IFNAMSIZ, a trailing "+" counted): whatever cachenat
// accepts must pass both.
const kernelAndIptablesTake = (name: string): boolean => {
  const wildcard = name.endsWith('+');
  const base = wildcard ? name.slice(0, -1) : name;
  // "." and ".." cannot name a device; as a wildcard prefix ("..+") they only match nothing.
  return Buffer.byteLength(name) < 16 && (wildcard || (base !== '.' && base !== '..')) && !/[/:\s\0]/.test(base);
};

t.test('interface names: validate accepts exactly what the renderer can use, and iptables takes it', async (t) => {
  const corpus = ['eth0', 'ens5', 'eth+', 'veth_a.1', 'br-1a2b3c4d5e6f', 'a'.repeat(15), `${'a'.repeat(14)}+`, `${'a'.repeat(15)}+`, 'a'.repeat(16), '', '+', 'eth0@if3', 'eth0:1', 'eth 0', 'eth/0', '.', '..', '.+', '-i', 'eth0\n', 'éth0'];
  const ran = agreeOn(corpus, edgyText(18), (name) => {
    const validated = configSchema.safeParse({ ...MINIMAL_CONFIG, forward: { ...MINIMAL_CONFIG.forward, inboundInterface: name } }).success;
    const rendered = renders({ inboundInterface: name });
    if (validated !== rendered) throw new Error(`${JSON.stringify(name)}: validate ${validated ? 'accepts' : 'refuses'} it, the renderer ${rendered ? 'accepts' : 'refuses'} it`);
    if (validated && !kernelAndIptablesTake(name)) throw new Error(`${JSON.stringify(name)} is accepted but iptables or the kernel would refuse it`);
  });
  t.equal(ran, corpus.length + RUNS, `${ran} names checked`);
  for (const good of ['eth0', 'ens5', 'eth+', `${'a'.repeat(14)}+`]) t.ok(renders({ inboundInterface: good }), `${good} is usable`);
  for (const bad of ['eth0@if3', 'eth0:1', `${'a'.repeat(15)}+`, '+', '-i']) t.notOk(renders({ inboundInterface: bad }), `${bad} is refused`);
});

// ── ids and keys ───────────────────────────────────────────────────────────

const FORWARD = { engine: 'redis' as const, listenPort: 6380, targetIp: '10.0.0.1', targetPort: 6379 };

const renderable = (key: string): boolean => renders({}, [{ key, ...FORWARD }]);

/** The DNAT line the renderer writes for this key, as iptables-save shows it, read back by recovery. */
const recoverable = (key: string): boolean => {
  const line = `-A CACHENAT-DNAT -p tcp -m tcp --dport 6380 -m comment --comment "cachenat redis ${key}" -j DNAT --to-destination 10.0.0.1:6379`;
  if (line.includes('\n')) return false; // no kernel prints a line break inside a rule
  return recoverForwards(parseSave(`*nat\n:CACHENAT-DNAT - [0:0]\n${line}\nCOMMIT\n`, 'nat')).length === 1;
};

/** A hand-written port-map entry with this key (no id fields, so only the key rule decides). */
const storable = (key: string): boolean => {
  const kind = /^[a-z-]+\//.exec(key)?.[0].slice(0, -1) ?? 'node';
  const entry = { key, kind, engine: 'redis', address: 'n.cache.example', targetPort: 6379, listenPort: 6380 };
  return parseState(JSON.stringify({ version: 1, entries: [entry], released: [] })).status === 'ok';
};

/** Recovery's output turned into a map, written and read back. */
const recoveredThenStored = (key: string): boolean => {
  const line = `-A CACHENAT-DNAT -p tcp -m tcp --dport 6380 -m comment --comment "cachenat redis ${key}" -j DNAT --to-destination 10.0.0.1:6379`;
  if (line.includes('\n')) return false;
  const { state } = recoverState(parseSave(`*nat\n:CACHENAT-DNAT - [0:0]\n${line}\nCOMMIT\n`, 'nat'), 0);
  return state.entries.length === 1 && parseState(serializeState(state)).status === 'ok';
};

const verdicts = (key: string) => ({ renderable: renderable(key), recoverable: recoverable(key), storable: storable(key) });

const ID_CORPUS = ['0001', 'my-cluster', 'orders-002', 'A', 'a'.repeat(64), 'a'.repeat(65), '', '-lead', 'a_b', 'a.b', 'a b', 'a/b', 'a"b', 'a*', 'ü'];

t.test('ids: the topology reader, renderer, recovery and port-map store accept the same', async (t) => {
  const corpus = ID_CORPUS.flatMap((a) => ID_CORPUS.map((b): [string, string] => [a, b]));
  const ran = agreeOn(corpus, fc.tuple(edgyText(70), edgyText(70)), ([clusterId, nodeId]) => {
    const topology = toTopology(
      {
        cacheClusters: [{ CacheClusterId: clusterId, Engine: 'redis', CacheNodes: [{ CacheNodeId: nodeId, Endpoint: { Address: 'n.cache.example', Port: 6379 } }] }],
        replicationGroups: [{ ReplicationGroupId: clusterId, NodeGroups: [{ PrimaryEndpoint: { Address: 'p.cache.example', Port: 6379 }, ReaderEndpoint: { Address: 'r.cache.example', Port: 6379 } }] }],
      },
      { include: ['*'], exclude: [] },
    );
    const found = new Set(topology.targets.map((target) => target.key));
    for (const key of [`node/${clusterId}/${nodeId}`, `primary/${clusterId}`, `reader/${clusterId}`]) {
      const read = found.has(key);
      const others = verdicts(key);
      if (Object.values(others).some((v) => v !== read)) throw new Error(`${JSON.stringify(key)}: topology ${read}, ${JSON.stringify(others)}`);
    }
  });
  t.equal(ran, corpus.length + RUNS, `${ran} id pairs checked`);
});

t.test('keys: what the store accepts is renderable and recoverable, and the other way round', async (t) => {
  const corpus = [
    'node/c1/0001', 'primary/orders', 'reader/orders', 'configuration/orders', 'serverless/sessions', 'serverless-reader/sessions',
    'node/c1', 'node/c1/0001/x', 'primary/', 'primary/a.b', 'reader/a_b', 'other/x', 'node/c 1/0001', 'primary/"x"', `primary/${'a'.repeat(65)}`,
    'serverless/', 'serverless-reader/a/b', 'configuration/a.b', 'serverless/a_b',
  ];
  const prefixes = ['node/', 'primary/', 'reader/', 'configuration/', 'serverless/', 'serverless-reader/', ''];
  const prefixed = fc.tuple(fc.constantFrom(...prefixes), edgyText(40)).map(([prefix, rest]) => prefix + rest);
  const ran = agreeOn(corpus, prefixed, (key) => {
    const all = { ...verdicts(key), recoveredThenStored: recoveredThenStored(key) };
    if (new Set(Object.values(all)).size !== 1) throw new Error(`${JSON.stringify(key)}: ${JSON.stringify(all)}`);
  });
  t.equal(ran, corpus.length + RUNS, `${ran} keys checked`);
  for (const key of ['node/c1/0001', 'configuration/orders', 'serverless/sessions', 'serverless-reader/sessions']) {
    t.ok(verdicts(key).renderable, `${key} passes`);
  }
});

t.test('DNAT lines: what the renderer writes for a name with several addresses, recovery and the counters read back', async (t) => {
  const addressLists = fc.uniqueArray(fc.ipV4().filter((ip) => renders({}, [{ key: 'node/c1/0001', ...FORWARD, targetIp: ip }])), { minLength: 1, maxLength: 5 });
  const ran = agreeOn([['10.0.0.1'], ['10.0.0.1', '10.0.0.2', '10.0.0.3']], addressLists, (ips) => {
    const forward = { key: 'serverless/sessions', ...FORWARD, targetIp: ips[0]!, targetIps: ips };
    const dnat = renderRules([forward], RENDER).nat['CACHENAT-DNAT']!;
    const ruleLines = dnat.filter((line) => line.includes('-j DNAT'));
    if (ruleLines.length !== ips.length) throw new Error(`${ips.length} addresses gave ${ruleLines.length} DNAT rules`);
    const recovered = recoverForwards(parseSave(`*nat\n:CACHENAT-DNAT - [0:0]\n${dnat.join('\n')}\nCOMMIT\n`, 'nat'));
    if (recovered.length !== 1 || recovered[0]!.targetIp !== ips[0]) throw new Error(`${JSON.stringify(ips)}: recovered ${JSON.stringify(recovered)}`);
    // Each rule counts the connections it took; the forward's count is their sum.
    const counted = dnatPacketCounts(ruleLines.map((line, i) => `[${i + 1}:0] ${line}`).join('\n'));
    const expected = (ips.length * (ips.length + 1)) / 2;
    if (counted.get(forwardId(forward.listenPort, forward.key)) !== expected) throw new Error(`${JSON.stringify(ips)}: counted ${JSON.stringify([...counted])}`);
  });
  t.equal(ran, 2 + RUNS, `${ran} address lists checked`);
});

// ── addresses and the connmark ─────────────────────────────────────────────

t.test('DNS names: validate (forward.publicAddress), the topology reader and the store agree', async (t) => {
  const corpus = ['cache.example', 'my-mem-cluster.7ef-example.0001.usw2.cache.amazonaws.com', 'localhost', '127.1', '2130706433', 'a..b', '-a.com', 'a-.com', `${'a'.repeat(64)}.com`, '10.0.0.1', '127.0.0.1', 'a_b.com'];
  const ran = agreeOn(corpus, edgyText(80), (address) => {
    const read = toTopology({ cacheClusters: [{ CacheClusterId: 'c1', Engine: 'redis', CacheNodes: [{ CacheNodeId: '0001', Endpoint: { Address: address, Port: 6379 } }] }], replicationGroups: [] }, { include: ['*'], exclude: [] }).targets.length === 1;
    const entry = { key: 'node/c1/0001', kind: 'node', engine: 'redis', address, targetPort: 6379, listenPort: 6380 };
    const stored = parseState(JSON.stringify({ version: 1, entries: [entry], released: [] })).status === 'ok';
    if (read !== stored) throw new Error(`${JSON.stringify(address)}: topology ${read}, store ${stored}`);
    // The public address clients dial may be any IPv4 address, so names only.
    if (!isIpv4(address)) {
      const validated = configSchema.safeParse({ ...MINIMAL_CONFIG, forward: { ...MINIMAL_CONFIG.forward, publicAddress: address } }).success;
      if (validated !== read) throw new Error(`${JSON.stringify(address)}: validate ${validated}, topology ${read}`);
    }
  });
  t.equal(ran, corpus.length + RUNS, `${ran} addresses checked`);
});

t.test('connmark: validate accepts a mark exactly when the renderer can write it', async (t) => {
  const corpus = [1, 0x80, 0x1000000, 0x80000000, 0, 3, -1, 0x100000000, 1.5];
  const ran = agreeOn(corpus, fc.oneof(fc.integer({ min: -2, max: 2 ** 33 }), fc.integer({ min: 0, max: 32 }).map((bit) => 2 ** bit)), (mark) => {
    const parsed = configSchema.safeParse({ ...MINIMAL_CONFIG, forward: { ...MINIMAL_CONFIG.forward, connmark: mark } });
    const rendered = renders({ connmark: mark });
    if (parsed.success !== rendered) throw new Error(`${mark}: validate ${parsed.success}, renderer ${rendered}`);
    if (parsed.success && parsed.data.forward.connmark !== mark) throw new Error(`${mark} came out of validate as ${parsed.data.forward.connmark}`);
  });
  t.equal(ran, corpus.length + RUNS, `${ran} marks checked`);
  const hex = configSchema.safeParse({ ...MINIMAL_CONFIG, forward: { ...MINIMAL_CONFIG.forward, connmark: '0x1000000' } });
  t.ok(hex.success && renders({ connmark: hex.data.forward.connmark }), 'the hex form validates to a renderable mark');
});
