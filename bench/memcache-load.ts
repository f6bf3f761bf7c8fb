// A small Memcached load generator (Debian ships no memtier_benchmark): N
// connections, each sending `pipeline` requests at a time and waiting for
// all their answers, for a bounded number of operations. Latency of an
// operation is from the write of its batch to the arrival of its answer, as
// redis-benchmark counts it. Runs inside a lab client namespace:
//
//   node dist/bench/memcache-load.js HOST PORT get|set --clients 50 --pipeline 1 --requests 100000
//
// prints one JSON line: {"ops", "seconds", "opsPerSec", "p50Ms", "p99Ms"}.

import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    clients: { type: 'string', default: '50' },
    pipeline: { type: 'string', default: '1' },
    requests: { type: 'string', default: '100000' },
    size: { type: 'string', default: '64' },
    keys: { type: 'string', default: '10000' },
  },
});
const [host, portText, op] = positionals;
if (host === undefined || portText === undefined || (op !== 'get' && op !== 'set')) {
  process.stderr.write('usage: memcache-load HOST PORT get|set [--clients N] [--pipeline N] [--requests N] [--size BYTES] [--keys N]\n');
  process.exit(2);
}
const port = Number(portText);
const clients = Number(values.clients);
const pipeline = Number(values.pipeline);
const total = Math.min(Number(values.requests), 20_000_000);
const keys = Number(values.keys);
const value = 'x'.repeat(Number(values.size));
// A GET answer ends in END, a SET answer is STORED; neither can occur inside the value.
const terminator = Buffer.from(op === 'get' ? 'END\r\n' : 'STORED\r\n');

// Latencies in 10 µs buckets up to 1 s; slower ones land in the last bucket.
const BUCKET_US = 10;
const histogram = new Uint32Array(100_000);
let issued = 0;
let done = 0;

const request = (): string => {
  const key = `key:${Math.floor(Math.random() * keys)}`;
  return op === 'get' ? `get ${key}\r\n` : `set ${key} 0 0 ${value.length}\r\n${value}\r\n`;
};

function record(ms: number): void {
  const bucket = Math.min(histogram.length - 1, Math.floor((ms * 1000) / BUCKET_US));
  histogram[bucket] = (histogram[bucket] as number) + 1;
}

function percentile(p: number): number {
  const rank = Math.ceil((p / 100) * done);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i] as number;
    if (seen >= rank) return ((i + 1) * BUCKET_US) / 1000;
  }
  return NaN;
}

function client(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    let pending = 0;
    let batchStart = 0;
    let carry = Buffer.alloc(0);
    const send = () => {
      const count = Math.min(pipeline, total - issued);
      if (count <= 0) {
        socket.end();
        return resolve();
      }
      issued += count;
      pending = count;
      let text = '';
      for (let i = 0; i < count; i++) text += request();
      batchStart = performance.now();
      socket.write(text);
    };
    socket.on('connect', send);
    socket.on('data', (chunk: Buffer) => {
      let buffer = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let at = buffer.indexOf(terminator);
      while (at >= 0) {
        record(performance.now() - batchStart);
        done++;
        pending--;
        buffer = buffer.subarray(at + terminator.length);
        at = buffer.indexOf(terminator);
      }
      carry = Buffer.from(buffer);
      if (pending === 0) send();
    });
    socket.on('error', reject);
  });
}

// GETs read keys that exist: fill the key space first, untimed.
if (op === 'get') {
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port });
    let text = '';
    for (let i = 0; i < keys; i++) text += `set key:${i} 0 0 ${value.length} noreply\r\n${value}\r\n`;
    socket.on('connect', () => socket.end(`${text}get key:0\r\n`));
    socket.on('data', () => undefined);
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

const started = performance.now();
await Promise.all(Array.from({ length: clients }, client));
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ ops: done, seconds, opsPerSec: done / seconds, p50Ms: percentile(50), p99Ms: percentile(99) })}\n`);
