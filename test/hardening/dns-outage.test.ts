// A DNS outage at fleet size, against the real daemon: 500 endpoint names
// answered by a DNS server in the NAT namespace, which then drops every query
// (glibc's default resolv.conf: 5 s × 2 attempts per lookup). Every pass
// stays short (the 3 s DNS budget), the systemd watchdog (WATCHDOG_USEC=30 s,
// fed through a stand-in notify socket) is fed throughout, every forward keeps
// its address, and health says WARNING naming the DNS outage. Then DNS comes
// back and the warning clears.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { cpus, loadavg } from 'node:os';
import { waitFor, startRig } from '../../lab/rig.js';
import { readSnapshot, startDaemon, sleep } from './lab-daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : false;
const N = 500;
const OUTAGE_MS = Number(process.env.DNS_OUTAGE_MS ?? 35_000); // more than one WatchdogSec (30 s)
const load = () => Math.max(1, loadavg()[0]! / cpus().length);
const nameOf = (i: number) => `c${String(i).padStart(3, '0')}.cache.example`;
const ipOf = (i: number) => `198.19.0.${11 + (i % 4)}`;

// A DNS server on 127.0.0.1:53: an A record for c<i>.cache.example (198.19.0.11 + i % 4);
// SIGUSR1 makes it drop every query from then on, SIGUSR2 answer again.
const STUB = `
const socket = require('node:dgram').createSocket('udp4');
let drop = false;
process.on('SIGUSR1', () => { drop = true; console.log('dropping'); });
process.on('SIGUSR2', () => { drop = false; console.log('answering'); });
socket.on('message', (query, peer) => {
  if (drop || query.length < 17) return;
  let at = 12; const labels = [];
  while (at < query.length && query[at] !== 0) { labels.push(query.toString('latin1', at + 1, at + 1 + query[at])); at += query[at] + 1; }
  const qtype = query.readUInt16BE(at + 1);
  const question = query.subarray(12, at + 5);
  const m = /^c(\\d+)$/.exec(labels[0] || '');
  const a = qtype === 1 && m && labels.slice(1).join('.') === 'cache.example';
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180 | (a || labels.slice(1).join('.') === 'cache.example' ? 0 : 3), 2);
  header.writeUInt16BE(1, 4); header.writeUInt16BE(a ? 1 : 0, 6);
  const answer = a ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 198, 19, 0, 11 + (Number(m[1]) % 4)]) : Buffer.alloc(0);
  socket.send(Buffer.concat([header, question, answer]), peer.port, peer.address);
});
socket.bind(53, '127.0.0.1', () => console.log('dns stub listening'));
`;

const NOTIFY_LISTENER = fileURLToPath(new URL('../daemon/notify-listener.py', import.meta.url));

t.test(`a resolver that drops every query, ${N} names: passes stay short, the watchdog is fed, health warns`, { skip }, async (t) => {
  process.env.NODE_OPTIONS = '';
  const clusters = Array.from({ length: N }, (_, i) => ({ id: `c${String(i).padStart(3, '0')}`, engine: 'redis', nodes: [{ id: '0001', address: nameOf(i), port: 6379 }] }));
  const rig = await startRig({
    topology: { clusters },
    hosts: {},
    pageSize: 100,
    settings: { dnsInterval: '5s', discoveryInterval: '30s', apiTimeout: '10s', removalGrace: '10m', logLevel: 'info' },
  });
  t.teardown(() => rig.down());
  const { lab } = rig;
  // glibc's defaults (timeout 5 s, 2 attempts): a dropped query holds getaddrinfo for about 10 s.
  writeFileSync(join('/etc/netns', lab.ns.nat, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  const stub = lab.spawnIn(lab.ns.nat, process.execPath, ['-e', STUB], { label: 'dns stub', env: { NODE_OPTIONS: '' } });
  await stub.waitForLine(/listening/, 10_000);

  const socketPath = join(rig.dir, 'notify.sock');
  const listener = execa('python3', [NOTIFY_LISTENER, socketPath], { buffer: false, reject: false });
  t.teardown(() => void listener.kill());
  const messages: { at: number; text: string }[] = [];
  listener.stdout!.setEncoding('utf8');
  let partial = '';
  listener.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const parsed = JSON.parse(line) as { text?: string };
      if (parsed.text !== undefined) messages.push({ at: Date.now(), text: parsed.text });
    }
  });
  await waitFor('notify listener', () => messages.length === 0 && listener.pid !== undefined, 5000);
  await sleep(300);

  const daemon = await startDaemon(rig, { env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '30000000' }, readyTimeoutMs: 120_000 });
  t.teardown(() => daemon.stop(5000));
  const all = await waitFor('every forward active', async () => {
    const s = await readSnapshot(rig);
    return s.forwards.length === N && s.forwards.every((f) => f.state === 'active') ? s : undefined;
  }, 120_000 * load(), 500);
  t.equal(all.forwards.filter((f) => f.targetIp === ipOf(Number(f.key.slice(6, 9)))).length, N, `${N} forwards, each at its address`);
  t.equal(await rig.probe('client', 6379), 'redis-11');

  stub.kill('SIGUSR1');
  await stub.waitForLine(/dropping/, 5000);
  const outageAt = Date.now();
  // Pass ends, from the snapshot's heartbeat (STATUS= is sent only when its text changes, so it cannot count them).
  const passEnds = new Set<string>();
  while (Date.now() - outageAt < OUTAGE_MS) {
    const at = (await readSnapshot(rig).catch(() => undefined))?.lastPassAt;
    if (at !== undefined && Date.parse(at) >= outageAt) passEnds.add(at);
    await sleep(200);
  }
  const during = messages.filter((m) => m.at >= outageAt);
  const gaps = (lines: { at: number }[]) => lines.slice(1).map((m, i) => m.at - lines[i]!.at);
  const watchdog = during.filter((m) => m.text.split('\n').includes('WATCHDOG=1'));
  const passes = [...passEnds].map((at) => ({ at: Date.parse(at) })).sort((a, b) => a.at - b.at);
  const watchdogGaps = gaps([{ at: outageAt }, ...watchdog, { at: Date.now() }]);
  const passGaps = gaps(passes);
  const stretch = load();
  t.comment(`${OUTAGE_MS} ms of outage: ${passes.length} passes, longest gap between pass ends ${Math.max(...passGaps)} ms, between watchdog feeds ${Math.max(...watchdogGaps)} ms (load per core ${stretch.toFixed(1)})`);
  t.ok(passes.length >= OUTAGE_MS / 10_000 / stretch, `${passes.length} passes in ${OUTAGE_MS} ms`);
  t.ok(Math.max(...passGaps) <= 10_000 * stretch, `every pass ended within 10 s of the last (x${stretch.toFixed(1)} for load): ${passGaps.join(', ')} ms`);
  t.ok(Math.max(...watchdogGaps) < 30_000, `the watchdog (30 s) was fed throughout: gaps ${watchdogGaps.join(', ')} ms`);
  t.ok(daemon.running, 'the daemon never stopped');

  const snapshot = await readSnapshot(rig);
  t.equal(snapshot.forwards.filter((f) => f.state === 'active' && f.targetIp === ipOf(Number(f.key.slice(6, 9)))).length, N, 'every forward keeps its address');
  t.match(snapshot.warnings, [/^DNS: \d+ of \d+ endpoint names due for a lookup got no answer/]);
  t.equal(await rig.probe('client', 6380), 'redis-12', 'still forwarding');
  const health = await rig.cli(['health']);
  t.equal(health.exitCode, 1, `health: WARNING (${health.stdout.split('\n')[0]})`);
  t.match(health.stdout, /^WARNING - DNS: \d+ of \d+ endpoint names due for a lookup got no answer/);

  stub.kill('SIGUSR2');
  await waitFor('the warning clears', async () => ((await readSnapshot(rig)).warnings ?? []).length === 0, 60_000 * stretch, 500);
  t.equal((await rig.cli(['health'])).exitCode, 0, 'health: OK again');
});
