// Issue 19: 5,000 targets in an HA pair, in the two-NAT lab. Both daemons
// start on an empty group; the leader allocates every target and writes the
// shared map in chunks; the standby reads it whole. Checked: one port per
// target, each in its engine's range, the same CACHENAT rules on both hosts,
// and the map in DynamoDB (its chunks, how full the fullest is). Opt-in, as
// it takes minutes on a small machine (the daemons resolve 5,000 names and
// write 5,000 DNAT rules each):
//
//   CACHENAT_HA_SCALE=5000 npx tap --disable-coverage --timeout=1800 test/e2e/ha-scale.test.ts

import t from 'tap';
import { compiledLabFile } from '../../lab/lab.js';
import { NAT_NAMES, startHaRig, type NatName } from '../../lab/ha-rig.js';
import { stretch, waitFor } from '../../lab/rig.js';
import type { FakeCluster } from '../../lab/fake-elasticache-model.js';
import type { MapItem } from '../../src/core/ha/items.js';
import type { StoreRead } from '../../src/ha/dynamo-store.js';
import { DNAT_RULE_PATTERN } from '../../src/core/grammar.js';

const TARGETS = Number(process.env.CACHENAT_HA_SCALE ?? 0);
const REDIS_SHARE = 0.8;
const REDIS_IPS = ['198.19.0.11', '198.19.0.12', '198.19.0.13', '198.19.0.14'];
const MEMCACHED_IPS = ['198.19.0.21', '198.19.0.22', '198.19.0.23'];

function target(i: number, redisTargets: number): { cluster: FakeCluster; name: string; ip: string } {
  const redis = i < redisTargets;
  const id = `s${String(i).padStart(5, '0')}`;
  const name = `${id}.scale.0001.use1.cache.amazonaws.com`;
  const ip = redis ? REDIS_IPS[i % REDIS_IPS.length]! : MEMCACHED_IPS[i % MEMCACHED_IPS.length]!;
  return { cluster: { id, engine: redis ? 'redis' : 'memcached', nodes: [{ id: '0001', address: name, port: redis ? 6379 : 11211 }] }, name, ip };
}

/** Listen port → keys, from one host's nat table. */
function dnatPorts(save: string): Map<number, string[]> {
  const rule = new RegExp(`^${DNAT_RULE_PATTERN}$`);
  const ports = new Map<number, string[]>();
  for (const line of save.split('\n')) {
    const m = rule.exec(line);
    if (m) ports.set(Number(m[2]), [...(ports.get(Number(m[2])) ?? []), m[4]!]);
  }
  return ports;
}

t.test(`${TARGETS} targets in an HA pair`, { skip: TARGETS > 0 ? false : 'opt-in: CACHENAT_HA_SCALE=5000 (minutes of lab time)', timeout: 1_800_000 }, async (t) => {
  const redisTargets = Math.round(TARGETS * REDIS_SHARE);
  const all = Array.from({ length: TARGETS }, (_, i) => target(i, redisTargets));
  const began = Date.now();
  const rig = await startHaRig({
    topology: { clusters: all.map((a) => a.cluster) },
    hosts: Object.fromEntries(all.map((a) => [a.name, a.ip])),
    pageSize: 100,
    // The daemon's own defaults for the passes: 5,000 names every 500 ms would only measure the lab.
    settings: { discoveryInterval: '30s', dnsInterval: '5s', logLevel: 'info' },
  });
  t.teardown(() => rig.down());
  t.equal((await rig.cli('nat', ['ha', 'init'])).exitCode, 0);
  const startedAt = Date.now();
  await Promise.all(NAT_NAMES.map((which) => rig.start(which, { readyTimeoutMs: stretch(600_000) })));
  const readyMs = Date.now() - startedAt;

  const mapItem = async (): Promise<MapItem | undefined> => {
    const r = await rig.lab.exec(rig.lab.svcNs, process.execPath, [compiledLabFile('ha-items.js'), rig.dynamoUrl, 'cachenat', 'lab'], { reject: false, env: { NODE_OPTIONS: '' } });
    const map = (JSON.parse(r.stdout) as { map: StoreRead<MapItem> }).map;
    return map.kind === 'ok' ? map.item : undefined;
  };
  const map = await waitFor(`the shared map with all ${TARGETS} targets`, async () => {
    const m = await mapItem();
    return m && m.state.entries.length === TARGETS ? m : undefined;
  }, stretch(900_000), 2000);
  const mappedMs = Date.now() - startedAt;
  const ports = map.state.entries.map((e) => e.listenPort);
  t.equal(new Set(ports).size, TARGETS, `${TARGETS} distinct listen ports`);
  const redisPorts = map.state.entries.filter((e) => e.engine === 'redis').map((e) => e.listenPort).sort((a, b) => a - b);
  t.same([redisPorts[0], redisPorts.at(-1)], [6379, 6378 + redisTargets], 'redis targets on 6379 up, one port each');
  t.equal(map.chunks.length, 16, 'in 16 chunks');
  const bytes = map.chunks.reduce((n, c) => n + c.bytes, 0);

  const identical = await waitFor('both hosts with every DNAT port, the same CACHENAT lines', async () => {
    const saves = await Promise.all(NAT_NAMES.map((which) => rig.save(which, 'nat')));
    const owned = saves.map((s) => s.split('\n').filter((l) => l.includes('CACHENAT')).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).join('\n'));
    const dnat = saves.map(dnatPorts);
    return dnat.every((d) => d.size === TARGETS && [...d.values()].every((keys) => keys.length === 1)) && owned[0] === owned[1] ? dnat[0] : undefined;
  }, stretch(900_000), 2000);
  const convergedMs = Date.now() - startedAt;
  const byKey = new Map(map.state.entries.map((e) => [e.key, e.listenPort]));
  t.ok([...identical].every(([port, [key]]) => byKey.get(key!) === port), 'the rules carry the shared map\'s ports');
  const statuses = await Promise.all(NAT_NAMES.map((which: NatName) => rig.status(which) as Promise<{ ha?: { role: string; map?: { room?: number; entries: number } } }>));
  t.same(statuses.map((s) => s.ha?.role).sort(), ['leader', 'standby']);
  t.comment(
    `${TARGETS} targets: lab up in ${startedAt - began} ms; both ready ${readyMs} ms after the start; map complete ${mappedMs} ms, identical rules on both ${convergedMs} ms after it; ` +
      `map ${bytes} bytes gzipped in ${map.chunks.length} chunks (${(bytes / TARGETS).toFixed(1)} bytes a target), fullest chunk ${Math.round((statuses[0]?.ha?.map?.room ?? 0) * 1000) / 10}% full`,
  );
});
