// I5 on maps nobody planned: a port map from outside the process (a
// hand-edited state file, an HA map item another version wrote) that the
// codec accepts is one every pass can plan from and render, write back
// byte for byte, and rebuild from the kernel after writing it.

import t from 'tap';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import { parseState, serializeState } from '../../src/core/ports/port-map-codec.js';
import { planPass } from '../../src/core/planner/plan.js';
import { emptyInstalledRules } from '../../src/core/netfilter/installed.js';
import { recoverState } from '../../src/core/netfilter/recover.js';
import { applyRestore } from '../support/kernel-sim.js';

const RUNS = Number(process.env.INVARIANTS_RUNS ?? 10_000);

const portConfig = validateConfig({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['10.1.0.0/16', '203.0.113.0/24'], plaintext: 'refuse' } }, 'codec').config;
const addressConfig = validateConfig(
  { aws: { region: 'us-east-1' }, forward: { allowedSources: ['10.1.0.0/16'], listenAddresses: [{ address: '10.0.9.21', public: '203.0.113.1' }, { address: '10.0.9.22', public: '203.0.113.2' }] } },
  'codec',
).config;

// Maps as the daemon writes them (any mode, any resolution state), then often
// one value changed to something just outside what the daemon writes: a
// forbidden address, a key written twice, an engine it does not know…
const KEYS = ['node/a/0001', 'node/a/0002', 'primary/g', 'reader/g', 'configuration/g', 'serverless/s', 'serverless-reader/s'];
const IPS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
const idsOf = (key: string) => {
  const [kind, a, b] = key.split('/');
  return { kind, ...(kind === 'node' ? { cacheClusterId: a, cacheNodeId: b } : kind!.startsWith('serverless') ? { serverlessCacheName: a } : { replicationGroupId: a }) };
};
const entry = (key: string, slot: number) =>
  fc
    .record({
      engine: fc.constantFrom('redis', 'valkey', 'memcached'),
      address: fc.constantFrom('a.cache.example', 'b.cache.example', '10.0.1.5'),
      tls: fc.option(fc.boolean(), { nil: undefined }),
      listener: fc.constantFrom('port', 'address', 'fallback'),
      resolution: fc.constantFrom('none', 'one', 'several', 'last'),
      goneSince: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ engine, address, tls, listener, resolution, goneSince }) => ({
      key,
      ...idsOf(key),
      engine,
      address,
      targetPort: 6379,
      ...(listener === 'port' ? { listenPort: 6390 + slot } : listener === 'address' ? { listenAddress: `10.0.9.${21 + slot}`, listenPort: 6379 } : { listenAddress: '10.0.9.21', listenPort: 6390 + slot, fallback: true }),
      ...(resolution === 'one' ? { ip: IPS[slot % 3], resolvedAt: 1 } : resolution === 'several' ? { ip: '10.0.1.1', ips: ['10.0.1.1', '10.0.1.2'], resolvedAt: 1 } : resolution === 'last' ? { lastIps: ['10.0.1.3'], unresolvedSince: 1 } : {}),
      ...(tls === undefined ? {} : { tls }),
      ...(goneSince === undefined ? {} : { goneSince }),
    }));
type Raw = { version: number; entries: Record<string, unknown>[]; released: Record<string, unknown>[]; releasedAddresses?: Record<string, unknown>[] };
const MUTATIONS: ((s: Raw) => void)[] = [
  (s) => s.entries[0] && (s.entries[0].ip = '169.254.169.254'),
  (s) => s.entries[0] && (s.entries[0].ips = ['10.0.1.1', '127.0.0.1']),
  (s) => s.entries[0] && s.entries.push({ ...s.entries[0], listenPort: 6399, listenAddress: undefined, fallback: undefined }), // one key twice, on a port of its own
  (s) => s.entries[0] && (s.entries[0].engine = 'mysql'),
  (s) => s.entries[0] && (s.entries[0].listenPort = 0),
  (s) => s.entries[0] && (s.entries[0].key = 'node/a -j ACCEPT'),
  (s) => s.entries[0] && (s.entries[0].lastIps = ['10.0.1.9']),
  (s) => s.entries[0] && (s.entries[0].fallback = true),
  (s) => s.entries[0] && (s.entries[0].ips = ['10.0.1.1', '10.0.1.1']),
  (s) => s.entries[0] && (s.entries[0].address = '169.254.169.254'),
  (s) => s.released.push({ port: 6390, key: 'x -j ACCEPT', releasedAt: 1 }),
  (s) => s.released.push({ port: 6391, key: 'node/a/0001', releasedAt: 1 }, { port: 6391, key: 'node/a/0002', releasedAt: 2 }),
];
const state = fc
  .tuple(
    fc.subarray(KEYS, { maxLength: 5 }).chain((keys) => fc.tuple(...keys.map((key, slot) => entry(key, slot)))),
    fc.array(fc.record({ port: fc.integer({ min: 6400, max: 6410 }), key: fc.constantFrom(...KEYS), releasedAt: fc.nat() }), { maxLength: 2 }),
    fc.option(fc.integer({ min: 0, max: MUTATIONS.length - 1 }), { nil: undefined, freq: 2 }),
  )
  .map(([entries, released, mutation]) => {
    const raw: Raw = { version: 1, entries: entries as unknown as Record<string, unknown>[], released: released.filter((r, i) => released.findIndex((o) => o.port === r.port) === i) };
    if (mutation !== undefined) MUTATIONS[mutation]!(raw);
    return JSON.parse(JSON.stringify(raw)) as Raw; // undefined fields gone, as in a file
  });

t.test(`a map the codec accepts is planned, rendered, written back identically and rebuilt from the kernel (${RUNS} maps)`, async (t) => {
  let maps = 0;
  let accepted = 0;
  fc.assert(
    fc.property(state, fc.boolean(), (raw, addressMode) => {
      maps++;
      const loaded = parseState(JSON.stringify(raw));
      if (loaded.status !== 'ok') return;
      accepted++;
      const text = serializeState(loaded.state);
      const again = parseState(text);
      if (again.status !== 'ok' || serializeState(again.state) !== text) throw new Error(`does not read back as written:\n${text}`);
      const config = addressMode ? addressConfig : portConfig;
      const now = 1_700_000_000_000;
      // A restart with DNS down: every entry keeps what the file says (the renderer gets its addresses as they are).
      const resolutions = new Map(loaded.state.entries.map((e) => [e.address, { ok: false as const, error: 'ENOTFOUND' }]));
      const plan = planPass({ config, state: loaded.state, resolutions, installed: emptyInstalledRules(), now, follow: true });
      const kernel = applyRestore(emptyInstalledRules(), plan.changes.restore);
      const rebuilt = recoverState(kernel.nat, now).state;
      const listeners = (s: typeof rebuilt) => s.entries.map((e) => `${e.key} ${e.listenAddress ?? ''}:${e.listenPort}${e.fallback ? ' fallback' : ''}`).sort();
      if (listeners(rebuilt).join() !== listeners(plan.state).join()) throw new Error(`rebuilt ${listeners(rebuilt)} from the kernel, wrote ${listeners(plan.state)}`);
    }),
    { numRuns: RUNS },
  );
  t.equal(maps, RUNS, `${maps} maps, ${accepted} accepted by the codec`);
  t.ok(accepted > RUNS / 3, 'the generator makes enough maps the codec accepts');
});
