// A client that keeps one connection open, as Redis clients do for days:
// one TCP connection to HOST:PORT, a `GET whoami` on it every --every ms, so
// a test sees which cache server it still talks to, and the moment the
// connection stops working. Runs inside a lab client namespace:
//
//   node dist/lab/held-connection.js HOST PORT [--every MS (200)] [--timeout MS (2000)]
//
// Prints JSON lines: {"event":"connected","at":…} once, {"event":"answer",
// "value":"redis-11","at":…} for each answer, and at the end {"event":
// "closed","error":…,"at":…} (a reset, a close, or no answer within
// --timeout), then exits 0. Times are epoch milliseconds. SIGTERM ends it
// quietly (exit 0, no "closed" line).

import net from 'node:net';
import { parseArgs } from 'node:util';
import { KEY, parseRedisReply, resp } from './probe.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { every: { type: 'string', default: '200' }, timeout: { type: 'string', default: '2000' } } });
const [host, portText] = positionals;
const port = Number(portText);
const everyMs = Number(values.every);
const timeoutMs = Number(values.timeout);
if (host === undefined || !Number.isInteger(port) || !(everyMs > 0) || !(timeoutMs > 0)) {
  process.stderr.write('usage: held-connection HOST PORT [--every MS] [--timeout MS]\n');
  process.exit(2);
}

const say = (event: string, fields: Record<string, unknown> = {}): void => void process.stdout.write(`${JSON.stringify({ event, ...fields, at: Date.now() })}\n`);
let buffer = Buffer.alloc(0);
let waitingSince: number | undefined;
let closed = false;
const socket = net.connect({ host, port });

const close = (error: string): void => {
  if (closed) return;
  closed = true;
  clearInterval(ticker);
  say('closed', { error });
  socket.destroy();
  process.exit(0);
};

socket.on('connect', () => say('connected'));
socket.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (let parsed = parseRedisReply(buffer); parsed; parsed = parseRedisReply(buffer)) {
    buffer = buffer.subarray(parsed.used);
    waitingSince = undefined;
    const reply = parsed.reply;
    say('answer', { value: reply.kind === 'value' ? reply.value : reply.kind === 'error' ? `error: ${reply.message}` : reply.kind });
  }
});
socket.on('error', (err: NodeJS.ErrnoException) => close(err.code ?? err.message));
socket.on('close', () => close('closed by the other end'));
const ticker = setInterval(() => {
  if (socket.readyState !== 'open') return;
  if (waitingSince !== undefined) {
    if (Date.now() - waitingSince > timeoutMs) close(`no answer within ${timeoutMs} ms`);
    return;
  }
  waitingSince = Date.now();
  socket.write(resp('GET', KEY));
}, everyMs);
process.on('SIGTERM', () => {
  closed = true;
  socket.destroy();
  process.exit(0);
});
