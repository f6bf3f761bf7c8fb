// Properties of the pure core, each checked on HARDENING_RUNS (default 10,000)
// generated cases: ports unique and in range, sticky across any sequence of
// adds, removals and returns, a pass applied twice changes nothing the second
// time, and a pass without a complete API answer never removes a forward.

import t from 'tap';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/core/config/schema.js';
import { portFamilyOf, type DiscoveredTarget, type Engine, type Resolution, type Topology } from '../../src/core/model.js';
import { planForwards, type ForwardPolicy } from '../../src/core/planner/plan-forwards.js';
import { planPass } from '../../src/core/planner/plan.js';
import { allocatePorts } from '../../src/core/ports/allocate.js';
import { emptyPortState, listenerClash, type PortState } from '../../src/core/ports/port-state.js';
import { renderRules } from '../../src/core/netfilter/render.js';
import { DOCKER_SAVE } from '../../lab/foreign-rules.js';
import { applyRestore, emptyKernel, installedFrom } from '../support/kernel-sim.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 10_000);
const SEED = process.env.HARDENING_SEED === undefined ? undefined : Number(process.env.HARDENING_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

// A fixed universe of targets; each case draws which of them the API lists at each step.
const CLUSTERS: [string, Engine][] = [['alpha', 'redis'], ['bravo', 'redis'], ['carol', 'valkey'], ['delta', 'memcached'], ['echo', 'memcached']];
const UNIVERSE: DiscoveredTarget[] = [
  ...CLUSTERS.flatMap(([cluster, engine]) =>
    ['0001', '0002', '0003'].map((node): DiscoveredTarget => ({
      key: `node/${cluster}/${node}`, kind: 'node', engine, cacheClusterId: cluster, cacheNodeId: node,
      address: `${cluster}-${node}.cache.example`, targetPort: engine === 'memcached' ? 11211 : 6379,
    })),
  ),
  ...['g1', 'g2'].flatMap((group) =>
    (['primary', 'reader'] as const).map((kind): DiscoveredTarget => ({
      key: `${kind}/${group}`, kind, engine: 'redis', replicationGroupId: group, address: `${kind}.${group}.cache.example`, targetPort: 6379,
    })),
  ),
];
const ENGINE_OF = new Map(UNIVERSE.map((u) => [u.key, u.engine]));

const ip = fc.tuple(fc.integer({ min: 10, max: 11 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 4 })).map(([a, b, c]) => `${a}.0.${b}.${c}`);
const resolution: fc.Arbitrary<Resolution> = fc.oneof(
  { weight: 4, arbitrary: ip.map((v) => ({ ok: true as const, ip: v })) },
  { weight: 1, arbitrary: fc.constantFrom('ENOTFOUND', 'EAI_AGAIN', 'timeout').map((e) => ({ ok: false as const, error: e })) },
);

interface Step {
  /** Indexes into UNIVERSE that the API lists, or null: no complete answer this pass. */
  listed: number[] | null;
  dtMs: number;
  dns: Resolution[];
}

const step: fc.Arbitrary<Step> = fc.record({
  listed: fc.option(fc.subarray(UNIVERSE.map((_, i) => i)), { nil: null, freq: 4 }),
  dtMs: fc.integer({ min: 0, max: 40_000 }),
  dns: fc.array(resolution, { minLength: UNIVERSE.length, maxLength: UNIVERSE.length }),
});

const policyArb: fc.Arbitrary<ForwardPolicy> = fc
  .record({
    // Sometimes right at the top of the port space, so exhaustion is exercised too.
    redis: fc.oneof({ weight: 4, arbitrary: fc.constant(6379) }, fc.integer({ min: 65522, max: 65535 }), fc.integer({ min: 1, max: 65535 })),
    memcached: fc.oneof({ weight: 4, arbitrary: fc.constant(11211) }, fc.integer({ min: 65522, max: 65535 }), fc.integer({ min: 1, max: 65535 })),
    removalGraceMs: fc.integer({ min: 0, max: 60_000 }),
    reuseAfterMs: fc.integer({ min: 0, max: 200_000 }),
    staleAddressMs: fc.integer({ min: 0, max: 60_000 }),
  })
  .map(({ redis, memcached, ...rest }) => ({ ranges: { redis, memcached }, ...rest }));

const topologyOf = (listed: number[]): Topology => ({ targets: listed.map((i) => UNIVERSE[i]!), skipped: [] });
const dnsOf = (s: Step): Map<string, Resolution> => new Map(UNIVERSE.map((u, i) => [u.address, s.dns[i]!]));

t.test(`ports: unique, in range, sticky, quarantined, never removed without an answer (${RUNS} sequences)`, async (t) => {
  let sequences = 0;
  let steps = 0;
  let exhaustedSeen = 0;
  fc.assert(
    fc.property(policyArb, fc.array(step, { minLength: 1, maxLength: 12 }), (policy, sequence) => {
      sequences++;
      let state: PortState = emptyPortState();
      let now = 1_700_000_000_000;
      const firstPort = new Map<string, number>();
      const releasedAt = new Map<string, { port: number; at: number }>(); // by key
      const portReleased = new Map<number, { key: string; at: number }>();
      for (const s of sequence) {
        steps++;
        now += s.dtMs;
        const before = state;
        const next = planForwards(state, { ...(s.listed ? { topology: topologyOf(s.listed) } : {}), resolutions: dnsOf(s) }, policy, now);
        const ports = next.state.entries.map((e) => e.listenPort);
        if (new Set(ports).size !== ports.length) throw new Error(`duplicate port in ${JSON.stringify(ports)}`);
        for (const e of next.state.entries) {
          const start = policy.ranges[portFamilyOf(ENGINE_OF.get(e.key)!)];
          if (e.listenPort < start || e.listenPort > 65535 || !Number.isInteger(e.listenPort)) {
            throw new Error(`${e.key} got ${e.listenPort}, outside ${start}-65535`);
          }
          const had = before.entries.find((b) => b.key === e.key);
          if (had && had.listenPort !== e.listenPort) throw new Error(`${e.key} moved from ${had.listenPort} to ${e.listenPort} while present`);
          if (!had) {
            const gone = releasedAt.get(e.key);
            if (gone && now - gone.at < policy.reuseAfterMs && gone.port !== e.listenPort) {
              throw new Error(`${e.key} came back within reuseAfter and got ${e.listenPort}, not its old ${gone.port}`);
            }
            const holder = portReleased.get(e.listenPort);
            if (holder && holder.key !== e.key && now - holder.at < policy.reuseAfterMs) {
              throw new Error(`port ${e.listenPort} released by ${holder.key} ${now - holder.at} ms ago went to ${e.key}`);
            }
            firstPort.set(e.key, firstPort.get(e.key) ?? e.listenPort);
          }
        }
        for (const b of before.entries) {
          if (!next.state.entries.some((e) => e.key === b.key)) {
            releasedAt.set(b.key, { port: b.listenPort, at: now });
            portReleased.set(b.listenPort, { key: b.key, at: now });
          }
        }
        if (s.listed === null) {
          const keys = (p: PortState) => p.entries.map((e) => `${e.key}@${e.listenPort}`).join(',');
          if (keys(next.state) !== keys(before)) throw new Error(`no API answer, yet the forwards changed: ${keys(before)} → ${keys(next.state)}`);
          if (next.events.some((e) => e.type === 'removed' || e.type === 'added' || e.type === 'draining')) throw new Error('membership event without an API answer');
        } else {
          for (const i of s.listed) {
            const key = UNIVERSE[i]!.key;
            const placed = next.state.entries.some((e) => e.key === key);
            const exhausted = next.events.some((e) => e.type === 'ports-exhausted' && e.key === key);
            if (!placed && !exhausted) throw new Error(`${key} is listed but has neither a port nor an exhausted event`);
            if (exhausted) exhaustedSeen++;
          }
        }
        state = next.state;
      }
    }),
    params,
  );
  t.equal(sequences, RUNS, `${sequences} sequences, ${steps} passes, ${exhaustedSeen} port-exhaustion events checked`);
});

t.test(`allocatePorts alone: unique, never on a taken or quarantined port (${RUNS} cases)`, async (t) => {
  let allocations = 0;
  const entryArb = fc.record({ index: fc.integer({ min: 0, max: UNIVERSE.length - 1 }), port: fc.integer({ min: 1, max: 65535 }) });
  fc.assert(
    fc.property(
      fc.uniqueArray(entryArb, { selector: (e) => e.index, maxLength: 8 }).filter((es) => new Set(es.map((e) => e.port)).size === es.length),
      fc.array(fc.record({ port: fc.integer({ min: 6370, max: 6400 }), key: fc.constantFrom(...UNIVERSE.map((u) => u.key)), age: fc.integer({ min: 0, max: 100 }) }), { maxLength: 6 }),
      fc.subarray(UNIVERSE.map((_, i) => i)),
      fc.integer({ min: 6370, max: 6390 }),
      (held, releasedRaw, fresh, start) => {
        allocations++;
        const now = 1000;
        const entries = held.map(({ index, port }) => ({ ...UNIVERSE[index]!, listenPort: port }));
        const heldKeys = new Set(entries.map((e) => e.key));
        const released = releasedRaw.map((r) => ({ port: r.port, key: r.key, releasedAt: now - r.age }));
        const targets = fresh.map((i) => UNIVERSE[i]!).filter((u) => !heldKeys.has(u.key));
        const { ports, exhausted } = allocatePorts(targets, { entries, released }, { redis: start, memcached: start + 2 }, now, 50);
        const all = [...ports.values()];
        if (new Set(all).size !== all.length) throw new Error('two new targets share a port');
        for (const [key, port] of ports) {
          if (entries.some((e) => e.listenPort === port)) throw new Error(`${key} got ${port}, which an entry holds`);
          const quarantined = released.filter((r) => r.port === port && now - r.releasedAt < 50);
          if (quarantined.length > 0 && !released.some((r) => r.key === key && r.port === port)) {
            throw new Error(`${key} got quarantined port ${port}`);
          }
          if (port > 65535) throw new Error(`port ${port} out of range`);
        }
        if (ports.size + exhausted.length !== targets.length) throw new Error('a target got neither a port nor an exhausted mark');
      },
    ),
    params,
  );
  t.equal(allocations, RUNS, `${allocations} allocations`);
});

// Address mode: the pool and the mode change between passes too (a reload).
const POOL = ['10.0.9.21', '10.0.9.22', '10.0.9.23', '10.0.9.24', '10.0.9.25', '10.0.9.26'];
const SERVERLESS: DiscoveredTarget[] = [6379, 6380].map((port) => ({
  key: `${port === 6379 ? 'serverless' : 'serverless-reader'}/sls`, kind: port === 6379 ? 'serverless' : 'serverless-reader', engine: 'valkey',
  serverlessCacheName: 'sls', tls: true, address: 'sls.serverless.cache.example', targetPort: port,
}));
const WIDE = [...UNIVERSE, ...SERVERLESS];
const addressStep = fc.record({
  listed: fc.option(fc.subarray(WIDE.map((_, i) => i)), { nil: null, freq: 4 }),
  dtMs: fc.integer({ min: 0, max: 40_000 }),
  // null: port mode this pass; else the pool, in config order.
  pool: fc.option(fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: POOL.length }), { nil: null, freq: 5 }),
});

t.test(`address mode: no two targets ever share an (address, port); sticky, quarantined, native ports (${RUNS} sequences)`, async (t) => {
  let sequences = 0;
  let fallbacks = 0;
  let shared = 0;
  fc.assert(
    fc.property(policyArb, fc.array(addressStep, { minLength: 1, maxLength: 10 }), (basePolicy, sequence) => {
      sequences++;
      let state: PortState = emptyPortState();
      let now = 1_700_000_000_000;
      let lastPool: string[] | null = null;
      const freed = new Map<string, { key: string; name: string; at: number }>(); // address → who released it, when
      for (const s of sequence) {
        now += s.dtMs;
        const policy: ForwardPolicy = { ...basePolicy, ranges: { redis: 6379, memcached: 11211 }, ...(s.pool ? { listenAddresses: s.pool } : {}) };
        const before = state;
        const resolutions = new Map(WIDE.map((u, i) => [u.address, { ok: true as const, ip: `10.1.0.${i + 1}` }]));
        const next = planForwards(state, { ...(s.listed ? { topology: { targets: s.listed.map((i) => WIDE[i]!), skipped: [] } } : {}), resolutions }, policy, now);
        const clash = listenerClash(next.forwards);
        if (clash) throw new Error(`${clash[0].key} and ${clash[1].key} share ${clash[1].listenAddress}:${clash[1].listenPort}`);
        renderRules(
          next.forwards.flatMap((f) => (f.targetIp ? [{ key: f.key, engine: f.engine, listenPort: f.listenPort, targetIp: f.targetIp, targetPort: f.targetPort, ...(f.listenAddress ? { listenAddress: f.listenAddress } : {}) }] : [])),
          { inboundInterface: 'eth0', allowedSources: ['0.0.0.0/0'], snat: 'masquerade' },
        );
        for (const e of next.state.entries) {
          if (!s.pool) {
            if (e.listenAddress !== undefined) throw new Error(`port mode, yet ${e.key} listens on ${e.listenAddress}`);
            continue;
          }
          if (e.fallback) {
            fallbacks++;
            if (e.listenAddress !== s.pool[0]) throw new Error(`fallback ${e.key} on ${e.listenAddress}, not the first address ${s.pool[0]}`);
            continue;
          }
          if (!e.listenAddress || !s.pool.includes(e.listenAddress)) throw new Error(`${e.key} listens on ${e.listenAddress}, outside the pool ${s.pool}`);
          if (e.listenPort !== e.targetPort) throw new Error(`${e.key} listens on ${e.listenPort}, not its native ${e.targetPort}`);
          const had = before.entries.find((b) => b.key === e.key);
          const samePlace = had && lastPool && s.pool.includes(had.listenAddress ?? '') && !had.fallback && had.targetPort === e.targetPort;
          if (samePlace && had.listenAddress !== e.listenAddress) throw new Error(`${e.key} moved from ${had.listenAddress} to ${e.listenAddress} while its address was still in the pool`);
          if (!had || had.listenAddress !== e.listenAddress) {
            const holder = freed.get(e.listenAddress);
            // A target of the same DNS name (a Serverless cache's other endpoint) may share it.
            if (holder && holder.key !== e.key && holder.name !== e.address && now - holder.at < policy.reuseAfterMs) throw new Error(`${e.listenAddress} freed by ${holder.key} ${now - holder.at} ms ago went to ${e.key}`);
          }
          if (next.state.entries.some((o) => o !== e && o.listenAddress === e.listenAddress && !o.fallback)) shared++;
        }
        // Who freed which address: an own-address entry that is gone, or that moved off it.
        for (const b of before.entries) {
          if (b.listenAddress === undefined || b.fallback) continue;
          const now_ = next.state.entries.find((e) => e.key === b.key);
          if (!now_ || now_.listenAddress !== b.listenAddress) freed.set(b.listenAddress, { key: b.key, name: b.address, at: now });
        }
        lastPool = s.pool;
        state = next.state;
      }
    }),
    params,
  );
  t.equal(sequences, RUNS, `${sequences} sequences; ${fallbacks} fallback placements and ${shared} shared-address placements seen`);
  t.ok(fallbacks > 0 && shared > 0, 'the generator reaches exhaustion and shared names');
});

const baseConfig = (extra: Partial<{ snat: string; allowed: string[] }> = {}): Config =>
  validateConfig(
    {
      aws: { region: 'us-east-1' },
      forward: { inboundInterface: 'eth0', allowedSources: extra.allowed ?? ['198.51.100.27/32'], snat: extra.snat ?? 'masquerade' },
      discovery: { removalGrace: '30s' },
      ports: { reuseAfter: '1m' },
    },
    'property test',
  ).config;
const CONFIGS = [
  baseConfig(),
  baseConfig({ snat: '10.9.9.9', allowed: ['198.51.100.0/24', '203.0.113.7/32'] }),
  baseConfig({ allowed: ['0.0.0.0/0'] }),
  // Address mode with fewer addresses than targets, so fallbacks are in play too.
  { ...baseConfig(), forward: { ...baseConfig().forward, listenAddresses: ['10.0.9.21', '10.0.9.22', '10.0.9.23'].map((address, i) => ({ address, public: `203.0.113.${i + 1}` })) } },
];

// What a host may already hold: another tool's rules (Docker's), and leftovers
// of ours (a stale DNAT, a duplicated jump, an old chain) that a pass must clean up.
const LEFTOVERS = [
  { table: 'nat', chain: 'PREROUTING', line: '-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING' },
  { table: 'nat', chain: 'POSTROUTING', line: '-A POSTROUTING -m comment --comment cachenat -j CACHENAT-POSTROUTING' },
  { table: 'filter', chain: 'FORWARD', line: '-A FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD' },
  { table: 'nat', chain: 'CACHENAT-DNAT', line: '-A CACHENAT-DNAT -p tcp -m tcp --dport 6390 -m comment --comment "cachenat redis node/old/0001" -j DNAT --to-destination 10.0.0.9:6379' },
  { table: 'nat', chain: 'CACHENAT-OLD', line: '' },
] as const;

function hostKernel(foreign: boolean, leftovers: boolean[]) {
  const kernel = foreign ? installedFrom(DOCKER_SAVE) : emptyKernel();
  leftovers.forEach((on, i) => {
    if (!on) return;
    const { table, chain, line } = LEFTOVERS[i]!;
    const chains = kernel[table].chains;
    if (!chains.has(chain)) chains.set(chain, { policy: '-', rules: [] });
    if (line) chains.get(chain)!.rules.push(line);
  });
  return kernel;
}

// Key order in the objects is not meaning: compare with sorted keys.
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));

t.test(`a pass applied twice changes nothing the second time (${RUNS} cases)`, async (t) => {
  let cases = 0;
  let restores = 0;
  fc.assert(
    fc.property(
      fc.array(step, { minLength: 0, maxLength: 2 }),
      step,
      fc.integer({ min: 0, max: CONFIGS.length - 1 }),
      fc.boolean(),
      fc.array(fc.boolean(), { minLength: LEFTOVERS.length, maxLength: LEFTOVERS.length }),
      (history, last, configIndex, foreign, leftovers) => {
        cases++;
        const config = CONFIGS[configIndex]!;
        let kernel = hostKernel(foreign, leftovers);
        let state = emptyPortState();
        let now = 1_700_000_000_000;
        // Some history first, so the second-pass check also starts from draining, stale and quarantined states.
        for (const s of [...history, last]) {
          now += s.dtMs;
          const input = { config, state, resolutions: dnsOf(s), installed: kernel, now, ...(s.listed ? { topology: topologyOf(s.listed) } : {}) };
          const first = planPass(input);
          kernel = applyRestore(kernel, first.changes.restore);
          if (first.changes.restore !== null) restores++;
          const second = planPass({ ...input, state: first.state, installed: kernel });
          if (second.changes.restore !== null) throw new Error(`second pass still wants to write:\n${second.changes.restore}`);
          if (canonical(second.state) !== canonical(first.state)) throw new Error(`second pass changed the port map:\n${JSON.stringify(first.state)}\n${JSON.stringify(second.state)}`);
          if (second.events.length > 0) throw new Error(`second pass reported events: ${JSON.stringify(second.events)}`);
          if (second.rulesDigest !== first.rulesDigest) throw new Error('digest differs between identical passes');
          state = first.state;
        }
      },
    ),
    params,
  );
  t.equal(cases, RUNS, `${cases} cases, ${restores} simulated restores, each followed by a pass that wrote nothing`);
});
