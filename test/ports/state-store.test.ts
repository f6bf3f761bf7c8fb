import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateStore, parseState, serializeState, stateFromRecoveredRules } from '../../src/ports/state-store.js';
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

t.test('recovery from installed rules rebuilds entries by key', async (t) => {
  const state = stateFromRecoveredRules(
    [
      { key: 'primary/rg1', engine: 'valkey', listenPort: 6379, targetIp: '10.0.0.5', targetPort: 6379 },
      { key: 'node/mc/0001', engine: 'memcached', listenPort: 11211, targetIp: '10.0.0.6', targetPort: 11211 },
      { key: 'node/mc/0002', engine: 'memcached', listenPort: 11211, targetIp: '10.0.0.7', targetPort: 11211 },
    ],
    99,
  );
  t.same(state.entries.map((e) => [e.key, e.kind, e.listenPort, e.ip, e.replicationGroupId ?? e.cacheClusterId]), [
    ['node/mc/0001', 'node', 11211, '10.0.0.6', 'mc'],
    ['primary/rg1', 'primary', 6379, '10.0.0.5', 'rg1'],
  ]);
});

t.test('address mode: listen addresses and fallbacks survive the file and a rebuild from the rules; a shared (address, port) is corrupt', async (t) => {
  const recovered = stateFromRecoveredRules(
    [
      { key: 'node/c1/0001', engine: 'redis', listenAddress: '10.0.9.21', listenPort: 6379, targetIp: '10.0.0.5', targetPort: 6379 },
      { key: 'node/c1/0002', engine: 'redis', listenAddress: '10.0.9.22', listenPort: 6379, targetIp: '10.0.0.6', targetPort: 6379 },
      { key: 'node/c1/0003', engine: 'redis', listenAddress: '10.0.9.21', listenPort: 6380, targetIp: '10.0.0.7', targetPort: 6379 },
      { key: 'node/c1/0004', engine: 'redis', listenAddress: '10.0.9.22', listenPort: 6379, targetIp: '10.0.0.8', targetPort: 6379 },
    ],
    99,
  );
  t.same(recovered.entries.map((e) => [e.key, e.listenAddress, e.listenPort, e.fallback]), [
    ['node/c1/0001', '10.0.9.21', 6379, undefined],
    ['node/c1/0002', '10.0.9.22', 6379, undefined],
    ['node/c1/0003', '10.0.9.21', 6380, true],
  ], 'the second rule on one (address, port) is not the kernel\'s: dropped');
  const withQuarantine = { ...recovered, releasedAddresses: [{ address: '10.0.9.23', key: 'node/c2/0001', releasedAt: 50 }] };
  const loaded = parseState(serializeState(withQuarantine));
  t.equal(loaded.status, 'ok');
  t.same(loaded.state, withQuarantine, 'round trip');
  const clash = JSON.parse(serializeState(recovered)) as { entries: { listenAddress?: string; listenPort: number }[] };
  clash.entries[1]!.listenAddress = '10.0.9.21';
  t.match(parseState(JSON.stringify(clash)), { status: 'corrupt', problem: /node\/c1\/0001 and node\/c1\/0002 both listen on 10\.0\.9\.21:6379/ });
  delete clash.entries[1]!.listenAddress;
  t.match(parseState(JSON.stringify(clash)), { status: 'corrupt', problem: /both listen on :6379/ }, 'a port-mode entry takes its port on every address');
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
