// Hostile API payloads: names, ids, addresses and ports with spaces, newlines,
// quotes, `-j ACCEPT`, unicode, huge sizes and duplicates, thrown at
// toTopology → planPass (render + diff), and a smaller batch through the real
// SDK against the fake API on loopback. Whatever comes in: no crash, every
// rule line in the one grammar cachenat writes, nothing outside CACHENAT-*.

import t from 'tap';
import fc from 'fast-check';
import { startFakeElastiCache, type FakeCluster, type FakeReplicationGroup } from '../../lab/fake-elasticache.js';
import { validateConfig } from '../../src/config/load.js';
import { ElastiCacheSource } from '../../src/discovery/elasticache-source.js';
import { toTopology, type DescribeResults } from '../../src/core/discovery/topology.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import type { Resolution, RuleForward, Topology } from '../../src/core/model.js';
import { keyProblem, renderRules } from '../../src/core/netfilter/render.js';
import { planPass } from '../../src/core/planner/plan.js';
import { emptyPortState } from '../../src/core/ports/port-state.js';
import { isIpv4, targetAddressProblem } from '../../src/core/ipv4.js';
import { isHostName } from '../../src/core/discovery/topology.js';
import { applyRestore, emptyKernel } from '../support/kernel-sim.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 10_000);
const SDK_RUNS = Math.max(50, Math.round(RUNS / 40));

const NASTY = [
  '-j ACCEPT', 'a b', 'x\ny', '"', "'", '\\', '$(reboot)', '`id`', '; iptables -F', '0001 -j ACCEPT', '0001\n-A INPUT -j ACCEPT',
  '\u0000', '\u202e0001', 'évil', '🙂', 'ｃ１', '--to-destination 1.2.3.4', '../../etc/passwd', 'CACHENAT-DNAT', '', ' ', '\t', '0001\r',
  '-A', '-X CACHENAT-DNAT', 'COMMIT', '*filter', 'a'.repeat(65), 'a'.repeat(64), '10.0.0.1', '10.0.0.1 -j ACCEPT', '10.0.0.1:6379',
  '169.254.169.254', '127.0.0.1', '0.0.0.0', '255.255.255.255', '224.0.0.1', '1.2.3.4/0', '010.000.000.001', '127.1', '2130706433',
  'host.example', `${'x'.repeat(300)}.example`, 'good-host.example.', '-host.example', 'host_.example', 'redis', 'memcached', 'valkey', 'REDIS', 'mongodb',
];
const OK_IDS = ['c1', 'c2', 'orders', 'orders-001', '0001', '0002', 'A-1'];

const text = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 6, arbitrary: fc.constantFrom(...OK_IDS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'ab0-. \n"\'-j'), maxLength: 20 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...OK_IDS), fc.constantFrom(...NASTY)).map(([a, b]) => a + b) },
);
const anyValue = fc.oneof(
  { weight: 8, arbitrary: text },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constant(null), fc.constant(undefined), fc.boolean()) },
  { weight: 1, arbitrary: fc.oneof(fc.array(text, { maxLength: 2 }), fc.dictionary(text, text, { maxKeys: 2 })) },
);
const portValue = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(6379, 11211) },
  { weight: 3, arbitrary: fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.double(), fc.constantFrom('6379', '6379; iptables -F', '', NaN, Infinity, 1e308)) },
  { weight: 1, arbitrary: anyValue },
);
const address = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('n1.cache.example', 'n2.cache.example', '10.0.0.7', '10.0.0.8') },
  { weight: 4, arbitrary: anyValue },
);
const endpoint = fc.oneof(
  { weight: 6, arbitrary: fc.record({ Address: address, Port: portValue }) },
  { weight: 1, arbitrary: fc.oneof(fc.constant(undefined), fc.constant(null), anyValue) },
);
const cluster = fc.record({
  CacheClusterId: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...OK_IDS) }, { weight: 1, arbitrary: anyValue }),
  Engine: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('redis', 'valkey', 'memcached') }, { weight: 1, arbitrary: anyValue }),
  ReplicationGroupId: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: anyValue }),
  CacheClusterStatus: anyValue,
  CacheNodes: fc.oneof(
    { weight: 5, arbitrary: fc.array(fc.record({ CacheNodeId: fc.oneof(fc.constantFrom(...OK_IDS), anyValue), Endpoint: endpoint, CacheNodeStatus: anyValue }), { maxLength: 4 }) },
    { weight: 1, arbitrary: anyValue },
  ),
});
const group = fc.record({
  ReplicationGroupId: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...OK_IDS) }, { weight: 2, arbitrary: anyValue }),
  Engine: fc.oneof(fc.constant(undefined), fc.constantFrom('redis', 'valkey'), anyValue),
  ClusterEnabled: fc.oneof(fc.constant(false), fc.constant(undefined), anyValue),
  MemberClusters: fc.oneof(fc.array(text, { maxLength: 3 }), anyValue),
  NodeGroups: fc.oneof(fc.array(fc.record({ PrimaryEndpoint: endpoint, ReaderEndpoint: endpoint }), { maxLength: 2 }), anyValue),
  Status: anyValue,
});
const payload = fc.record({
  cacheClusters: fc.oneof({ weight: 9, arbitrary: fc.array(cluster, { maxLength: 6 }) }, { weight: 1, arbitrary: anyValue }),
  replicationGroups: fc.oneof({ weight: 9, arbitrary: fc.array(group, { maxLength: 3 }) }, { weight: 1, arbitrary: anyValue }),
}) as unknown as fc.Arbitrary<DescribeResults>;

// The only rule lines cachenat may ever produce.
const IP = String.raw`(\d{1,3}(?:\.\d{1,3}){3})`;
const PORT = String.raw`(\d{1,5})`;
const ID = '[A-Za-z0-9][A-Za-z0-9._-]{0,63}';
const OWNER = `"cachenat (?:redis|valkey|memcached) (?:node/${ID}/${ID}|(?:primary|reader)/${ID})"`;
const MARK = '0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8}';
const RULE_GRAMMAR = [
  new RegExp(String.raw`^-A CACHENAT-PREROUTING (?:-s ${IP}/\d{1,2} )?-i (?=\S{1,15} )[A-Za-z0-9_.][A-Za-z0-9_.-]*\+? -m addrtype --dst-type LOCAL -j CACHENAT-DNAT$`),
  /^-A CACHENAT-OUTPUT -m addrtype --dst-type LOCAL -j CACHENAT-DNAT$/,
  new RegExp(`^-A CACHENAT-DNAT -j CONNMARK --set-xmark ${MARK}$`),
  new RegExp(`^-A CACHENAT-DNAT -p tcp -m tcp --dport ${PORT} -m comment --comment ${OWNER} -j DNAT --to-destination ${IP}:${PORT}$`),
  new RegExp(`^-A CACHENAT-POSTROUTING -m connmark --mark ${MARK} -j (?:MASQUERADE|SNAT --to-source ${IP})$`),
  new RegExp(`^-A CACHENAT-FORWARD -m connmark --mark ${MARK} -j ACCEPT$`),
  // The kernel's copy of the port map: comment-only rules, in a chain nothing jumps to. Words of a
  // narrow alphabet (nothing that can end the quotes), the comment at most 255 characters.
  /^-A CACHENAT-MAP -m comment --comment "(?=cachenat [^"]{1,246}")cachenat (?:entry|stale|quarantined|forget)(?: [A-Za-z0-9:][A-Za-z0-9./:*,-]*| -)+"$/,
];
const RESTORE_GRAMMAR = /^(?:\*nat|\*filter|COMMIT|:CACHENAT-[A-Z]+ - \[0:0\]|-I (?:PREROUTING|OUTPUT|POSTROUTING|FORWARD) 1 -m comment --comment cachenat -j CACHENAT-[A-Z]+)$/;

/** Throws unless every line is in the grammar and every IP and port in it is valid. */
function checkLine(line: string): void {
  const match = RULE_GRAMMAR.map((re) => re.exec(line)).find((m) => m !== null);
  if (!match && !RESTORE_GRAMMAR.test(line)) throw new Error(`a line outside the grammar: ${JSON.stringify(line)}`);
  for (const value of match?.slice(1) ?? []) {
    if (value === undefined) continue;
    if (value.includes('.')) {
      if (!isIpv4(value)) throw new Error(`bad address ${value} in ${line}`);
    } else if (!(Number(value) >= 1 && Number(value) <= 65535)) throw new Error(`bad port ${value} in ${line}`);
  }
}

const config = validateConfig(
  { aws: { region: 'us-east-1' }, forward: { inboundInterface: 'eth0', allowedSources: ['198.51.100.0/24'], snat: '10.9.9.9' } },
  'fuzz',
).config;

/** A DNS answer for every address; a name gets an arbitrary but valid IP, a literal itself. */
function resolveAllOf(topology: Topology): Map<string, Resolution> {
  const answers = new Map<string, Resolution>();
  topology.targets.forEach((target, i) => {
    answers.set(target.address, isIpv4(target.address) ? { ok: true, ip: target.address } : { ok: true, ip: `10.1.${(i >> 8) & 255}.${(i & 255) || 1}` });
  });
  return answers;
}

/** Everything downstream of the API for one payload, checked. Returns how many rule lines it produced. */
function throughTheCore(topology: Topology): number {
  const keys = new Set<string>();
  for (const target of topology.targets) {
    if (keyProblem(target.key)) throw new Error(`target key escaped validation: ${JSON.stringify(target.key)}`);
    if (keys.has(target.key)) throw new Error(`duplicate key ${target.key}`);
    keys.add(target.key);
    if (!(isIpv4(target.address) ? targetAddressProblem(target.address) === undefined : isHostName(target.address))) {
      throw new Error(`address escaped validation: ${JSON.stringify(target.address)}`);
    }
    if (!Number.isInteger(target.targetPort) || target.targetPort < 1 || target.targetPort > 65535) throw new Error(`port escaped: ${target.targetPort}`);
  }
  const kernel = emptyKernel();
  const plan = planPass({ config, state: emptyPortState(), topology, resolutions: resolveAllOf(topology), installed: kernel, now: 1_700_000_000_000 });
  let lines = 0;
  for (const table of ['nat', 'filter'] as const) {
    for (const [chain, rules] of Object.entries(plan.rules[table])) {
      if (!chain.startsWith('CACHENAT-')) throw new Error(`rendered chain ${chain}`);
      for (const rule of rules) {
        checkLine(rule);
        lines++;
      }
    }
  }
  for (const line of (plan.changes.restore ?? '').split('\n')) if (line !== '') checkLine(line);
  // And the kernel afterwards holds nothing new outside our chains but the four jumps.
  const after = applyRestore(kernel, plan.changes.restore);
  for (const table of ['nat', 'filter'] as const) {
    for (const [chain, { rules }] of after[table].chains) {
      if (chain.startsWith('CACHENAT-')) continue;
      for (const rule of rules) if (rule !== `-A ${chain} -m comment --comment cachenat -j CACHENAT-${chain}`) throw new Error(`foreign chain ${chain} got ${rule}`);
    }
  }
  return lines;
}

t.test(`fuzzed API payloads through toTopology and the planner (${RUNS} payloads)`, async (t) => {
  let targets = 0;
  let skipped = 0;
  let lines = 0;
  fc.assert(
    fc.property(payload, (input) => {
      const topology = toTopology(input, { include: ['*'], exclude: [] });
      targets += topology.targets.length;
      skipped += topology.skipped.length;
      for (const s of topology.skipped) {
        if (/[\n\r\u0000]/.test(s.where + s.reason)) throw new Error(`a log field carries a raw control character: ${JSON.stringify(s)}`);
      }
      lines += throughTheCore(topology);
    }),
    { numRuns: RUNS },
  );
  t.ok(targets > RUNS / 4, `${RUNS} payloads: ${targets} targets accepted, ${skipped} items skipped with a reason, ${lines} rule lines, all in the grammar`);
});

t.test(`renderRules on hostile forwards: refuses or renders in grammar (${RUNS} cases)`, async (t) => {
  let refused = 0;
  let rendered = 0;
  let renderedForwards = 0;
  // Valid values weigh more than hostile ones: with even odds a case holding
  // a forward that renders is so rare that the grammar check would see almost
  // nothing but empty rule sets.
  // (Typed as the valid value's type: the hostile ones are meant to lie about it.)
  const mostly = <T>(valid: fc.Arbitrary<T>, ...hostile: fc.Arbitrary<unknown>[]) =>
    fc.oneof({ weight: 3 * hostile.length, arbitrary: valid as fc.Arbitrary<unknown> }, ...hostile.map((arbitrary) => ({ weight: 1, arbitrary }))) as fc.Arbitrary<T>;
  const forward = fc.record({
    key: mostly(fc.constantFrom('node/c1/0001', 'primary/g1', 'reader/g1'), text, text.map((s) => `node/c1/${s}`)),
    engine: mostly(fc.constantFrom('redis', 'valkey', 'memcached'), text),
    listenPort: mostly(fc.integer({ min: 1, max: 65535 }), portValue),
    targetIp: mostly(fc.constantFrom('10.0.0.1', '10.0.0.2'), text),
    targetPort: mostly(fc.integer({ min: 1, max: 65535 }), portValue),
  }) as unknown as fc.Arbitrary<RuleForward>;
  const options = fc.record({
    inboundInterface: mostly(fc.constant('eth0'), text),
    allowedSources: fc.array(mostly(fc.constant('198.51.100.0/24'), text), { maxLength: 3 }),
    snat: mostly(fc.constantFrom('masquerade', '10.9.9.9'), text),
  });
  fc.assert(
    fc.property(fc.array(forward, { maxLength: 4 }), options, (forwards, opts) => {
      let rules;
      try {
        rules = renderRules(forwards, opts);
      } catch (err) {
        if (!/^refusing to render iptables rules: /.test((err as Error).message)) throw err;
        refused++;
        return;
      }
      rendered++;
      renderedForwards += forwards.length;
      for (const table of ['nat', 'filter'] as const) for (const lines of Object.values(rules[table])) lines.forEach(checkLine);
    }),
    { numRuns: RUNS },
  );
  t.equal(refused + rendered, RUNS, `every case ran: ${refused} refused with a reason, ${rendered} rendered, every line in the grammar`);
  // About 5% of these cases are valid (measured: ~560 of 10,000); a generator
  // that stopped producing renderable forwards would check nothing.
  t.ok(renderedForwards >= RUNS / 50, `${renderedForwards} forwards rendered (in ${rendered} cases): at least one per 50 cases reached the grammar check`);
  t.ok(refused >= RUNS / 2, `${refused} refused: the hostile half of the input reached the validator`);
});

t.test('huge and duplicated: 10,000 nodes, megabyte ids, the same node many times', async (t) => {
  const nodes = Array.from({ length: 10_000 }, (_, i) => ({ CacheNodeId: String(i).padStart(4, '0'), Endpoint: { Address: `n${i}.cache.example`, Port: 6379 } }));
  const started = performance.now();
  const topology = toTopology(
    {
      cacheClusters: [
        { CacheClusterId: 'big', Engine: 'redis', CacheNodes: nodes },
        { CacheClusterId: 'big', Engine: 'redis', CacheNodes: nodes.slice(0, 500) }, // the same cluster listed again
        { CacheClusterId: 'x'.repeat(1 << 20), Engine: 'redis', CacheNodes: [{ CacheNodeId: '0001', Endpoint: { Address: 'a.example', Port: 6379 } }] },
        { CacheClusterId: 'bigaddr', Engine: 'memcached', CacheNodes: [{ CacheNodeId: '0001', Endpoint: { Address: `${'a'.repeat(1 << 20)}.example`, Port: 11211 } }] },
        { CacheClusterId: 'bigengine', Engine: 'r'.repeat(1 << 20), CacheNodes: [] },
      ],
      replicationGroups: [],
    } as unknown as DescribeResults,
    { include: ['*'], exclude: [] },
  );
  const topologyMs = performance.now() - started;
  t.equal(topology.targets.length, 10_000, 'every distinct node once');
  t.equal(topology.skipped.filter((s) => /more than once/.test(s.reason)).length, 500, 'each duplicate skipped with a reason');
  t.ok(topology.skipped.every((s) => s.where.length + s.reason.length < 400), 'a megabyte value is never echoed whole into a log field');
  const planStarted = performance.now();
  const lines = throughTheCore(topology);
  const planMs = performance.now() - planStarted;
  t.equal(lines, 2 + (10_000 + 2) + 1 + 1 + 10_000, "PREROUTING and OUTPUT; one DNAT line per node between the two connmark lines; one SNAT and one FORWARD line; one record per node in the kernel's copy of the map");
  // Timings for the reader only; speed is measured by the benchmark.
  t.comment(`toTopology ${Math.round(topologyMs)} ms, plan + render + diff ${Math.round(planMs)} ms for 10,000 nodes`);
});

t.test(`hostile payloads through the real SDK and the fake API on loopback (${SDK_RUNS} payloads)`, async (t) => {
  const fake = await startFakeElastiCache();
  t.teardown(() => fake.close());
  const source = new ElastiCacheSource({
    region: 'us-east-1',
    endpoint: fake.url,
    timeoutMs: 3000,
    filter: { include: ['*'], exclude: [] },
    credentials: { accessKeyId: 'AKIDFUZZ', secretAccessKey: 'fuzz' },
  });
  const str = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...OK_IDS) }, { weight: 2, arbitrary: fc.constantFrom(...NASTY) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) });
  const fakeCluster: fc.Arbitrary<FakeCluster> = fc.record({
    id: str,
    engine: fc.oneof(fc.constantFrom('redis', 'valkey', 'memcached'), str),
    nodes: fc.array(fc.record({ id: str, address: fc.oneof(fc.constantFrom('n1.cache.example', '10.0.0.7'), str), port: fc.oneof(fc.constantFrom(6379, 11211), fc.integer({ min: -1, max: 70000 }), str) }), { maxLength: 3 }),
  });
  const fakeGroup: fc.Arbitrary<FakeReplicationGroup> = fc.record({
    id: str,
    primary: fc.record({ address: fc.oneof(fc.constant('p.cache.example'), str), port: fc.oneof(fc.constant(6379), str) }),
    reader: fc.record({ address: fc.oneof(fc.constant('r.cache.example'), str), port: fc.oneof(fc.constant(6379), str) }),
  });
  let answered = 0;
  let refused = 0;
  let targets = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fakeCluster, { maxLength: 5 }), fc.array(fakeGroup, { maxLength: 2 }), async (clusters, replicationGroups) => {
      fake.setTopology({ clusters, replicationGroups });
      let topology: Topology;
      try {
        topology = await source.describe();
      } catch (err) {
        if (!(err instanceof DiscoveryError)) throw err;
        refused++;
        return;
      }
      answered++;
      targets += topology.targets.length;
      throughTheCore(topology);
    }),
    { numRuns: SDK_RUNS },
  );
  t.equal(answered + refused, SDK_RUNS, `${SDK_RUNS} payloads: ${answered} parsed (${targets} targets, all in the grammar), ${refused} refused as a DiscoveryError, no crash`);
  // The fake answers every payload (the SDK parses, the core judges), and
  // about 0.8 targets per payload pass validation: the grammar check saw them.
  t.ok(answered >= SDK_RUNS / 2, `${answered} of ${SDK_RUNS} payloads came back as a topology`);
  t.ok(targets >= SDK_RUNS / 4, `${targets} targets from ${SDK_RUNS} payloads went through plan, render and the grammar`);
});
