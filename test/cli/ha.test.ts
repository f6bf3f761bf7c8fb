// `cachenat ha init` against dynalite with the real SDK, and `cachenat ha
// handover` against a daemon's status snapshot (in-process: the signal is
// recorded, the daemon's answer is a rewritten snapshot).

import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { parseCommandLine } from '../../src/cli/cli.js';
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
  t.equal(parseCommandLine(['ha', 'init']).options.action, 'init');
  t.equal(parseCommandLine(['ha', 'handover']).options.action, 'handover');
  t.throws(() => parseCommandLine(['ha', 'takeover']), /ha takes init or handover, not "takeover"/);
  t.throws(() => parseCommandLine(['ha', 'init', 'now']), /unexpected argument "now"/);
  t.throws(() => parseCommandLine(['status', 'init']), /unexpected argument "init"/, 'other commands take no action');
});

t.test('ha without an action, or without an ha section, says what is missing', async (t) => {
  const r = await rig(t, haSection());
  const bare = await r.cli(['ha', '--config', r.configPath]);
  t.equal(bare.code, 64);
  t.match(bare.stderr, /ha takes an action: init or handover/);
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
