// The kernel's copy of the port map: every record written reads back as the
// same record, fits in a comment, and the whole map is rebuilt from it.

import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { MAX_COMMENT_LENGTH, mapRecordLine, mapRecordText, parseMapRecord, type MapRecord } from '../../../src/core/grammar.js';
import { mapRecordsOf, pendingForgets, readMapChain, renderMapChain } from '../../../src/core/netfilter/map-chain.js';
import { recoverState } from '../../../src/core/netfilter/recover.js';
import { parseSave } from '../../../src/core/netfilter/parse-save.js';
import type { FlowFilter } from '../../../src/core/model.js';
import type { PortEntry, PortState } from '../../../src/core/ports/port-state.js';
import { parseState, serializeState } from '../../../src/core/ports/port-map-codec.js';

const RUNS = Number(process.env.GRAMMAR_RUNS ?? 3000);

const node = (cluster: string, n: string, more: Pick<PortEntry, 'address' | 'listenPort'> & Partial<PortEntry>): PortEntry => ({
  key: `node/${cluster}/${n}`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: n, targetPort: 6379, ...more,
});
const SAMPLE: PortState = {
  version: 1,
  entries: [
    node('a', '0001', { address: 'a-1.cache.example', listenPort: 6385, ip: '10.0.1.1', resolvedAt: 5, tls: true }),
    node('a', '0002', { address: 'a-2.cache.example', listenPort: 6386, lastIps: ['10.0.1.2', '10.0.1.3'], unresolvedSince: 7, tls: false }), // unresolved
    node('b', '0001', { address: 'b-1.cache.example', listenAddress: '10.0.9.21', listenPort: 6379, ip: '10.0.2.1', ips: ['10.0.2.1', '10.0.2.2'], resolvedAt: 5 }),
    node('b', '0002', { address: 'b-2.cache.example', listenAddress: '10.0.9.21', listenPort: 6379 + 2, fallback: true, ip: '10.0.2.3', resolvedAt: 5 }),
    node('c', '0001', { address: 'c-1.cache.example', listenAddress: '10.0.9.22', listenPort: 6379, fallback: true, ip: '10.0.3.1', resolvedAt: 5 }), // a fallback on its native port
    node('d', '0001', { address: 'd-1.cache.example', listenPort: 6387 }), // never resolved
  ],
  released: [{ port: 6390, key: 'node/gone/0001', releasedAt: 1_700_000_000_000 }],
  releasedAddresses: [
    { address: '10.0.9.23', port: 6379, key: 'node/left/0001', releasedAt: 1_700_000_000_001 },
    { address: '10.0.9.24', key: 'node/older/0001', releasedAt: 1_700_000_000_002 },
  ],
};
const FORGET: FlowFilter[] = [
  { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.9', cause: 'moved' },
  { kind: 'listener', listenAddress: '10.0.9.21', listenPort: 6381, targetIp: '10.0.2.9', cause: 'relocated' },
  { kind: 'source', source: '203.0.113.0/24', cause: 'source' },
];

const tableOf = (lines: string[]) => parseSave(['*nat', ':CACHENAT-MAP - [0:0]', ...lines, 'COMMIT', ''].join('\n'));
const essence = (s: PortState) => ({ ...s, entries: s.entries.map(({ resolvedAt: _r, unresolvedSince: _u, ip: _i, ips: _s, lastIps: _l, ...e }) => e) });

t.test('the map and the flows to forget, written as records and read back whole', async (t) => {
  const lines = renderMapChain(SAMPLE, FORGET);
  t.same(lines.slice(0, 3), [
    '-A CACHENAT-MAP -m comment --comment "cachenat entry node/a/0001 redis :6385 6379 tls a-1.cache.example"',
    '-A CACHENAT-MAP -m comment --comment "cachenat entry node/a/0002 redis :6386 6379 plain a-2.cache.example"',
    '-A CACHENAT-MAP -m comment --comment "cachenat stale node/a/0002 10.0.1.2"',
  ]);
  t.ok(lines.includes('-A CACHENAT-MAP -m comment --comment "cachenat quarantined node/older/0001 10.0.9.24:* 1700000000002"'), 'an address quarantined before ports were kept: every port');
  t.ok(lines.includes('-A CACHENAT-MAP -m comment --comment "cachenat forget source 203.0.113.0/24"'));
  const { state, from } = recoverState(tableOf(lines), 99);
  t.equal(from, 'map');
  t.same(essence(state), essence(SAMPLE), 'listeners, fallbacks (one on its native port too), TLS, names and quarantines');
  t.same(state.entries.find((e) => e.key === 'node/a/0002')?.lastIps, ['10.0.1.2', '10.0.1.3'], "an unresolved target's last addresses");
  t.equal(state.entries.find((e) => e.key === 'node/a/0001')?.ip, undefined, 'addresses come from the DNAT rules, none here');
  t.same(pendingForgets(tableOf(lines)), [...FORGET].sort((a, b) => (mapRecordText({ type: 'forget', filter: a }) < mapRecordText({ type: 'forget', filter: b }) ? -1 : 1)));
  t.equal(parseState(serializeState(state)).status, 'ok', 'what recovery builds, the codec reads');
});

t.test('a record the kernel shows that is not exactly one of ours is skipped', async (t) => {
  const bad = [
    'cachenat entry node/a/0001 redis :06379 6379 -', // not canonical
    'cachenat entry node/a/0001 redis :6379 6379 tls,plain',
    'cachenat entry node/a/0001 redis :6379 6379 fallback', // a fallback without an address
    'cachenat entry node/a/0001 mysql :6379 6379 -',
    'cachenat entry other/x redis :6379 6379 -',
    'cachenat entry node/a/0001 redis 127.0.0.1:6379 6379 -',
    'cachenat entry node/a/0001 redis :6379 6379 - a.example extra',
    'cachenat stale node/a/0001 169.254.169.254',
    'cachenat quarantined node/a/0001 :70000 5',
    'cachenat quarantined node/a/0001 :* 5', // every port only with an address
    'cachenat quarantined node/a/0001 :6380 5 fallback', // a fallback's port names its address
    'cachenat quarantined node/a/0001 10.0.9.21:* 5 fallback', // and its port
    'cachenat quarantined node/a/0001 10.0.9.21:6380 5 tls',
    'cachenat forget source 10.0.0.1/8',
    'cachenat forget sideways :6379 10.0.0.1',
    'cachenat something else',
    'someone else',
  ];
  for (const text of bad) t.equal(parseMapRecord(text), undefined, text);
  t.same(readMapChain(tableOf(bad.map((text) => `-A CACHENAT-MAP -m comment --comment "${text}"`))), []);
  t.equal(readMapChain(parseSave('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n')), undefined, 'no chain: rules from before the kernel carried the map');
});

t.test(`every record fits in a comment and reads back as written (${RUNS} cases)`, async (t) => {
  const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/);
  const key = fc.oneof(fc.tuple(id, id).map(([c, n]) => `node/${c}/${n}`), id.map((g) => `primary/${g}`), id.map((s) => `serverless-reader/${s}`));
  const octet = fc.integer({ min: 1, max: 223 });
  const ip = fc.tuple(fc.constantFrom(10, 172, 192, 198), octet, octet, octet).map((p) => p.join('.'));
  const port = fc.integer({ min: 1, max: 65535 });
  const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,61}[a-z0-9]$/);
  const longLabel = fc.stringMatching(/^[a-z][a-z0-9-]{48,61}[a-z0-9]$/);
  const name = fc.oneof(fc.array(label, { minLength: 2, maxLength: 6 }), fc.array(longLabel, { minLength: 3, maxLength: 4 })).map((l) => l.join('.').slice(0, 253).replace(/[.-]+$/, ''));
  const record: fc.Arbitrary<MapRecord> = fc.oneof(
    fc.record({ type: fc.constant('entry' as const), key, engine: fc.constantFrom('redis' as const, 'valkey' as const, 'memcached' as const), listenAddress: fc.option(ip, { nil: undefined }), listenPort: port, targetPort: port, tls: fc.option(fc.boolean(), { nil: undefined }), address: name }).map(({ listenAddress, tls, ...r }) => ({
      ...r,
      ...(listenAddress === undefined ? {} : { listenAddress, fallback: true as const }),
      ...(tls === undefined ? {} : { tls }),
    })),
    fc.record({ type: fc.constant('stale' as const), key, ip }),
    fc
      .record({ type: fc.constant('quarantined' as const), key, listenAddress: fc.option(ip, { nil: undefined }), listenPort: port, releasedAt: fc.integer({ min: 0, max: 2 ** 50 }), fallback: fc.boolean() })
      .map(({ listenAddress, fallback, ...r }) => ({ ...r, ...(listenAddress === undefined ? {} : { listenAddress, ...(fallback ? { fallback: true as const } : {}) }) })),
    fc.record({ type: fc.constant('forget' as const), filter: fc.record({ kind: fc.constant('listener' as const), listenPort: port, targetIp: ip, cause: fc.constantFrom('moved' as const, 'removed' as const, 'refused' as const, 'relocated' as const) }) }),
  );
  let cases = 0;
  let addressLeftOut = 0;
  fc.assert(
    fc.property(record, (r) => {
      cases++;
      const text = mapRecordText(r);
      if (text.length > MAX_COMMENT_LENGTH) throw new Error(`${text.length} characters: ${text}`);
      const back = parseMapRecord(text);
      const expected = r.type === 'entry' && !text.endsWith(` ${r.address}`) ? (addressLeftOut++, (({ address: _a, ...rest }) => rest)(r)) : r;
      if (!isDeepStrictEqual(JSON.parse(JSON.stringify(back ?? null)), JSON.parse(JSON.stringify(expected)))) throw new Error(`read back ${JSON.stringify(back)} from ${text}`);
      if (!mapRecordLine(r).startsWith('-A CACHENAT-MAP -m comment --comment "cachenat ')) throw new Error('not a map chain line');
    }),
    { numRuns: RUNS },
  );
  t.equal(cases, RUNS, `${cases} records, ${addressLeftOut} too long to keep the name (recovery then uses an address, or keeps the listener quarantined for it)`);
  t.ok(addressLeftOut > 0, 'the generator reaches names too long for a comment');
});

t.test('an entry whose name did not fit and has no address is kept as its listener, quarantined for it', async (t) => {
  const long = `${'n'.repeat(60)}.${'a'.repeat(60)}.${'m'.repeat(60)}.${'e'.repeat(60)}.example`;
  const key = `node/${'c'.repeat(64)}/${'n'.repeat(64)}`;
  const state: PortState = { version: 1, entries: [{ key, kind: 'node', engine: 'redis', cacheClusterId: 'c'.repeat(64), cacheNodeId: 'n'.repeat(64), address: long, targetPort: 6379, listenPort: 6400 }], released: [] };
  const [record] = mapRecordsOf(state, []);
  t.ok(mapRecordText(record!).length <= MAX_COMMENT_LENGTH);
  t.same(recoverState(tableOf(renderMapChain(state, [])), 42).state, { version: 1, entries: [], released: [{ port: 6400, key, releasedAt: 42 }] });
});
