// `cachenat ha init` against dynalite with the real SDK, and `cachenat ha
// handover` against a daemon's status snapshot (in-process: the signal is
// recorded, the daemon's answer is a rewritten snapshot).

import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import type { HaStatus, StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';
import { rig } from './harness.js';
import { startDynalite } from '../support/dynalite.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
// The SDK reads credentials from the process environment: dynalite checks none, but some must be there.
process.env.AWS_ACCESS_KEY_ID = 'AKIDTEST';
process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
const dynamo = await startDynalite(t);
const haSection = (table = 'pairs') => `ha: { table: ${table}, group: prod-nat, lease: 3s, elasticIp: eipalloc-0123456789abcdef0, endpoint: "${dynamo.endpoint}" }\n`;

t.test('the command line: ha takes init or handover, nothing else', async (t) => {
  const r = await rig(t, haSection());
  const takeover = await r.cli(['ha', 'takeover', '--config', r.configPath]);
  t.equal(takeover.code, 64);
  t.match(takeover.stderr, /^cachenat: command-argument value 'takeover' is invalid for argument 'action'\. Allowed choices are init, handover\.\nRun "cachenat ha --help"/);
  const extra = await r.cli(['ha', 'init', 'now', '--config', r.configPath]);
  t.equal(extra.code, 64);
  t.match(extra.stderr, /too many arguments for 'ha'\. Expected 1 argument but got 2: init, now/);
  const other = await r.cli(['status', 'init', '--config', r.configPath]);
  t.equal(other.code, 64, 'other commands take no word');
  t.match(other.stderr, /too many arguments for 'status'/);
  t.equal(r.world.machineLoads, 0);
});

t.test('ha without an action, or without an ha section, says what is missing', async (t) => {
  const r = await rig(t, haSection());
  const bare = await r.cli(['ha', '--config', r.configPath]);
  t.equal(bare.code, 64);
  t.match(bare.stderr, /missing required argument 'action'/);
  await r.writeConfig('');
  const none = await r.cli(['ha', 'init', '--config', r.configPath]);
  t.equal(none.code, 78);
  t.match(none.stderr, /no ha section in this config/);
});

t.test('ha init creates the table (key pk, on-demand) once; a second run finds it', async (t) => {
  const r = await rig(t, haSection());
  const first = await r.cli(['ha', 'init', '--config', r.configPath]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /created DynamoDB table pairs/);
  const { Table } = await dynamo.client().send(new DescribeTableCommand({ TableName: 'pairs' }));
  t.same(Table?.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }]);
  const second = await r.cli(['ha', 'init', '--config', r.configPath]);
  t.equal(second.code, 0);
  t.match(second.stdout, /exists with the right key; nothing to do/);
});

const snapshot = (ha: Partial<HaStatus>): StatusSnapshot => ({
  version: 1,
  pid: process.pid,
  startedAt: new Date().toISOString(),
  passes: 3,
  lastPassOk: true,
  discoveryIntervalMs: 30_000,
  dnsIntervalMs: 5000,
  syncWarnIntervals: 3,
  syncCriticalIntervals: 10,
  degraded: false,
  forwards: [],
  ha: { role: 'leader', roleSince: new Date().toISOString(), group: 'prod-nat', leaseMs: 3000, mayAllocate: true, instanceId: A, elasticIps: [], waiting: 0, misfits: [], peers: [], lease: { holder: A, term: 4, changedAt: new Date().toISOString() }, ...ha },
});

t.test('ha handover: signals the leader and waits until the standby holds the lease', async (t) => {
  const r = await rig(t, haSection());
  await mkdir(dirname(r.statusFile), { recursive: true });

  const notRunning = await r.cli(['ha', 'handover', '--config', r.configPath]);
  t.equal(notRunning.code, 1);
  t.match(notRunning.stderr, /cachenat is not running here/);

  await writeFile(r.statusFile, JSON.stringify(snapshot({ role: 'standby', instanceId: B })));
  const standby = await r.cli(['ha', 'handover', '--config', r.configPath]);
  t.equal(standby.code, 1);
  t.match(standby.stderr, new RegExp(`this instance is standby; the leader is ${A}: run it there`));
  t.same(r.world.sent, [], 'nothing signalled');

  await writeFile(r.statusFile, JSON.stringify(snapshot({})));
  // The daemon's answer to SIGUSR2: it releases, the peer takes the lease, the snapshot says so.
  setTimeout(() => void writeFile(r.statusFile, JSON.stringify(snapshot({ role: 'standby', lease: { holder: B, term: 5, changedAt: new Date().toISOString() } }))), 500);
  const handed = await r.cli(['ha', 'handover', '--config', r.configPath]);
  t.equal(handed.code, 0, handed.stderr);
  t.same(r.world.sent, [{ pid: process.pid, signal: 'SIGUSR2' }]);
  t.match(handed.stdout, new RegExp(`handed over: ${B} holds the lease \\(term 5\\)`));
});

t.test('ha handover gives up after a lease and some seconds when nobody takes over', async (t) => {
  const r = await rig(t, haSection());
  await mkdir(dirname(r.statusFile), { recursive: true });
  await writeFile(r.statusFile, JSON.stringify(snapshot({})));
  const started = Date.now();
  const alone = await r.cli(['ha', 'handover', '--config', r.configPath]);
  t.equal(alone.code, 1);
  t.match(alone.stderr, /no other instance took the lease within 8 s/);
  t.ok(Date.now() - started >= 7900, 'it waited the lease (3 s) and 5 s');
});

t.test('apply and plan in a pair follow the shared map: the pair\'s ports, never an allocation of their own', async (t) => {
  const { DynamoHaStore } = await import('../../src/ha/dynamo-store.js');
  const { HaNode } = await import('../../src/ha/ha-node.js');
  const { randomUUID } = await import('node:crypto');
  const r = await rig(t, haSection('apply-pairs'));
  const store = () => new DynamoHaStore({ region: 'us-east-1', table: 'apply-pairs', group: 'prod-nat', timeoutMs: 2000, client: dynamo.client() });
  const admin = store();
  await admin.ensureTable();
  r.serve({ a: '10.0.1.1', b: '10.0.1.2' });
  // The leader gave node a port 6390 and has not seen b yet.
  const leaderMap = { version: 1 as const, entries: [{ key: 'node/a/0001', kind: 'node' as const, engine: 'redis' as const, cacheClusterId: 'a', cacheNodeId: '0001', address: 'a-0001.cache.example', targetPort: 6379, listenPort: 6390 }], released: [] };
  const { planMapWrite } = await import('../../src/core/ha/items.js');
  const write = planMapWrite(null, leaderMap, 1, A, randomUUID());
  if (write.kind !== 'write') throw new Error(write.kind);
  t.same(await admin.writeMap(write, undefined), { kind: 'accepted' });
  r.world.haNode = (config, logger) =>
    new HaNode({ group: 'prod-nat', leaseMs: 3000, fingerprint: {} }, {
      store: store(),
      addresses: {
        associate: async () => void t.fail('a one-off command moves no Elastic IP'),
        describe: async () => [],
        close: () => {},
      },
      identity: async () => {
        t.fail('nor asks who it is');
        throw new Error('no identity');
      },
      monotonic: () => performance.now(),
      wallClock: () => Date.now(),
      deadline: (at) => AbortSignal.timeout(Math.max(0, Math.ceil(at - performance.now()))),
      sleep: async () => {},
      token: () => randomUUID(),
      random: () => 0.5,
      logger,
    });
  const plan = await r.cli(['plan', '--config', r.configPath]);
  t.equal(plan.code, 2, plan.stderr);
  t.match(plan.stdout, /--dport 6390/, 'plan shows the map\'s port');
  const apply = await r.cli(['apply', '--config', r.configPath]);
  t.equal(apply.code, 0, apply.stderr);
  t.same(await r.ports(), { 'node/a/0001': 6390 }, 'the map as the leader wrote it: b waits for the leader');
  t.match(apply.stdout, /1 forwards/);
  const read = await admin.readMap();
  t.same(read.kind === 'ok' && read.item.state, leaderMap, 'the shared map is untouched');
  admin.close();
});
