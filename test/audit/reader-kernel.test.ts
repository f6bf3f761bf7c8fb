// The event reader against the real kernel, in a throwaway network namespace
// with connections on its loopback (no lab): the socket filter lets through
// only flows carrying the mark, a line carries the kernel's counters,
// timestamps and the id of the process that deleted the entry, the conntrack
// tool hands over what it deleted, and when the reader falls behind, the
// flows it logged plus the drops it reported are every flow, exactly.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readerArguments } from '../../src/audit/event-reader.js';
import { READER_PROGRAM } from '../../src/audit/reader-program.js';
import { parseReaderLine, type FlowEvent, type ReaderLine } from '../../src/core/audit/reader-lines.js';
import { parseConntrackEntries } from '../../src/core/netfilter/conntrack-entry.js';
import { ConntrackTool } from '../../src/netfilter/conntrack.js';
import { inNamespace, runCommand } from '../../src/netfilter/iptables.js';

async function unavailable(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces';
  for (const [program, args] of [['ip', ['-V']], ['iptables', ['--version']], ['conntrack', ['--version']], ['python3', ['--version']]] as const) {
    if ((await runCommand(program, [...args])).exitCode === 127) return `${program} is not installed`;
  }
  return false;
}
const skip = await unavailable();
const MARK = 0x1000000;

async function namespace(t: Test): Promise<{ name: string; run: ReturnType<typeof inNamespace> }> {
  const name = `cn-audit-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const added = await runCommand('ip', ['netns', 'add', name]);
  if (added.exitCode !== 0) throw new Error(`ip netns add ${name}: ${added.stderr}`);
  t.teardown(() => runCommand('ip', ['netns', 'delete', name]));
  const run = inNamespace(name);
  const must = async (file: string, args: string[]) => {
    const r = await run(file, args);
    if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  };
  await must('ip', ['link', 'set', 'lo', 'up']);
  for (const [key, value] of [['nf_conntrack_acct', '1'], ['nf_conntrack_timestamp', '1'], ['nf_conntrack_tcp_timeout_time_wait', '1']]) await must('sysctl', ['-qw', `net.netfilter.${key}=${value}`]);
  // Connections to port 7000 carry the mark; those to 7001 carry another bit only.
  await must('iptables', ['-w', '5', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '7000', '-j', 'CONNMARK', '--set-xmark', `0x${MARK.toString(16)}/0x${MARK.toString(16)}`]);
  await must('iptables', ['-w', '5', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '7001', '-j', 'CONNMARK', '--set-xmark', '0x2/0x2']);
  return { name, run };
}

/** The reader in the namespace, as the daemon starts it; collects its lines. */
function reader(t: Test, ns: string, bufferBytes: number) {
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', ...readerArguments({ mark: MARK, starts: false, bufferBytes })], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  (child.stdio[3] as NodeJS.WritableStream).end(READER_PROGRAM);
  t.teardown(() => child.kill('SIGKILL'));
  const lines: ReaderLine[] = [];
  const bad: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = parseReaderLine(text);
    if (line) lines.push(line);
    else bad.push(text);
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return {
    child,
    lines,
    bad,
    stderr: () => stderr,
    ends: () => lines.flatMap((l) => (l.type === 'event' && l.event.kind === 'end' ? [l.event] : [])),
    lost: () => lines.reduce((sum, l) => sum + (l.type === 'overrun' ? (l.lost ?? NaN) : 0), 0),
    ready: () => new Promise<Extract<ReaderLine, { type: 'ready' }>>((resolve, reject) => {
      const check = setInterval(() => {
        const r = lines.find((l) => l.type === 'ready');
        if (r) {
          clearInterval(check);
          resolve(r as Extract<ReaderLine, { type: 'ready' }>);
        }
      }, 20);
      child.once('exit', (code) => {
        clearInterval(check);
        reject(new Error(`the reader exited ${code}: ${stderr}`));
      });
    }),
  };
}

// Makes `count` connections to each port on loopback: sends `payload` bytes, reads 3 × payload back, closes. Prints the client ports by server port.
const CLIENTS = `
const net = require('node:net');
const [count, payload, ...ports] = process.argv.slice(1).map(Number);
const servers = ports.map((port) => net.createServer((s) => { let got = 0; s.on('data', (d) => { got += d.length; if (got >= payload) s.end(Buffer.alloc(3 * payload, 'y')); }); }).listen(port, '127.0.0.1'));
const one = (port) => new Promise((resolve) => {
  let local = -1;
  const c = net.connect(port, '127.0.0.1', () => { local = c.localPort; c.write(Buffer.alloc(payload, 'x')); });
  c.on('data', () => {}); c.on('end', () => c.end()); c.on('close', () => resolve(local)); c.on('error', () => {});
});
(async () => {
  const out = {};
  for (const port of ports) { out[port] = []; const batch = []; for (let i = 0; i < count; i++) batch.push(one(port)); out[port] = await Promise.all(batch); }
  console.log(JSON.stringify(out));
  servers.forEach((s) => s.close());
})();
`;

async function connections(ns: string, count: number, payload: number, ports: number[]): Promise<Record<string, number[]>> {
  const r = await runCommand('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENTS, String(count), String(payload), ...ports.map(String)], { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`clients: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number[]>;
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('only marked flows, with the kernel counters and times', { skip }, async (t) => {
  const ns = await namespace(t);
  const r = reader(t, ns.name, 0);
  const ready = await r.ready();
  t.equal(ready.filter, 'kernel', 'the mark is filtered by the kernel (BPF socket filter)');
  const before = Date.now();
  const ports = await connections(ns.name, 5, 1000, [7000, 7001]);
  // A listing makes the kernel forget the expired entries it walks past (as the daemon's own listing does every pass).
  for (let i = 0; i < 100; i++) {
    const listed = await ns.run('conntrack', ['-L', '-p', 'tcp']);
    if (!/dport=700[01]/.test(listed.stdout)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await until('5 end lines', () => r.ends().length >= 5);
  await new Promise((resolve) => setTimeout(resolve, 500)); // the unmarked flows ended with them
  const ends = r.ends();
  t.same(ends.map((e) => e.orig.sport).sort(), [...ports['7000']!].sort(), 'exactly the marked flows, each once');
  t.same(r.bad, [], 'every line follows the protocol');
  const e = ends[0]!;
  t.same([e.orig.dport, e.tcpState, e.portid, (e.mark & MARK) === MARK], [7000, 'TIME_WAIT', 0, true], 'closed, ended by the kernel');
  // Loopback: 20 bytes of IP and 32 of TCP per packet, 8 more on the SYN and the SYN-ACK.
  t.equal(e.counters!.origBytes, 1000 + 52 * e.counters!.origPackets + 8, 'bytes from the client: payload and headers');
  t.equal(e.counters!.replyBytes, 3000 + 52 * e.counters!.replyPackets + 8, 'bytes to the client');
  t.ok(e.startMs! >= before - 1000 && e.stopMs! > e.startMs!, 'wall-clock start and stop from the kernel');
});

t.test("the filter runs in the kernel: flows without the mark never reach the reader's socket", { skip }, async (t) => {
  const ns = await namespace(t);
  const r = reader(t, ns.name, 1 << 20);
  await r.ready();
  // Stopped, the reader reads nothing: whatever the kernel queues for it stays in its receive memory.
  r.child.kill('SIGSTOP');
  t.teardown(() => r.child.kill('SIGCONT'));
  const queued = async () => {
    const table = (await ns.run('cat', ['/proc/net/netlink'])).stdout;
    const row = table.split('\n').find((line) => line.split(/\s+/)[2] === String(r.child.pid));
    return row === undefined ? NaN : Number(row.split(/\s+/)[4]); // Rmem
  };
  const settled = async (port: string) => {
    for (let i = 0; i < 100; i++) {
      if (!new RegExp(`dport=${port}`).test((await ns.run('conntrack', ['-L', '-p', 'tcp'])).stdout)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  await connections(ns.name, 20, 100, [7001, 7002]);
  await settled('700[12]');
  t.equal(await queued(), 0, '40 flows without the mark ended (another bit set, or no mark at all): nothing queued for the reader');
  await connections(ns.name, 20, 100, [7000]);
  await settled('7000');
  t.ok((await queued()) > 0, `20 marked flows ended: their events wait in the socket (${await queued()} bytes)`);
});

t.test('an entry deleted by a process says so; the tool hands over what it deleted', { skip }, async (t) => {
  const ns = await namespace(t);
  const r = reader(t, ns.name, 0);
  await r.ready();
  // An established marked flow, made in the table directly.
  const made = await ns.run('conntrack', ['-I', '-p', 'tcp', '--src', '198.51.100.27', '--dst', '10.0.0.1', '--sport', '40001', '--dport', '6380', '--reply-src', '10.0.1.231', '--reply-dst', '198.51.100.27', '--reply-port-src', '6379', '--reply-port-dst', '40001', '--state', 'ESTABLISHED', '--timeout', '600', '-u', 'SEEN_REPLY', '--mark', String(MARK)]);
  t.equal(made.exitCode, 0, made.stderr);
  let listing = '';
  const deleted = await new ConntrackTool(ns.run, MARK).forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }, (text) => (listing = text));
  t.equal(deleted, 1);
  t.same(parseConntrackEntries(listing).map((e) => e.orig), [{ src: '198.51.100.27', dst: '10.0.0.1', sport: 40001, dport: 6380 }], 'conntrack -D printed the entry it deleted');
  const [end] = await until<FlowEvent[]>('the end line', () => (r.ends().length > 0 ? r.ends() : undefined));
  t.same([end!.tcpState, end!.orig.sport, end!.portid > 0], ['ESTABLISHED', 40001, true], 'the netlink port of the deleting process, not 0');
});

t.test('behind, twice: logged + reported dropped = every flow, exactly', { skip }, async (t) => {
  const ns = await namespace(t);
  // The smallest buffer, and the reader stopped while 1,000 flows end; then again with 500 more.
  const r = reader(t, ns.name, 4096);
  const ready = await r.ready();
  t.ok(ready.buffer < 65536, `a small buffer: ${ready.buffer} bytes`);
  let made = 0;
  for (const [round, count] of [[1, 1000], [2, 500]] as const) {
    r.child.kill('SIGSTOP');
    try {
      made += (await connections(ns.name, count, 10, [7000]))['7000']!.length;
      // TIME_WAIT is 1 s here: wait until the kernel has ended them all (a listing drops expired entries).
      for (let i = 0; i < 300; i++) {
        if (!/dport=7000/.test((await ns.run('conntrack', ['-L', '-p', 'tcp'])).stdout)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      r.child.kill('SIGCONT');
    }
    await until(`overrun ${round} reported`, () => r.lines.filter((l) => l.type === 'overrun').length >= round);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const logged = new Set(r.ends().map((e) => e.orig.sport));
  t.equal(r.ends().length, logged.size, 'none twice');
  t.ok(r.lost() > 0, `the kernel dropped ${r.lost()} events and the reader said how many, in ${r.lines.filter((l) => l.type === 'overrun').length} reports`);
  t.equal(logged.size + r.lost(), made, `logged ${logged.size} + dropped ${r.lost()} = ${made}`);
});
