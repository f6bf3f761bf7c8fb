import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createNotifier, silentNotifier, watchdogIntervalOf, type SendNotify } from '../../src/daemon/notify.js';

const listenerScript = fileURLToPath(new URL('./notify-listener.py', import.meta.url));

t.test('no NOTIFY_SOCKET: the silent notifier', async (t) => {
  t.equal(createNotifier({}), silentNotifier);
  t.equal(createNotifier({ NOTIFY_SOCKET: '' }), silentNotifier);
});

t.test('watchdog interval is half of WATCHDOG_USEC, only for our pid', async (t) => {
  t.equal(watchdogIntervalOf({ WATCHDOG_USEC: '20000000' }, 42), 10_000);
  t.equal(watchdogIntervalOf({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '42' }, 42), 10_000);
  t.equal(watchdogIntervalOf({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '43' }, 42), undefined);
  t.equal(watchdogIntervalOf({}, 42), undefined);
  t.equal(watchdogIntervalOf({ WATCHDOG_USEC: 'x' }, 42), undefined);
  t.equal(createNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '3000000' }, async () => undefined, { pid: 1 }).watchdogIntervalMs, 1500);
});

t.test('one helper at a time; what queues up meanwhile is merged', async (t) => {
  const sent: string[][] = [];
  let release: () => void = () => undefined;
  const send: SendNotify = (assignments) => {
    sent.push(assignments);
    return new Promise((resolve) => (release = resolve));
  };
  const n = createNotifier({ NOTIFY_SOCKET: '/x' }, send);
  n.ready('up');
  await Promise.resolve(); // the turn ends: READY goes
  for (let i = 0; i < 100; i++) {
    n.status(`pass ${i}`);
    n.watchdog();
  }
  n.stopping();
  t.equal(sent.length, 1, 'only the first message is in flight');
  release();
  await new Promise((r) => setImmediate(r));
  t.equal(sent.length, 2, 'everything queued meanwhile went as one message');
  release();
  await n.flush?.();
  t.same(sent, [['READY=1', 'STATUS=up'], ['STATUS=pass 99', 'WATCHDOG=1', 'STOPPING=1']]);
});

t.test('a failing helper is reported and does not stop later messages', async (t) => {
  const errors: unknown[] = [];
  const sent: string[][] = [];
  let calls = 0;
  const n = createNotifier(
    { NOTIFY_SOCKET: '/x' },
    async (a) => {
      sent.push(a);
      if (calls++ === 0) throw new Error('boom');
    },
    { onError: (e) => errors.push(e) },
  );
  n.status('a');
  await n.flush?.();
  n.status('b\nc');
  await n.flush?.();
  t.equal(errors.length, 1);
  t.same(sent, [['STATUS=a'], ['STATUS=b c']], 'newlines cannot start another assignment');
});

t.test('systemd-notify delivers to a real notify socket, in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-notify-'));
  const socketPath = join(dir, 'notify.sock');
  const listener = spawn('python3', [listenerScript, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(async () => {
    listener.kill();
    await rm(dir, { recursive: true, force: true });
  });
  const lines = createInterface({ input: listener.stdout });
  const received: { pid: number | null; text: string }[] = [];
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  lines.on('line', (line) => {
    const msg = JSON.parse(line) as { listening?: string; pid: number | null; text: string };
    if (msg.listening) listening();
    else received.push(msg);
  });
  await ready;

  const n = createNotifier({ ...process.env, NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '4000000', WATCHDOG_PID: String(process.pid) });
  t.equal(n.watchdogIntervalMs, 2000);
  n.ready('1 forward, synced just now');
  await Promise.resolve(); // the pass that said READY ends
  n.status('2 forwards');
  n.watchdog();
  n.status('3 forwards');
  n.stopping();
  await n.flush?.();
  await new Promise((r) => setTimeout(r, 200));

  // systemd-notify adds BARRIER=1 datagrams (it waits for the manager to read
  // ours) and MAINPID= from --pid; keep what we sent.
  const ours = received.filter((m) => !m.text.startsWith('BARRIER='));
  t.ok(ours.every((m) => m.text.startsWith(`MAINPID=${process.pid}\n`)), 'MAINPID names the daemon');
  const assignments = ours.flatMap((m) => m.text.split('\n').filter((a) => a && !a.startsWith('MAINPID=')));
  t.equal(assignments[0], 'READY=1');
  t.equal(assignments[1], 'STATUS=1 forward, synced just now');
  t.ok(assignments.includes('WATCHDOG=1'));
  t.equal(assignments.filter((a) => a.startsWith('STATUS=')).at(-1), 'STATUS=3 forwards', 'the newest status arrives last');
  t.equal(assignments.at(-1), 'STOPPING=1');
  t.ok(ours.length <= 3, `merged into few datagrams (${ours.length})`);
  if (process.getuid?.() === 0) {
    t.ok(ours.every((m) => m.pid === process.pid), 'as root the helper sends on behalf of our pid');
  }
});

t.test('a quiet daemon sends little: an unchanged STATUS is not sent again, WATCHDOG=1 at most once per third of the timeout', async (t) => {
  const sent: string[][] = [];
  let clock = 0;
  const n = createNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000' }, async (a) => void sent.push(a), { pid: 1, now: () => clock });
  const pass = async (atS: number, status: string) => {
    clock = atS * 1000;
    n.status(status);
    n.watchdog();
    await n.flush?.();
  };
  n.ready('3 forwards');
  await n.flush?.();
  for (let s = 0; s <= 30; s += 5) await pass(s, s < 20 ? '3 forwards' : '4 forwards');
  t.same(sent, [['READY=1', 'STATUS=3 forwards'], ['WATCHDOG=1'], ['WATCHDOG=1'], ['STATUS=4 forwards', 'WATCHDOG=1'], ['WATCHDOG=1']], 'one message per pass at most, none when there is nothing new');
  const gaps = [0, 10, 20, 30];
  t.equal(sent.filter((m) => m.includes('WATCHDOG=1')).length, gaps.length, 'fed at 0, 10, 20 and 30 s: never more than 10 s apart while passes run');
});

t.test('after a failed delivery the same STATUS and WATCHDOG=1 are sent again', async (t) => {
  const sent: string[][] = [];
  let fail = true;
  const n = createNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000' }, async (a) => {
    sent.push(a);
    if (fail) throw new Error('no manager');
  }, { pid: 1, now: () => 0, onError: () => undefined });
  n.status('up');
  n.watchdog();
  await n.flush?.();
  fail = false;
  n.status('up');
  n.watchdog();
  await n.flush?.();
  t.same(sent, [['STATUS=up', 'WATCHDOG=1'], ['STATUS=up', 'WATCHDOG=1']]);
});
