// The lab's fake ElastiCache API model behind a plain HTTP server, paging the
// way AWS does by default (100 records a page when the caller sends no
// MaxRecords). The lab's own server pages by 2 so every test pages; at 1000
// nodes that would be 500 calls a pass, which no real account sees.
//
//   node dist/bench/fake-api.js --listen 127.0.0.1:4566 --topology FILE.json
// prints "bench-api listening on http://HOST:PORT" once it accepts connections.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { answer, type FakeTopology } from '../lab/fake-elasticache-model.js';

export const AWS_DEFAULT_PAGE_SIZE = 100;

export interface BenchApi {
  url: string;
  /** API calls answered so far. */
  calls(): number;
  setTopology(topology: FakeTopology): void;
  close(): Promise<void>;
}

export async function startBenchApi(topology: FakeTopology, listen = { host: '127.0.0.1', port: 0 }): Promise<BenchApi> {
  let served = topology;
  let calls = 0;
  let requestId = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/_bench/topology' && req.method === 'PUT') {
        served = JSON.parse(body) as FakeTopology;
        res.writeHead(200).end('{"ok":true}\n');
        return;
      }
      const params = new URLSearchParams(req.method === 'POST' ? body : new URL(req.url ?? '/', 'http://x').search);
      if (!params.has('MaxRecords')) params.set('MaxRecords', String(AWS_DEFAULT_PAGE_SIZE));
      calls++;
      const reply = answer(params, served, 'none', `bench-${++requestId}`);
      res.writeHead(reply.status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(reply.body) });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${listen.host}:${port}`,
    calls: () => calls,
    setTopology: (next) => {
      served = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function main(argv: string[]): Promise<void> {
  const listenAt = argv.indexOf('--listen');
  const topologyAt = argv.indexOf('--topology');
  const [host, port] = (argv[listenAt + 1] ?? '127.0.0.1:4566').split(':');
  const topology = topologyAt >= 0 ? (JSON.parse(readFileSync(argv[topologyAt + 1] as string, 'utf8')) as FakeTopology) : {};
  const api = await startBenchApi(topology, { host: host as string, port: Number(port) });
  process.stdout.write(`bench-api listening on ${api.url}\n`);
  const stop = () => void api.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench-api: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
