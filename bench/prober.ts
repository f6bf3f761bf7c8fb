// A client that asks `whoami` over a fresh TCP connection every few
// milliseconds, as an application reconnecting after a failover would, and
// prints one JSON line per answer change and a summary at the end. Runs
// inside a lab client namespace, for a bounded time:
//
//   node dist/bench/prober.js HOST PORT redis|memcached --every MS --for MS
//
// Lines: {"t":<epoch ms>,"value":"redis-12"} or {"t":…,"value":null,"error":"…"}
// when the answer changes; last {"summary":{probes, failures, maxGapMs}}, where
// maxGapMs is the longest time between two successful probes. SIGTERM ends
// it early, summary included.

import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { every: { type: 'string', default: '20' }, for: { type: 'string', default: '10000' }, timeout: { type: 'string', default: '300' } },
});
const [host, portText, protocol] = positionals;
if (host === undefined || portText === undefined || (protocol !== 'redis' && protocol !== 'memcached')) {
  process.stderr.write('usage: prober HOST PORT redis|memcached [--every MS] [--for MS] [--timeout MS]\n');
  process.exit(2);
}
const port = Number(portText);
const everyMs = Number(values.every);
const forMs = Math.min(Number(values.for), 600_000);
const timeoutMs = Number(values.timeout);

const request = protocol === 'redis' ? '*2\r\n$3\r\nGET\r\n$6\r\nwhoami\r\n' : 'get whoami\r\n';

function ask(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buffer = '';
    const timer = setTimeout(() => socket.destroy(new Error('timeout')), timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      const value =
        protocol === 'redis' ? /^\$\d+\r\n([^\r]*)\r\n/.exec(buffer)?.[1] : /^VALUE whoami \d+ \d+\r\n([^\r]*)\r\nEND\r\n/.exec(buffer)?.[1];
      if (value !== undefined) {
        clearTimeout(timer);
        socket.destroy();
        resolve(value);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error('closed'));
    });
  });
}

// SIGTERM ends the run early, still with its summary.
let stopping = false;
process.once('SIGTERM', () => {
  stopping = true;
});

const started = Date.now();
let last: string | null | undefined;
let probes = 0;
let failures = 0;
let lastOk = started;
let maxGapMs = 0;
while (!stopping && Date.now() - started < forMs) {
  const t0 = Date.now();
  let value: string | null;
  let error: string | undefined;
  try {
    value = await ask();
  } catch (err) {
    value = null;
    error = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  const t = Date.now();
  probes++;
  if (value === null) failures++;
  else {
    maxGapMs = Math.max(maxGapMs, t - lastOk);
    lastOk = t;
  }
  if (value !== last) {
    process.stdout.write(`${JSON.stringify(error === undefined ? { t, value } : { t, value, error })}\n`);
    last = value;
  }
  const wait = everyMs - (Date.now() - t0);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
maxGapMs = Math.max(maxGapMs, Date.now() - lastOk);
process.stdout.write(`${JSON.stringify({ summary: { probes, failures, maxGapMs } })}\n`);
