import t, { type Test } from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { ElastiCacheSource } from '../../src/discovery/elasticache-source.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import { startFakeElastiCache, type FakeElastiCache, type FakeTopology, type FaultKind } from '../../lab/fake-elasticache.js';

// Nothing here may go near the instance metadata service or real AWS.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
const credentials = { accessKeyId: 'AKIDFAKEFAKEFAKE', secretAccessKey: 'fake-secret' };
const all = { include: ['*'], exclude: [] };

/** Seven clusters and five groups: four and three pages at the fake's default page size of 2. */
const bigTopology: FakeTopology = {
  clusters: [
    ...[1, 2, 3, 4, 5].map((n) => ({
      id: `rg${n}-001`,
      engine: n === 5 ? 'valkey' : 'redis',
      replicationGroupId: `rg${n}`,
      nodes: [{ id: '0001', address: `rg${n}-001.abc.0001.use1.cache.amazonaws.com`, port: 6379 }],
    })),
    { id: 'mc', engine: 'memcached', nodes: [1, 2, 3].map((n) => ({ id: `000${n}`, address: `mc.abc.000${n}.use1.cache.amazonaws.com`, port: 11211 })) },
    { id: 'fresh', nodes: [{ id: '0001' }] },
  ],
  replicationGroups: [1, 2, 3, 4, 5].map((n) => ({
    id: `rg${n}`,
    members: [`rg${n}-001`],
    primary: { address: `rg${n}.abc.ng.0001.use1.cache.amazonaws.com`, port: 6379 },
    reader: { address: `rg${n}-ro.abc.ng.0001.use1.cache.amazonaws.com`, port: 6379 },
  })),
};

// A roomy budget unless a test is about time: a loaded test machine must not turn answers into timeouts.
async function setup(t: Test, topology: FakeTopology = bigTopology, timeoutMs = 5000) {
  const fake = await startFakeElastiCache({ topology });
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: fake.url, timeoutMs, filter: all, credentials });
  t.teardown(async () => {
    source.destroy();
    await fake.close();
  });
  return { fake, source };
}

async function describeError(source: ElastiCacheSource, signal?: AbortSignal) {
  const started = performance.now();
  try {
    await source.describe(signal);
  } catch (err) {
    return { err: err as DiscoveryError, ms: performance.now() - started };
  }
  throw new Error('describe() succeeded where it should have failed');
}

t.test('reads every page of both operations, with node info', async (t) => {
  const { fake, source } = await setup(t);
  const topology = await source.describe();
  const nodeKeys = topology.targets.filter((x) => x.kind === 'node').map((x) => x.key);
  t.same(nodeKeys, ['node/mc/0001', 'node/mc/0002', 'node/mc/0003', ...[1, 2, 3, 4, 5].map((n) => `node/rg${n}-001/0001`)]);
  t.equal(topology.targets.filter((x) => x.kind === 'primary').length, 5);
  t.equal(topology.targets.filter((x) => x.kind === 'reader').length, 5);
  t.match(topology.targets.find((x) => x.key === 'primary/rg5'), { engine: 'valkey', address: 'rg5.abc.ng.0001.use1.cache.amazonaws.com', targetPort: 6379 });
  t.same(topology.skipped, [{ where: 'cluster fresh node 0001', reason: 'no endpoint yet (node status "creating")' }]);
  t.same(
    fake.requests().map((r) => `${r.action} ${r.marker ?? '-'}`),
    [
      'DescribeCacheClusters -',
      'DescribeCacheClusters page-2',
      'DescribeCacheClusters page-4',
      'DescribeCacheClusters page-6',
      'DescribeReplicationGroups -',
      'DescribeReplicationGroups page-2',
      'DescribeReplicationGroups page-4',
      'DescribeServerlessCaches -',
    ],
  );
});

t.test('include/exclude reach toTopology', async (t) => {
  const fake = await startFakeElastiCache({ topology: bigTopology });
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 5000, filter: { include: ['rg*'], exclude: ['rg2*', 'rg3', 'rg4', 'rg5'] }, credentials });
  t.teardown(async () => {
    source.destroy();
    await fake.close();
  });
  t.same((await source.describe()).targets.map((x) => x.key), ['node/rg1-001/0001', 'primary/rg1', 'reader/rg1']);
});

t.test('an empty but valid answer is an empty topology, not an error', async (t) => {
  const { fake, source } = await setup(t);
  fake.setFault({ kind: 'empty' });
  t.same(await source.describe(), { targets: [], skipped: [] });
});

t.test('hostile data from the API is skipped, never thrown', async (t) => {
  const { source } = await setup(t, {
    clusters: [
      { id: 'ok', nodes: [{ id: '0001', address: 'ok.abc.use1.cache.amazonaws.com', port: 6379 }] },
      { id: 'bad id', nodes: [{ id: '0001', address: 'x.example.com', port: 6379 }] },
      { id: 'c2', nodes: [{ id: '0001', address: 'a.example.com -j ACCEPT', port: 6379 }, { id: '0002', address: 'b.example.com', port: 'abc' }, { id: '0003', address: '127.0.0.1', port: 6379 }] },
      { id: 'c3', engine: 'mysql', nodes: [{ id: '0001', address: 'c.example.com', port: 3306 }] },
    ],
    replicationGroups: [{ id: 'rg', members: [], primary: { address: 'p.example.com\n-A', port: 6379 }, reader: { address: 'r.example.com', port: 0 } }],
  });
  const topology = await source.describe();
  t.same(topology.targets.map((x) => x.key), ['node/ok/0001']);
  t.same(topology.skipped.map((s) => s.where), ['cache cluster #2', 'cluster c2 node 0001', 'cluster c2 node 0002', 'cluster c2 node 0003', 'cluster c3', 'replication group rg primary', 'replication group rg reader']);
});

const faults: { kind: FaultKind; code: string; retryable: boolean; message: RegExp }[] = [
  { kind: 'throttling', code: 'Throttling', retryable: true, message: /^DescribeCacheClusters \(page 1\) failed: Throttling: Rate exceeded; AWS is rate-limiting/ },
  { kind: 'internal-error', code: 'InternalFailure', retryable: true, message: /^DescribeCacheClusters \(page 1\) failed: InternalFailure: / },
  { kind: 'unavailable', code: 'ServiceUnavailable', retryable: true, message: /ServiceUnavailable: Service is unavailable/ },
  { kind: 'malformed-xml', code: 'BadResponse', retryable: true, message: /BadResponse: .*XML parse error.*could not be read/ },
  { kind: 'access-denied', code: 'AccessDenied', retryable: false, message: /AccessDenied: .*elasticache:DescribeCacheClusters and elasticache:DescribeReplicationGroups/ },
  { kind: 'expired-token', code: 'ExpiredToken', retryable: true, message: /ExpiredToken: The security token included in the request is expired/ },
];

for (const { kind, code, retryable, message } of faults) {
  t.test(`fault ${kind}: DiscoveryError ${code}, retryable ${retryable}, no partial data`, async (t) => {
    const { fake, source } = await setup(t);
    fake.setFault({ kind });
    const { err } = await describeError(source);
    t.type(err, DiscoveryError);
    t.equal(err.code, code);
    t.equal(err.retryable, retryable);
    t.match(err.message, message);
    t.ok(err.cause, 'keeps the SDK error as cause');
    const requests = fake.requests();
    t.ok(requests.length <= 4, `modest retries (two sources, at most two attempts each): ${requests.length} requests`);
    t.notOk(requests.some((r) => r.action === 'DescribeReplicationGroups'), 'stops at the first failure');
  });
}

const serverlessCaches = [1, 2, 3, 4, 5].map((n) => ({
  name: `sl${n}`,
  engine: n === 5 ? 'memcached' : 'valkey',
  endpoint: { address: `sl${n}-abc.serverless.use1.cache.amazonaws.com`, port: n === 5 ? 11211 : 6379 },
  reader: { address: `sl${n}-abc.serverless.use1.cache.amazonaws.com`, port: n === 5 ? 11212 : 6380 },
}));
const withServerless: FakeTopology = { ...bigTopology, serverlessCaches };

t.test('DescribeServerlessCaches is read page by page (NextToken) through the real SDK', async (t) => {
  const { fake, source } = await setup(t, withServerless);
  const topology = await source.describe();
  t.equal(topology.held, undefined, 'nothing held');
  const serverless = topology.targets.filter((x) => x.serverlessCacheName !== undefined);
  t.equal(serverless.length, 10, 'two targets for each of five caches');
  t.match(topology.targets.find((x) => x.key === 'serverless-reader/sl5'), { engine: 'memcached', targetPort: 11212, tls: true });
  t.same(
    fake.requests().filter((r) => r.action === 'DescribeServerlessCaches').map((r) => r.marker ?? '-'),
    ['-', 'page-2', 'page-4'],
  );
});

t.test('each source governs its own targets: a failing one is held, the other answers', async (t) => {
  const cases = [
    { fault: { kind: 'internal-error' as const, action: 'DescribeServerlessCaches' as const }, held: 'serverless', code: 'InternalFailure', where: /^DescribeServerlessCaches \(page 1\) failed/ },
    { fault: { kind: 'second-page-fails' as const, action: 'DescribeServerlessCaches' as const }, held: 'serverless', code: 'InternalFailure', where: /^DescribeServerlessCaches \(page 2\) failed/ },
    { fault: { kind: 'second-page-fails' as const, action: 'DescribeReplicationGroups' as const }, held: 'classic', code: 'InternalFailure', where: /^DescribeReplicationGroups \(page 2\) failed/ },
    { fault: { kind: 'access-denied' as const, action: 'DescribeServerlessCaches' as const }, held: 'serverless', code: 'AccessDenied', where: /give the instance role elasticache:DescribeServerlessCaches/ },
  ];
  for (const c of cases) {
    const { fake, source } = await setup(t, withServerless);
    fake.setFault(c.fault);
    const topology = await source.describe();
    t.same(topology.held, [c.held], `${c.fault.action} ${c.fault.kind}: ${c.held} held`);
    t.equal(topology.failures?.length, 1);
    t.equal(topology.failures?.[0]?.error.code, c.code);
    t.match(topology.failures?.[0]?.error.message, c.where);
    const fromServerless = topology.targets.filter((x) => x.serverlessCacheName !== undefined).length;
    t.equal(fromServerless, c.held === 'serverless' ? 0 : 10, 'Serverless targets only when its call answered');
    t.equal(topology.targets.length - fromServerless, c.held === 'classic' ? 0 : 18, 'classic targets only when their calls answered');
  }
});

t.test('every source failing is one DiscoveryError, as before', async (t) => {
  const { fake, source } = await setup(t, withServerless);
  fake.setFault({ kind: 'second-page-fails' });
  const { err } = await describeError(source);
  t.equal(err.code, 'InternalFailure');
  t.match(err.message, /^DescribeCacheClusters \(page 2\) failed: InternalFailure/);
  t.notOk(fake.requests().some((r) => r.action === 'DescribeReplicationGroups'), 'the classic source stops at its first failure');
});

t.test('the SDK retries once: a single throttled or failed page is ridden over', async (t) => {
  const { fake, source } = await setup(t);
  fake.setFault({ kind: 'throttling', count: 1 });
  t.equal((await source.describe()).targets.length, 18);
  fake.setFault({ kind: 'second-page-fails', count: 1 });
  t.equal((await source.describe()).targets.length, 18);
  fake.clearRequests();
  fake.setFault({ kind: 'internal-error' });
  await describeError(source);
  t.same(
    fake.requests().map((r) => r.action),
    ['DescribeCacheClusters', 'DescribeCacheClusters', 'DescribeServerlessCaches', 'DescribeServerlessCaches'],
    'two attempts per source, then give up',
  );
});

t.test('a hung API returns Timeout within timeoutMs plus a little', async (t) => {
  const timeoutMs = 800;
  const { fake, source } = await setup(t, bigTopology, timeoutMs);
  fake.setFault({ kind: 'hang' });
  const { err, ms } = await describeError(source);
  t.equal(err.code, 'Timeout');
  t.equal(err.retryable, true);
  t.match(err.message, /^DescribeCacheClusters \(page 1\) did not complete within 800 ms \(discovery\.apiTimeout\)/);
  t.ok(ms >= timeoutMs - 50 && ms < timeoutMs + 500, `took ${Math.round(ms)} ms`);
});

t.test('the budget covers the whole describe, not each request', async (t) => {
  // Every answer is slow but well inside the per-request timeout; seven of them are not inside the budget.
  const fake = await startFakeElastiCache({ topology: bigTopology });
  const slow = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (chunk: Buffer) => body.push(chunk));
    const relay = async () => {
      const answer = await fetch(fake.url, { method: 'POST', headers: { 'content-type': String(req.headers['content-type']) }, body: Buffer.concat(body) });
      res.writeHead(answer.status, { 'content-type': 'text/xml', 'x-amzn-RequestId': 'slow' }).end(await answer.text());
    };
    req.on('end', () => setTimeout(() => relay().catch(() => res.destroy()), 200));
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  const timeoutMs = 900;
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`, timeoutMs, filter: all, credentials });
  t.teardown(async () => {
    source.destroy();
    slow.closeAllConnections();
    await new Promise((r) => slow.close(r));
    await fake.close();
  });
  const { err, ms } = await describeError(source);
  t.equal(err.code, 'Timeout');
  t.match(err.message, /\(page \d\) did not complete within 900 ms/);
  t.ok(ms < timeoutMs + 500, `took ${Math.round(ms)} ms`);
});

t.test("the caller's AbortSignal is honoured", async (t) => {
  const { fake, source } = await setup(t, bigTopology, 5000);
  fake.setFault({ kind: 'hang' });
  const { err, ms } = await describeError(source, AbortSignal.timeout(200));
  t.equal(err.code, 'Aborted');
  t.match(err.message, /was cancelled/);
  t.ok(ms < 1500, `took ${Math.round(ms)} ms, not the 5000 ms budget`);
  const before = new AbortController();
  before.abort();
  t.equal((await describeError(source, before.signal)).err.code, 'Aborted');
});

t.test('nothing listening: Network, retryable', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, timeoutMs: 5000, filter: all, credentials });
  t.teardown(() => source.destroy());
  const { err } = await describeError(source);
  t.equal(err.code, 'Network');
  t.equal(err.retryable, true);
  t.match(err.message, /ECONNREFUSED/);
});

/** A source pointed at a server that always answers `status` with `body`. */
async function sourceAnswering(t: Test, status: number, body: string, headers: Record<string, string> = {}) {
  const server = createServer((_req, res) => res.writeHead(status, { 'content-type': 'text/xml', ...headers }).end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, timeoutMs: 5000, filter: all, credentials });
  t.teardown(async () => {
    source.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return source;
}

t.test('a marker handed back twice is a bad response, not an endless loop or a partial answer', async (t) => {
  const source = await sourceAnswering(
    t,
    200,
    '<DescribeCacheClustersResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/"><DescribeCacheClustersResult>' +
      '<Marker>again</Marker><CacheClusters></CacheClusters></DescribeCacheClustersResult></DescribeCacheClustersResponse>',
  );
  const { err } = await describeError(source);
  t.equal(err.code, 'BadResponse');
  t.match(err.message, /^DescribeCacheClusters \(page 2\) returned marker "again" a second time/);
});

t.test('other answers: client errors are not retryable; proxy pages are never taken for an answer', async (t) => {
  const invalid = await sourceAnswering(t, 400, '<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>bad</Message></Error><RequestId>r</RequestId></ErrorResponse>');
  t.match(await describeError(invalid), { err: { code: 'InvalidParameterValue', retryable: false, message: /failed: InvalidParameterValue: bad$/ } });
  const gateway = await sourceAnswering(t, 502, '<html><body>Bad Gateway</body></html>');
  t.match(await describeError(gateway), { err: { code: 'HTTP502', retryable: true, message: /^DescribeCacheClusters \(page 1\) failed: HTTP502: HTTP 502 without an AWS error body/ } });
  const portal = await sourceAnswering(t, 200, '<html><body>Please log in</body></html>');
  t.match(await describeError(portal), { err: { code: 'BadResponse', retryable: true, message: /neither a result list nor an AWS request id/ } });
  const blank = await sourceAnswering(t, 200, '');
  t.match(await describeError(blank), { err: { code: 'BadResponse' } });
});

t.test('an AWS answer that leaves out an empty list still counts as empty', async (t) => {
  const source = await sourceAnswering(
    t,
    200,
    '<DescribeCacheClustersResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/"><DescribeCacheClustersResult/></DescribeCacheClustersResponse>',
    { 'x-amzn-RequestId': 'b1c5a7e2-0000-4000-8000-000000000000' },
  );
  t.same(await source.describe(), { targets: [], skipped: [] });
});

t.test('no credentials anywhere: Credentials, with what to do', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });
  for (const key of Object.keys(process.env)) if (key.startsWith('AWS_') && key !== 'AWS_EC2_METADATA_DISABLED') delete process.env[key];
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/config';
  const fake = await startFakeElastiCache({ topology: bigTopology });
  const source = new ElastiCacheSource({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 5000, filter: all });
  t.teardown(async () => {
    source.destroy();
    await fake.close();
  });
  const { err } = await describeError(source);
  t.equal(err.code, 'Credentials');
  t.match(err.message, /attach an instance role or set AWS_ACCESS_KEY_ID/);
  t.equal(fake.requests().length, 0, 'nothing was sent');
});

t.test('a ready client is used as given', async (t) => {
  const fake: FakeElastiCache = await startFakeElastiCache({ topology: bigTopology });
  const client = new ElastiCacheClient({ region: 'eu-west-1', endpoint: fake.url, credentials, maxAttempts: 1 });
  const source = new ElastiCacheSource({ region: 'ignored-1', timeoutMs: 5000, filter: all, client });
  t.teardown(async () => {
    source.destroy();
    await fake.close();
  });
  t.equal((await source.describe()).targets.length, 18);
});
