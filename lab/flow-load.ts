// Short connections at a steady rate, each with a known exchange, so an audit
// of flows can be checked against what the client really did. Also a CLI,
// because load runs as a process inside a client namespace:
//
//   node dist/lab/flow-load.js HOST PORT[,PORT…] redis|memcached --rate R --count N [--payload BYTES] [--bind ADDRESS] [--detail]
//
// Every connection: connect, send one request carrying `payload` bytes of data
// (Redis ECHO, Memcached set), read the whole answer, close. Connections are
// opened on a fixed schedule (R per second, spread over the ports in turn),
// whatever the answers do. Prints one JSON line: counts and, with --detail,
// each connection's local port and the bytes it sent and received.
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseLabArgs } from './command-line.js';
import type { CacheProtocol } from './probe.js';

export interface FlowLoadOptions {
  host: string;
  ports: readonly number[];
  protocol: CacheProtocol;
  /** New connections per second. */
  rate: number;
  count: number;
  /** Bytes of data each request carries (the payload of ECHO or set). */
  payload: number;
  /** Give up on a connection after this long (default 10 s). */
  timeoutMs?: number;
  /** Connect from this local address (one of the namespace's own). */
  bind?: string;
}

export interface FlowRecord {
  /** The client's source port: with the client address, the flow's identity at the NAT host. */
  localPort: number;
  port: number;
  /** Bytes the client wrote and read on the socket (TCP payload). */
  sent: number;
  received: number;
  ok: boolean;
}

export interface FlowLoadResult {
  opened: number;
  completed: number;
  failed: number;
  /** From the first connect to the last answer. */
  elapsedMs: number;
  errors: Record<string, number>;
  flows?: FlowRecord[];
}

const resp = (...words: string[]): string => `*${words.length}\r\n` + words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('');

/** The request and how long its complete answer is. */
export function exchangeFor(protocol: CacheProtocol, payload: number): { request: string; answerBytes: number } {
  const data = 'x'.repeat(payload);
  if (protocol === 'redis') {
    // ECHO answers the bulk string back: $<n>\r\n<data>\r\n
    return { request: resp('ECHO', data), answerBytes: `$${payload}\r\n`.length + payload + 2 };
  }
  // Memcached: set, then the answer STORED\r\n
  return { request: `set flowload 0 0 ${payload}\r\n${data}\r\n`, answerBytes: 'STORED\r\n'.length };
}

function oneFlow(options: FlowLoadOptions, port: number): Promise<FlowRecord & { error?: string }> {
  const { request, answerBytes } = exchangeFor(options.protocol, options.payload);
  return new Promise((resolve) => {
    const socket = net.connect({ host: options.host, port, ...(options.bind === undefined ? {} : { localAddress: options.bind }) });
    let received = 0;
    let localPort = 0;
    let settled = false;
    const finish = (ok: boolean, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const record = { localPort, port, sent: socket.bytesWritten, received, ok, ...(error === undefined ? {} : { error }) };
      if (ok) socket.end();
      else socket.destroy();
      resolve(record);
    };
    const timer = setTimeout(() => finish(false, 'timeout'), options.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      socket.write(request);
    });
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received >= answerBytes) finish(true);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    socket.on('close', () => finish(false, 'closed early'));
  });
}

/** Opens `count` connections at `rate` per second; resolves when every one has finished. */
export async function flowLoad(options: FlowLoadOptions, detail = false): Promise<FlowLoadResult> {
  const started = performance.now();
  const pending: Promise<FlowRecord & { error?: string }>[] = [];
  // Catch up on the schedule each tick: timers may fire late on a busy machine.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(options.count, Math.floor(((performance.now() - started) / 1000) * options.rate) + 1);
      while (pending.length < due) pending.push(oneFlow(options, options.ports[pending.length % options.ports.length]!));
      if (pending.length >= options.count) resolve();
      else setTimeout(tick, Math.max(1, Math.min(10, 1000 / options.rate)));
    };
    tick();
  });
  const records = await Promise.all(pending);
  const errors: Record<string, number> = {};
  for (const r of records) if (r.error !== undefined) errors[r.error] = (errors[r.error] ?? 0) + 1;
  const completed = records.filter((r) => r.ok).length;
  const result: FlowLoadResult = { opened: records.length, completed, failed: records.length - completed, elapsedMs: Math.round(performance.now() - started), errors };
  if (detail) result.flows = records.map(({ localPort, port, sent, received, ok }) => ({ localPort, port, sent, received, ok }));
  return result;
}

const USAGE = 'usage: flow-load HOST PORT[,PORT...] redis|memcached --rate R --count N [--payload BYTES] [--timeout MS] [--bind ADDRESS] [--detail]';

async function main(argv: string[]): Promise<number> {
  const parsed = parseLabArgs('flow-load', USAGE, argv, {
    rate: { type: 'string' },
    count: { type: 'string' },
    payload: { type: 'string' },
    timeout: { type: 'string' },
    bind: { type: 'string' },
    detail: { type: 'boolean' },
  });
  if (parsed === undefined) return 2;
  const [host, portList, protocol, ...extra] = parsed.positionals;
  const ports = (portList ?? '').split(',').map(Number);
  const numbers = { rate: Number(parsed.values.rate), count: Number(parsed.values.count), payload: Number(parsed.values.payload ?? 16), timeout: Number(parsed.values.timeout ?? 10_000) };
  const problem =
    host === undefined || extra.length > 0
      ? 'expected exactly HOST PORTS PROTOCOL'
      : ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)
        ? `PORTS must be ports 1-65535 separated by commas, got "${portList}"`
        : protocol !== 'redis' && protocol !== 'memcached'
          ? `PROTOCOL must be redis or memcached, got "${protocol}"`
          : Object.entries(numbers).find(([name, n]) => !(Number.isInteger(n) && n > 0) && !(name === 'payload' && n === 0))?.[0];
  if (problem !== undefined || host === undefined) {
    process.stderr.write(`flow-load: ${problem === undefined || problem.includes(' ') ? problem : `--${problem} must be a positive whole number`}\n${USAGE}\n`);
    return 2;
  }
  const bind = parsed.values.bind;
  const options: FlowLoadOptions = { host, ports, protocol: protocol as CacheProtocol, rate: numbers.rate, count: numbers.count, payload: numbers.payload, timeoutMs: numbers.timeout, ...(bind === undefined ? {} : { bind }) };
  const result = await flowLoad(options, parsed.values.detail === true);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.failed === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
