// A local stand-in for the ElastiCache Query API, good enough for the real
// SDK: DescribeCacheClusters, DescribeReplicationGroups and
// DescribeServerlessCaches with paging, real XML, and faults on demand. The lab and the tests drive it over HTTP on the
// same port:
//   PUT    /_fake/topology   JSON FakeTopology, served from the next request on
//   PUT    /_fake/fault      {"kind": "...", "count"?: n, "action"?: "Describe..."}; kind "none" clears;
//                             answers {"ok": true, "at": ms}: from when it applies
//   GET    /_fake/requests   {"count": n, "requests": [...]}: the API calls so far
//   DELETE /_fake/requests   forget them
//
// Pages hold 2 records when the caller sends no MaxRecords, so every test
// pages; --page-size 100 pages as AWS does, for topologies of 1000 nodes.
//
// Run directly:
//   node dist/lab/fake-elasticache.js --listen 127.0.0.1:4566 [--topology topology.json] [--page-size N]
// prints exactly one line, "fake-elasticache listening on http://HOST:PORT",
// once it accepts connections (port 0 picks a free port), and exits on SIGTERM.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { closeServer, isMainModule, listen, onBody, parseListen, send, sendJson } from './fake-http.js';
import {
  answer,
  errorAnswer,
  faultSchema,
  parseFakeTopology,
  type Fault,
  type FaultKind,
  type FakeTopology,
} from './fake-elasticache-model.js';

export * from './fake-elasticache-model.js';

/** One API call as the fake saw it. */
export interface FakeRequest {
  /** Milliseconds since the epoch, when the request arrived. */
  at: number;
  action: string;
  marker?: string;
  /** The fault it got, when not 'none'. */
  fault?: FaultKind;
  /** HTTP status sent, or undefined for a request left hanging. */
  status?: number;
}

export interface FakeElastiCache {
  url: string;
  port: number;
  setTopology(topology: FakeTopology): void;
  setFault(fault: Fault): void;
  requests(): FakeRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

export interface FakeElastiCacheOptions {
  host?: string;
  port?: number;
  topology?: FakeTopology;
  /** Records per page when the caller sends no MaxRecords (1–100; default DEFAULT_PAGE_SIZE). */
  pageSize?: number;
}

/** What AWS returns per page when the caller sends no MaxRecords. */
export const AWS_DEFAULT_PAGE_SIZE = 100;

const MAX_BODY_BYTES = 1 << 20;

/** The paging token of a request: Marker, or NextToken for DescribeServerlessCaches. */
const pageToken = (params: URLSearchParams): string | null => params.get('Marker') ?? params.get('NextToken');

export async function startFakeElastiCache(options: FakeElastiCacheOptions = {}): Promise<FakeElastiCache> {
  if (options.pageSize !== undefined && !(Number.isInteger(options.pageSize) && options.pageSize >= 1 && options.pageSize <= 100)) {
    throw new Error(`page size must be a whole number from 1 to 100, got ${options.pageSize}`);
  }
  const host = options.host ?? '127.0.0.1';
  let topology: FakeTopology = options.topology ?? {};
  let fault: Fault = { kind: 'none' };
  const log: FakeRequest[] = [];
  let nextRequestId = 1;

  const setFault = (next: Fault) => {
    fault = next.kind === 'none' ? { kind: 'none' } : { ...next };
  };

  /** The fault for this request, counting it down when it applies. */
  const takeFault = (params: URLSearchParams): FaultKind => {
    const kind = fault.kind;
    if (kind === 'none') return 'none';
    if (fault.action !== undefined && fault.action !== params.get('Action')) return 'none';
    if (kind === 'second-page-fails' && !pageToken(params)) return 'none';
    if (fault.count !== undefined) {
      fault.count -= 1;
      if (fault.count <= 0) fault = { kind: 'none' };
    }
    return kind;
  };

  const handleApi = (params: URLSearchParams, res: ServerResponse) => {
    if (options.pageSize !== undefined && !params.has('MaxRecords')) params.set('MaxRecords', String(options.pageSize));
    const kind = takeFault(params);
    const marker = pageToken(params);
    const entry: FakeRequest = {
      at: Date.now(),
      action: params.get('Action') ?? '',
      ...(marker ? { marker } : {}),
      ...(kind === 'none' ? {} : { fault: kind }),
    };
    log.push(entry);
    if (kind === 'hang') return; // the socket stays open until the client gives up or close()
    const requestId = `fake-${nextRequestId++}`;
    const reply = answer(params, topology, kind, requestId);
    entry.status = reply.status;
    res.setHeader('x-amzn-RequestId', requestId); // as AWS sends on every answer
    send(res, reply.status, 'text/xml', reply.body);
  };

  const handleControl = (req: IncomingMessage, path: string, body: string, res: ServerResponse) => {
    const route = `${req.method} ${path}`;
    if (route === 'GET /_fake/requests') return sendJson(res, 200, { count: log.length, requests: log });
    if (route === 'DELETE /_fake/requests') {
      log.length = 0;
      return sendJson(res, 200, { count: 0 });
    }
    if (route !== 'PUT /_fake/topology' && route !== 'PUT /_fake/fault') {
      return sendJson(res, 404, { error: `no control route ${route}` });
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (err) {
      return sendJson(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
    }
    if (route === 'PUT /_fake/topology') {
      const parsed = parseFakeTopology(json);
      if ('error' in parsed) return sendJson(res, 400, { error: parsed.error });
      topology = parsed;
      return sendJson(res, 200, { ok: true });
    }
    const parsed = faultSchema.safeParse(json);
    if (!parsed.success) return sendJson(res, 400, { error: parsed.error.message });
    setFault(parsed.data);
    // The moment it applies, on the clock the request log uses.
    return sendJson(res, 200, { ok: true, at: Date.now() });
  };

  const server = createServer((req, res) => {
    onBody(req, MAX_BODY_BYTES, (body) => {
      const url = new URL(req.url ?? '/', 'http://fake');
      if (url.pathname.startsWith('/_fake/')) return handleControl(req, url.pathname, body, res);
      if (url.pathname !== '/') return send(res, 404, 'text/plain', 'not found\n');
      // The SDK POSTs a form body; the Query protocol also allows GET with a query string.
      if (req.method === 'POST') return handleApi(new URLSearchParams(body), res);
      if (req.method === 'GET') return handleApi(url.searchParams, res);
      const reply = errorAnswer(405, 'Sender', 'MethodNotAllowed', `${req.method} is not supported`, `fake-${nextRequestId++}`);
      return send(res, reply.status, 'text/xml', reply.body);
    });
  });

  const port = await listen(server, host, options.port ?? 0);

  return {
    url: `http://${host}:${port}`,
    port,
    setTopology: (next) => {
      topology = next;
    },
    setFault,
    requests: () => log.map((entry) => ({ ...entry })),
    clearRequests: () => {
      log.length = 0;
    },
    close: () => closeServer(server),
  };
}

// ---- command line ---------------------------------------------------------

const USAGE = 'usage: fake-elasticache --listen HOST:PORT [--topology FILE.json] [--page-size N]';

async function main(argv: string[]): Promise<void> {
  let listen = '127.0.0.1:4566';
  let topologyFile: string | undefined;
  let pageSize: number | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (flag === '--listen') listen = value;
    else if (flag === '--topology') topologyFile = value;
    else if (flag === '--page-size') {
      if (!/^\d{1,3}$/.test(value)) throw new UsageError(`--page-size expects 1 to 100, got ${value}`);
      pageSize = Number(value);
    }
    else throw new UsageError(`unknown option ${flag}`);
  }
  const address = parseListen(listen);
  if (!address) throw new UsageError(`--listen expects IPV4:PORT, got ${listen}`);

  let topology: FakeTopology = {};
  if (topologyFile !== undefined) {
    const parsed = parseFakeTopology(JSON.parse(await readFile(topologyFile, 'utf8')));
    if ('error' in parsed) throw new Error(`${topologyFile}: ${parsed.error}`);
    topology = parsed;
  }

  const fake = await startFakeElastiCache({ host: address.host, port: address.port, topology, ...(pageSize === undefined ? {} : { pageSize }) });
  process.stdout.write(`fake-elasticache listening on ${fake.url}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

class UsageError extends Error {}

if (await isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`fake-elasticache: ${(err as Error).message}\n`);
    if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
}
