// The audit in the daemon, with a fake reader and sink: reader lines become
// attributed records; events that come before the first pass wait for it;
// flows a flush deleted say why, whichever of the flush's output and the
// event comes first; overruns and a dead reader are gaps in the log, counted
// and shown in the status; a reload restarts the reader only when its
// settings changed, and reopens or swaps the file.

import t from 'tap';
import { PassThrough } from 'node:stream';
import { AuditService, type AuditEdges } from '../../src/audit/audit-service.js';
import type { ReaderChild } from '../../src/audit/event-reader.js';
import type { AuditSink } from '../../src/audit/sinks.js';
import { readerLineOf, type FlowEvent } from '../../src/core/audit/reader-lines.js';
import type { AuditRecord, FlowEndRecord, GapRecord } from '../../src/core/audit/record.js';
import { parseConfig } from '../../src/config/load.js';
import type { Forward } from '../../src/core/model.js';
import { createLogger } from '../../src/log/logger.js';

const configOf = (audit: string) => parseConfig(`aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.0/24, 203.0.113.9/32]}\naudit: ${audit}\n`, 'x').config;
const PRIMARY: Forward = { key: 'primary/orders', kind: 'primary', engine: 'redis', replicationGroupId: 'orders', address: 'orders.cache.example', targetPort: 6379, targetIp: '10.0.1.5', listenPort: 6379, state: 'active' };
const at = (ms: number) => Date.parse('2026-12-07T13:00:00Z') + ms;

const event = (sport: number, extra: Partial<FlowEvent> = {}): FlowEvent => ({
  kind: 'end',
  id: sport,
  protocol: 6,
  tcpState: 'TIME_WAIT',
  orig: { src: '198.51.100.27', dst: '10.0.0.5', sport, dport: 6379 },
  reply: { src: '10.0.1.5', dst: '10.0.0.5', sport: 6379, dport: sport },
  counters: { origPackets: 5, origBytes: 1268, replyPackets: 5, replyBytes: 5268 },
  mark: 0x1000000,
  startMs: at(0),
  stopMs: at(2000),
  portid: 0,
  receivedMs: at(2100),
  ...extra,
});

function rig(audit = '{enabled: true, file: /var/log/a.jsonl}') {
  const sinks: (AuditSink & { records: AuditRecord[]; reopened: number; closed: boolean })[] = [];
  const readers: { child: ReaderChild; out: PassThrough; args: readonly string[]; exit: (code: number | null, signal?: string) => void }[] = [];
  const logs: string[] = [];
  let now = Date.parse('2026-12-07T13:00:00Z');
  let sysctl: () => Promise<{ setNow: string[]; persistedIn: string | undefined }> = async () => ({ setNow: [], persistedIn: undefined });
  const edges: AuditEdges = {
    openSink: (a) => {
      const sink = { where: a.file ?? 'journal', records: [] as AuditRecord[], reopened: 0, closed: false, write: (r: AuditRecord) => void sink.records.push(r), reopen: async () => void sink.reopened++, close: async () => void (sink.closed = true) };
      sinks.push(sink);
      return sink;
    },
    ensureSysctls: () => sysctl(),
    startReader: (args) => {
      const out = new PassThrough();
      const err = new PassThrough();
      let resolve!: (v: { code: number | null; signal: string | null }) => void;
      const exit = (code: number | null, signal?: string) => {
        out.end();
        err.end();
        resolve({ code, signal: signal ?? null });
      };
      const child: ReaderChild = { stdout: out, stderr: err, exited: new Promise((r) => (resolve = r)), stop: () => exit(0) };
      readers.push({ child, out, args, exit });
      return child;
    },
    logger: createLogger({ level: 'info', destination: { write: (l: string) => logs.push(JSON.parse(l).msg) } }),
    now: () => now,
  };
  const service = new AuditService(configOf(audit), edges);
  const settle = () => new Promise((r) => setTimeout(r, 10));
  const say = async (...lines: string[]) => {
    readers.at(-1)!.out.write(lines.map((l) => `${l}\n`).join(''));
    await settle();
  };
  const ends = () => sinks.at(-1)!.records.filter((r): r is FlowEndRecord => r.event === 'end');
  const gaps = () => sinks.flatMap((s) => s.records).filter((r): r is GapRecord => r.event === 'gap');
  return { service, sinks, readers, logs, say, ends, gaps, settle, tick: (ms: number) => (now += ms), setSysctl: (f: typeof sysctl) => (sysctl = f) };
}

t.test('lines become attributed records; nothing before the first pass is written unattributed', async (t) => {
  const r = rig();
  r.service.start();
  await r.settle();
  await r.say('R 1 buffer=33554432 filter=kernel events=destroy', readerLineOf(event(40000)));
  t.same(r.gaps().map((g) => g.cause), ['started']);
  t.equal(r.ends().length, 0, 'held: no pass yet says which forward listens on 6379');
  await r.service.afterPass([PRIMARY], ['198.51.100.0/24', '203.0.113.9/32']);
  t.same(r.ends().map((e) => [e.clientPort, e.targetKey, e.cache, e.source, e.reason]), [[40000, 'primary/orders', 'orders', '198.51.100.0/24', 'closed']]);
  await r.say(readerLineOf(event(40001, { orig: { src: '192.0.2.1', dst: '127.0.0.1', sport: 40001, dport: 6380 } })));
  t.same(r.ends().map((e) => [e.targetKey, e.source]).at(-1), [null, 'unlisted'], 'an unknown listener and an unlisted client still get a line');
  await r.say(readerLineOf({ ...event(40002), kind: 'start' }));
  t.equal(r.sinks[0]!.records.filter((x) => x.event === 'start').length, 0, 'starts: false: no start lines');
  const status = r.service.status();
  t.same([status.listening, status.filter, status.bufferBytes, status.flowsLogged, status.eventsLost], [true, 'kernel', 33554432, 2, 0]);
  await r.service.stop();
});

t.test("a flush's flows say why they ended, whichever comes first", async (t) => {
  const r = rig('{enabled: true, starts: true}');
  r.service.start();
  await r.settle();
  await r.say('R 1 buffer=33554432 filter=kernel events=new,destroy');
  await r.service.afterPass([PRIMARY], ['198.51.100.0/24']);
  const cut = (sport: number) => event(sport, { tcpState: 'ESTABLISHED', portid: 31337 });
  const listing = (sports: number[]) => sports.map((p) => `tcp      6 431999 ESTABLISHED src=198.51.100.27 dst=10.0.0.5 sport=${p} dport=6379 packets=3 bytes=264 src=10.0.1.5 dst=10.0.0.5 sport=6379 dport=${p} packets=2 bytes=112 [ASSURED] mark=16777216 use=1`).join('\n');

  r.service.flushStarting();
  await r.say(readerLineOf(cut(41000))); // the event before conntrack -D's output is read
  t.equal(r.ends().length, 0, 'held while the flush runs');
  r.service.flushed('target-moved', `${listing([41000, 41001])}\n`);
  await r.say(readerLineOf(cut(41001))); // and one long after
  await r.say(readerLineOf(cut(41002))); // a flow the flush did not delete
  t.same(r.ends().map((e) => [e.clientPort, e.reason]), [[41000, 'target-moved'], [41001, 'target-moved'], [41002, 'deleted']]);
  r.service.flushStarting();
  r.service.flushed('revoked', ''); // a flush that failed or deleted nothing
  await r.say(readerLineOf(cut(41003)));
  t.equal(r.ends().at(-1)?.reason, 'deleted');
  await r.say(readerLineOf({ ...event(41004), kind: 'start' }));
  t.equal(r.sinks[0]!.records.filter((x) => x.event === 'start').length, 1, 'starts: true: a start line');
  t.equal(r.sinks[0]!.where, 'journal');
  await r.service.stop();
});

t.test('losses: an overrun and a dead reader are gaps in the log, in the counters and in the status', async (t) => {
  const r = rig();
  r.service.start();
  await r.settle();
  await r.say('R 1 buffer=33554432 filter=kernel events=destroy');
  await r.service.afterPass([PRIMARY], []);
  await r.say(`L 577 577 ${at(5000)}000000`);
  t.same(r.gaps().at(-1), { audit: true, schema: 1, event: 'gap', cause: 'overrun', at: '2026-12-07T13:00:05.000Z', since: null, lost: 577 });
  t.same([r.service.status().eventsLost, r.service.status().lastLossAt], [577, '2026-12-07T13:00:05.000Z']);
  t.ok(r.logs.some((l) => /the kernel dropped conntrack events/.test(l)));

  r.tick(1000);
  r.readers[0]!.exit(null, 'SIGKILL');
  await r.settle();
  const down = r.service.status();
  t.same([down.listening, down.readerError, down.downSince], [false, 'killed by SIGKILL', '2026-12-07T13:00:01.000Z']);
  t.match(r.service.families().find((f) => f.name === 'cachenat_audit_reader_up'), { samples: [{ value: 0 }] });
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // the first pause before a restart is 1 s
  t.equal(r.readers.length, 2, 'started again');
  r.tick(2000);
  await r.say('R 1 buffer=33554432 filter=kernel events=destroy');
  t.same(r.gaps().at(-1), { audit: true, schema: 1, event: 'gap', cause: 'reader-restarted', at: '2026-12-07T13:00:03.000Z', since: '2026-12-07T13:00:01.000Z', lost: null });
  t.same([r.service.status().listening, r.service.status().readerRestarts, r.service.status().lastRestartAt], [true, 1, '2026-12-07T13:00:03.000Z']);
  await r.service.stop();
});

t.test('reload: the reader restarts only for its own settings, and not as a loss; the file is reopened or swapped', async (t) => {
  const r = rig();
  r.service.start();
  await r.settle();
  await r.say('R 1 buffer=33554432 filter=kernel events=destroy');
  await r.service.reconfigure(configOf('{enabled: true, file: /var/log/a.jsonl}'));
  t.same([r.readers.length, r.sinks.length, r.sinks[0]!.reopened], [1, 1, 1], 'same settings: the file reopened (logrotate), the reader kept');
  await r.service.reopen();
  t.equal(r.sinks[0]!.reopened, 2, 'a refused reload still reopens the file');
  await r.service.reconfigure(configOf('{enabled: true, file: /var/log/a.jsonl, receiveBuffer: 64MiB}'));
  await r.settle();
  t.equal(r.readers.length, 2, 'a new buffer: a new reader');
  t.match(r.readers[1]!.args, ['-I', '-B', '-c', String, '--mark', '0x1000000', '--events', 'destroy', '--buffer', String(64 << 20)]);
  await r.say('R 1 buffer=134217728 filter=kernel events=destroy');
  t.same([r.gaps().at(-1)?.cause, r.service.status().readerRestarts, r.service.status().lastRestartAt], ['reader-restarted', 0, undefined], 'the short gap is in the log, but it is no loss for health');
  await r.service.reconfigure(configOf('{enabled: true, file: /var/log/b.jsonl}'));
  t.same([r.sinks.length, r.sinks[0]!.closed, r.sinks[1]!.where], [2, true, '/var/log/b.jsonl'], 'a new file: the old one closed');
  await r.service.stop();
});

t.test('the kernel settings: set and said once, an error kept in the status until they can be set', async (t) => {
  const r = rig();
  r.setSysctl(async () => ({ setNow: ['net.netfilter.nf_conntrack_acct', 'net.netfilter.nf_conntrack_timestamp'], persistedIn: '/etc/sysctl.d/91-cachenat-audit.conf' }));
  await r.service.afterPass([], []);
  t.ok(r.logs.includes('audit: set net.netfilter.nf_conntrack_acct=1 and net.netfilter.nf_conntrack_timestamp=1 (the audit needs byte counts and timestamps); connections already open have none'));
  r.setSysctl(async () => {
    throw new Error('/proc/sys/net/netfilter/nf_conntrack_acct: read-only file system');
  });
  await r.service.afterPass([], []);
  await r.service.afterPass([], []);
  t.equal(r.logs.filter((l) => /cannot set the conntrack byte counters/.test(l)).length, 1, 'logged once');
  t.match(r.service.status().sysctlError, /read-only/);
  r.setSysctl(async () => ({ setNow: [], persistedIn: undefined }));
  await r.service.afterPass([], []);
  t.equal(r.service.status().sysctlError, undefined);
  await r.service.stop();
});
