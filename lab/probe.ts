// Asks a Redis or Memcached server for its `whoami` key, so a client can tell
// which lab server a forward really reached. Also a CLI, because probes run
// as a process inside a client namespace:
//
//   node dist/lab/probe.js HOST PORT redis|memcached [--timeout MS] [--set VALUE]
//
// prints the value and exits 0, or prints why not and exits 1 (2 for bad usage).
// --set first stores VALUE under `whoami`; the lab seeds its servers with it.
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseLabArgs } from './command-line.js';

export type CacheProtocol = 'redis' | 'memcached';

export type ProbeResult = { ok: true; value: string; error?: undefined } | { ok: false; error: string; value?: undefined };

export interface ProbeOptions {
  /** Covers connecting and answering together (default 2000 ms). */
  timeoutMs?: number;
  /** Store this value under `whoami` before reading it back. */
  set?: string;
}

export const KEY = 'whoami';

export type Reply = { kind: 'ok' } | { kind: 'value'; value: string } | { kind: 'none' } | { kind: 'error'; message: string };
type Parsed = { reply: Reply; used: number } | undefined;

export const resp = (...words: string[]): string =>
  `*${words.length}\r\n` + words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('');

function requestFor(protocol: CacheProtocol, set: string | undefined): string {
  if (protocol === 'redis') return (set === undefined ? '' : resp('SET', KEY, set)) + resp('GET', KEY);
  const store = set === undefined ? '' : `set ${KEY} 0 0 ${Buffer.byteLength(set)}\r\n${set}\r\n`;
  return `${store}get ${KEY}\r\n`;
}

export function parseRedisReply(buf: Buffer): Parsed {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  const head = buf.toString('utf8', 0, eol);
  const used = eol + 2;
  if (head.startsWith('+')) return { reply: { kind: 'ok' }, used };
  if (head.startsWith('-')) return { reply: { kind: 'error', message: head.slice(1) }, used };
  if (head.startsWith('$')) {
    const length = Number(head.slice(1));
    if (length < 0) return { reply: { kind: 'none' }, used };
    if (buf.length < used + length + 2) return undefined;
    return { reply: { kind: 'value', value: buf.toString('utf8', used, used + length) }, used: used + length + 2 };
  }
  return { reply: { kind: 'error', message: `unexpected reply "${head}"` }, used };
}

function parseMemcachedReply(buf: Buffer): Parsed {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  const head = buf.toString('utf8', 0, eol);
  const used = eol + 2;
  if (head === 'STORED') return { reply: { kind: 'ok' }, used };
  if (head === 'END') return { reply: { kind: 'none' }, used };
  if (head.startsWith('VALUE ')) {
    // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
    const length = Number(head.split(' ')[3]);
    const end = used + length + 2 + 'END\r\n'.length;
    if (buf.length < end) return undefined;
    return { reply: { kind: 'value', value: buf.toString('utf8', used, used + length) }, used: end };
  }
  return { reply: { kind: 'error', message: head }, used };
}

function describeSocketError(error: NodeJS.ErrnoException, where: string): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return `connection to ${where} refused (nothing listening, or a REJECT rule)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable (${error.code}): no route from this namespace`;
    case 'ECONNRESET':
      return `${where} reset the connection`;
    default:
      return `${where}: ${error.message}`;
  }
}

export function probe(host: string, port: number, protocol: CacheProtocol, options: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const where = `${host}:${port}`;
  const parse = protocol === 'redis' ? parseRedisReply : parseMemcachedReply;
  const expected = options.set === undefined ? 1 : 2;

  return new Promise((resolve) => {
    let buffer = Buffer.alloc(0);
    let connected = false;
    let done = false;
    const replies: Reply[] = [];
    const socket = net.connect({ host, port });

    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish({
        ok: false,
        error: connected
          ? `${where} accepted the connection but did not answer within ${timeoutMs} ms`
          : `timed out after ${timeoutMs} ms connecting to ${where} (no answer to SYN: no route back, or packets dropped)`,
      });
    }, timeoutMs);

    socket.on('connect', () => {
      connected = true;
      socket.write(requestFor(protocol, options.set));
    });
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let parsed = parse(buffer); parsed; parsed = parse(buffer)) {
        replies.push(parsed.reply);
        buffer = buffer.subarray(parsed.used);
      }
      if (replies.length >= expected) finish(interpret(replies, where, protocol));
    });
    socket.on('error', (error) => finish({ ok: false, error: describeSocketError(error, where) }));
    socket.on('close', () => finish({ ok: false, error: `${where} closed the connection before answering` }));
  });
}

function interpret(replies: Reply[], where: string, protocol: CacheProtocol): ProbeResult {
  const stored = replies.length === 2 ? replies[0] : undefined;
  if (stored && stored.kind !== 'ok') {
    return { ok: false, error: `${where} did not store ${KEY}: ${stored.kind === 'error' ? stored.message : stored.kind}` };
  }
  const reply = replies[replies.length - 1] as Reply;
  switch (reply.kind) {
    case 'value':
      return { ok: true, value: reply.value };
    case 'none':
      return { ok: false, error: `reached ${protocol} at ${where}, but it holds no ${KEY} key` };
    case 'error':
      return { ok: false, error: `${protocol} at ${where} answered with an error: ${reply.message}` };
    case 'ok':
      return { ok: false, error: `${protocol} at ${where} answered OK where a value was expected` };
  }
}

const USAGE = 'usage: probe HOST PORT redis|memcached [--timeout MS] [--set VALUE]';

async function main(argv: string[]): Promise<number> {
  const parsed = parseLabArgs('probe', USAGE, argv, { timeout: { type: 'string' }, set: { type: 'string' } });
  if (parsed === undefined) return 2;
  const [host, portText, protocol, ...extra] = parsed.positionals;
  const port = Number(portText);
  const timeoutMs = Number(parsed.values.timeout ?? 2_000);
  const problem =
    host === undefined || extra.length > 0
      ? 'expected exactly HOST PORT PROTOCOL'
      : !Number.isInteger(port) || port < 1 || port > 65535
        ? `PORT must be 1-65535, got "${portText}"`
        : protocol !== 'redis' && protocol !== 'memcached'
          ? `PROTOCOL must be redis or memcached, got "${protocol}"`
          : !Number.isFinite(timeoutMs) || timeoutMs <= 0
            ? `--timeout must be a positive number of milliseconds, got "${parsed.values.timeout}"`
            : undefined;
  if (problem !== undefined || host === undefined) {
    process.stderr.write(`probe: ${problem}\n${USAGE}\n`);
    return 2;
  }
  const options: ProbeOptions = { timeoutMs, ...(parsed.values.set === undefined ? {} : { set: parsed.values.set }) };
  const result = await probe(host, port, protocol as CacheProtocol, options);
  if (!result.ok) {
    process.stderr.write(`probe: ${result.error}\n`);
    return 1;
  }
  process.stdout.write(`${result.value}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
