import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateStore, parseState, serializeState } from '../../src/ports/state-store.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { scratchDir } from '../support/scratch.js';

const good: PortState = {
  version: 1,
  entries: [{ key: 'node/c1/0001', kind: 'node', engine: 'redis', cacheClusterId: 'c1', cacheNodeId: '0001', address: 'c1.example', targetPort: 6379, listenPort: 6379, ip: '10.0.1.1', resolvedAt: 5 }],
  released: [{ port: 6380, key: 'node/c1/0002', releasedAt: 7 }],
};

t.test('round trip', async (t) => {
  t.same(parseState(serializeState(good)), { status: 'ok', state: good });
});

t.test('truncated, hostile or inconsistent files are corrupt, never half-used', async (t) => {
  const text = serializeState(good);
  const cases: Record<string, string> = {
    truncated: text.slice(0, text.length / 2),
    empty: '',
    'wrong version': text.replace('"version": 1', '"version": 2'),
    'ip with a shell word': text.replace('10.0.1.1', '10.0.1.1 -j ACCEPT'),
    'port out of range': text.replace('"listenPort": 6379', '"listenPort": 70000'),
    'unknown key': text.replace('"version": 1', '"version": 1, "extra": true'),
    'duplicate port': JSON.stringify({ ...good, entries: [good.entries[0], { ...good.entries[0], key: 'node/c1/0002', cacheNodeId: '0002' }] }),
  };
  for (const [name, body] of Object.entries(cases)) t.equal(parseState(body).status, 'corrupt', name);
});

t.test('StateStore writes atomically, only when changed, and reads back', async (t) => {
  const dir = scratchDir(t, 'state');
  const store = new StateStore(join(dir, 'nested'));
  t.equal((await store.load()).status, 'missing');
  t.equal(await store.save(good), true);
  t.equal(await store.save(good), false, 'unchanged state is not rewritten');
  const mtime = statSync(store.path).mtimeMs;
  t.equal(await store.save(structuredClone(good)), false, 'nor an equal state built again');
  t.equal(statSync(store.path).mtimeMs, mtime);
  const moved = structuredClone(good);
  moved.entries[0]!.listenPort += 1;
  t.equal(await store.save(moved), true, 'a changed state is written');
  t.same(JSON.parse(readFileSync(store.path, 'utf8')).entries[0].listenPort, good.entries[0]!.listenPort + 1);
  moved.entries[0]!.listenPort -= 1;
  t.equal(await store.save(moved), true, 'the store kept its own copy: a state changed back after being saved is written again');
  t.equal(await store.save(good), false);
  t.equal(statSync(store.path).mode & 0o777, 0o644);
  t.same(await new StateStore(join(dir, 'nested')).load(), { status: 'ok', state: good });
  writeFileSync(store.path, '{"version":1,"entr');
  t.equal((await new StateStore(join(dir, 'nested')).load()).status, 'corrupt');
  t.ok(readFileSync(store.path, 'utf8'));
});

t.test('address mode: listen addresses, fallbacks and quarantined addresses survive the file; a shared (address, port) is corrupt', async (t) => {
  const entry = (node: string, listenAddress: string, listenPort: number, extra: object = {}) => ({
    key: `node/c1/${node}`, kind: 'node' as const, engine: 'redis' as const, cacheClusterId: 'c1', cacheNodeId: node, address: `${node}.example`, targetPort: 6379, listenAddress, listenPort, ...extra,
  });
  const state: PortState = {
    version: 1,
    entries: [entry('0001', '10.0.9.21', 6379), entry('0002', '10.0.9.22', 6379), entry('0003', '10.0.9.21', 6380, { fallback: true })],
    released: [],
    releasedAddresses: [{ address: '10.0.9.23', port: 6379, key: 'node/c2/0001', releasedAt: 50 }, { address: '10.0.9.24', key: 'node/c2/0002', releasedAt: 51 }],
  };
  const loaded = parseState(serializeState(state));
  t.same(loaded, { status: 'ok', state }, 'round trip (a quarantined address without a port: written before ports were kept)');
  const clash = JSON.parse(serializeState(state)) as { entries: { listenAddress?: string; listenPort: number }[] };
  clash.entries[1]!.listenAddress = '10.0.9.21';
  t.match(parseState(JSON.stringify(clash)), { status: 'corrupt', problem: /node\/c1\/0001 and node\/c1\/0002 both listen on 10\.0\.9\.21:6379/ });
  delete clash.entries[1]!.listenAddress;
  t.match(parseState(JSON.stringify(clash)), { status: 'corrupt', problem: /both listen on :6379/ }, 'a port-mode entry takes its port on every address');
});

// Everything a pass would refuse is refused here, so the map counts as lost
// (rebuilt from the kernel) instead of failing every pass in a restart loop;
// and everything the daemon writes reads back.
t.test('the codec agrees with the writer and the renderer', async (t) => {
  const e = good.entries[0]!;
  const corrupt = (name: string, state: unknown, problem: RegExp) => t.match(parseState(JSON.stringify(state)), { status: 'corrupt', problem }, name);
  corrupt('one key twice', { ...good, entries: [e, { ...e, listenPort: 6381 }] }, /node\/c1\/0001 appears twice/);
  corrupt('the metadata address as a target', { ...good, entries: [{ ...e, ip: '169.254.169.254' }] }, /entries\.0\.ip: expected an IPv4 address a forward may point at/);
  corrupt('loopback among several', { ...good, entries: [{ ...e, ip: '10.0.1.1', ips: ['10.0.1.1', '127.0.0.1'] }] }, /entries\.0\.ips\.1/);
  corrupt('ips not starting with ip', { ...good, entries: [{ ...e, ip: '10.0.1.2', ips: ['10.0.1.1', '10.0.1.2'] }] }, /ips must start with ip/);
  corrupt('the same address twice', { ...good, entries: [{ ...e, ip: '10.0.1.1', ips: ['10.0.1.1', '10.0.1.1'] }] }, /distinct/);
  corrupt('a fallback without its address', { ...good, entries: [{ ...e, fallback: true }] }, /fallback/);
  corrupt('lastIps beside ip', { ...good, entries: [{ ...e, lastIps: ['10.0.1.9'] }] }, /lastIps/);
  corrupt('a quarantined port with a hostile key', { ...good, released: [{ port: 6390, key: 'x -j ACCEPT', releasedAt: 1 }] }, /released\.0\.key/);
  corrupt('one port quarantined twice', { ...good, released: [good.released[0], { ...good.released[0], key: 'node/c1/0003' }] }, /port 6380 is quarantined twice/);
  const many = Array.from({ length: 64 }, (_, i) => `10.0.${i >> 8}.${(i % 254) + 1}`);
  const sixtyFour = { ...good, entries: [{ ...e, ip: many[0], ips: many }] };
  t.same(parseState(serializeState(sixtyFour as PortState)), { status: 'ok', state: sixtyFour }, 'the most addresses a name keeps (MAX_TARGET_IPS) read back');
  corrupt('more than that', { ...good, entries: [{ ...e, ip: many[0], ips: [...many, '10.0.9.9'] }] }, /entries\.0\.ips/);
  const unresolved = { ...good, entries: [{ ...e, ip: undefined, lastIps: ['10.0.1.1'] }] };
  delete unresolved.entries[0]!.ip;
  t.same(parseState(serializeState(unresolved as PortState)), { status: 'ok', state: unresolved }, 'an unresolved entry with the addresses its flows go to');
});

t.test('stale temp files of dead writers are tidied; a live writer\'s is not', async (t) => {
  const dir = scratchDir(t, 'state');
  const dead = join(dir, '.ports.json.999999999.1.tmp');
  const live = join(dir, `.ports.json.${process.pid}.2.tmp`);
  writeFileSync(dead, '{"half');
  writeFileSync(live, '{"half');
  t.equal((await new StateStore(dir).load()).status, 'missing');
  t.notOk(existsSync(dead));
  t.ok(existsSync(live));
});

t.test('the same state always serializes to the same bytes, whatever the key order', async (t) => {
  const shuffled = JSON.parse(JSON.stringify(good, Object.keys(good.entries[0]!).reverse().concat(['version', 'entries', 'released', 'port', 'releasedAt'])));
  t.equal(serializeState(shuffled as PortState), serializeState(good));
});
