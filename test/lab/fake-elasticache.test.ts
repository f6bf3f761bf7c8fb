import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeElastiCache, XML_NAMESPACE, type FakeTopology } from '../../lab/fake-elasticache.js';

const topology: FakeTopology = {
  clusters: [
    { id: 'mc', engine: 'memcached', nodes: [1, 2, 3].map((n) => ({ id: `000${n}`, address: `mc.abc.000${n}.use1.cache.amazonaws.com`, port: 11211 })) },
    { id: 'orders-001', replicationGroupId: 'orders', nodes: [{ id: '0001', address: 'orders-001.abc.use1.cache.amazonaws.com', port: 6379 }] },
    { id: 'orders-002', replicationGroupId: 'orders', nodes: [{ id: '0001', address: 'orders-002.abc.use1.cache.amazonaws.com', port: 6379 }] },
    { id: 'fresh', nodes: [{ id: '0001' }] },
    { id: 'x<&"y', engine: 'valkey', nodes: [{ id: '0001', address: 'a b\n"c"', port: 'not a port' }] },
  ],
  replicationGroups: [
    { id: 'orders', engine: 'redis', members: ['orders-001', 'orders-002'], primary: { address: 'orders.abc.ng.use1.cache.amazonaws.com', port: 6379 }, reader: { address: 'orders-ro.abc.ng.use1.cache.amazonaws.com', port: 6379 } },
    { id: 'cfg', clusterEnabled: true, members: [] },
  ],
};

async function call(url: string, params: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ Version: '2015-02-02', ...params }) });
  return { status: res.status, body: await res.text() };
}

const tags = (body: string, name: string) => [...body.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]);

t.test('DescribeCacheClusters: XML, paging by Marker, node info only when asked', async (t) => {
  const fake = await startFakeElastiCache({ topology });
  t.teardown(fake.close);

  const first = await call(fake.url, { Action: 'DescribeCacheClusters', ShowCacheNodeInfo: 'true' });
  t.equal(first.status, 200);
  t.match(first.body, `<DescribeCacheClustersResponse xmlns="${XML_NAMESPACE}"><DescribeCacheClustersResult><Marker>page-2</Marker>`);
  t.same(tags(first.body, 'CacheClusterId'), ['mc', 'orders-001']);
  t.same(tags(first.body, 'CacheNodeId'), ['0001', '0002', '0003', '0001']);
  t.match(first.body, '<Endpoint><Address>mc.abc.0001.use1.cache.amazonaws.com</Address><Port>11211</Port></Endpoint>');
  t.match(first.body, '<RequestId>fake-1</RequestId>');

  const ids: string[] = [];
  let marker: string | undefined;
  do {
    const page = await call(fake.url, { Action: 'DescribeCacheClusters', ShowCacheNodeInfo: 'true', ...(marker ? { Marker: marker } : {}) });
    ids.push(...(tags(page.body, 'CacheClusterId') as string[]));
    marker = tags(page.body, 'Marker')[0];
  } while (marker);
  t.same(ids, ['mc', 'orders-001', 'orders-002', 'fresh', 'x&lt;&amp;&quot;y']);

  const creating = await call(fake.url, { Action: 'DescribeCacheClusters', ShowCacheNodeInfo: 'true', CacheClusterId: 'fresh' });
  t.match(creating.body, '<CacheClusterStatus>creating</CacheClusterStatus>');
  t.match(creating.body, '<CacheNode><CacheNodeId>0001</CacheNodeId><CacheNodeStatus>creating</CacheNodeStatus></CacheNode>');
  const hostile = await call(fake.url, { Action: 'DescribeCacheClusters', ShowCacheNodeInfo: 'true', CacheClusterId: 'x<&"y' });
  t.match(hostile.body, '<Address>a b\n&quot;c&quot;</Address><Port>not a port</Port>');

  const bare = await call(fake.url, { Action: 'DescribeCacheClusters', MaxRecords: '100' });
  t.notMatch(bare.body, '<CacheNodes>');
  t.notMatch(bare.body, '<Marker>');
  t.equal(tags(bare.body, 'CacheClusterId').length, 5);
  t.same(tags(bare.body, 'NumCacheNodes'), ['3', '1', '1', '1', '1']);

  const notInGroups = await call(fake.url, { Action: 'DescribeCacheClusters', ShowCacheClustersNotInReplicationGroups: 'true', MaxRecords: '20' });
  t.same(tags(notInGroups.body, 'CacheClusterId'), ['mc', 'fresh', 'x&lt;&amp;&quot;y']);
});

t.test('DescribeReplicationGroups: endpoints, members, cluster mode', async (t) => {
  const fake = await startFakeElastiCache({ topology });
  t.teardown(fake.close);
  const orders = await call(fake.url, { Action: 'DescribeReplicationGroups', ReplicationGroupId: 'orders' });
  t.equal(orders.status, 200);
  t.match(orders.body, '<MemberClusters><ClusterId>orders-001</ClusterId><ClusterId>orders-002</ClusterId></MemberClusters>');
  t.match(orders.body, '<PrimaryEndpoint><Address>orders.abc.ng.use1.cache.amazonaws.com</Address><Port>6379</Port></PrimaryEndpoint>');
  t.match(orders.body, '<ReaderEndpoint><Address>orders-ro.abc.ng.use1.cache.amazonaws.com</Address>');
  t.same(tags(orders.body, 'CurrentRole'), ['primary', 'replica']);
  t.match(orders.body, '<ClusterEnabled>false</ClusterEnabled><ClusterMode>disabled</ClusterMode><Engine>redis</Engine>');
  const cfg = await call(fake.url, { Action: 'DescribeReplicationGroups', ReplicationGroupId: 'cfg' });
  t.match(cfg.body, '<ClusterEnabled>true</ClusterEnabled><ClusterMode>enabled</ClusterMode>');
  t.notMatch(cfg.body, 'PrimaryEndpoint');
  t.notMatch(cfg.body, '<Engine>');
});

t.test('errors: unknown action, missing things, bad paging parameters', async (t) => {
  const fake = await startFakeElastiCache({ topology });
  t.teardown(fake.close);
  const cases: [Record<string, string>, number, string][] = [
    [{ Action: 'DeleteCacheCluster' }, 400, 'InvalidAction'],
    [{}, 400, 'MissingAction'],
    [{ Action: 'DescribeCacheClusters', CacheClusterId: 'nope' }, 404, 'CacheClusterNotFound'],
    [{ Action: 'DescribeReplicationGroups', ReplicationGroupId: 'nope' }, 404, 'ReplicationGroupNotFoundFault'],
    [{ Action: 'DescribeCacheClusters', Marker: 'garbage' }, 400, 'InvalidParameterValue'],
    [{ Action: 'DescribeCacheClusters', Marker: 'page-99' }, 400, 'InvalidParameterValue'],
    [{ Action: 'DescribeCacheClusters', MaxRecords: '0' }, 400, 'InvalidParameterValue'],
    [{ Action: 'DescribeCacheClusters', MaxRecords: '101' }, 400, 'InvalidParameterValue'],
  ];
  for (const [params, status, code] of cases) {
    const r = await call(fake.url, params);
    t.equal(r.status, status, JSON.stringify(params));
    t.match(r.body, `<ErrorResponse xmlns="${XML_NAMESPACE}"><Error><Type>Sender</Type><Code>${code}</Code>`);
  }
  const viaGet = await fetch(`${fake.url}/?Action=DescribeReplicationGroups&MaxRecords=1`);
  t.equal(viaGet.status, 200);
  t.match(await viaGet.text(), '<Marker>page-1</Marker>');
  t.equal((await fetch(`${fake.url}/other`, { method: 'POST' })).status, 404);
});

t.test('faults: each kind, permanent or for the next N requests', async (t) => {
  const fake = await startFakeElastiCache({ topology });
  t.teardown(fake.close);
  const expected: [string, number, string][] = [
    ['throttling', 400, '<Code>Throttling</Code>'],
    ['internal-error', 500, '<Code>InternalFailure</Code>'],
    ['unavailable', 503, '<Code>ServiceUnavailable</Code>'],
    ['access-denied', 403, '<Code>AccessDenied</Code>'],
    ['expired-token', 403, '<Code>ExpiredToken</Code>'],
    ['malformed-xml', 200, '<Marker>tok</Mar'],
  ];
  for (const [kind, status, fragment] of expected) {
    fake.setFault({ kind: kind as never });
    for (const attempt of [1, 2]) {
      const r = await call(fake.url, { Action: 'DescribeCacheClusters' });
      t.equal(r.status, status, `${kind} #${attempt}`);
      t.match(r.body, fragment);
    }
  }
  fake.setFault({ kind: 'malformed-xml' });
  t.notMatch((await call(fake.url, { Action: 'DescribeReplicationGroups' })).body, /<\/DescribeReplicationGroupsResponse>/);

  fake.setFault({ kind: 'empty' });
  const empty = await call(fake.url, { Action: 'DescribeCacheClusters' });
  t.equal(empty.status, 200);
  t.match(empty.body, '<DescribeCacheClustersResult><CacheClusters></CacheClusters></DescribeCacheClustersResult>');

  fake.setFault({ kind: 'throttling', count: 2 });
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await call(fake.url, { Action: 'DescribeCacheClusters' })).status);
  t.same(statuses, [400, 400, 200]);

  fake.setFault({ kind: 'second-page-fails', count: 1 });
  t.equal((await call(fake.url, { Action: 'DescribeCacheClusters' })).status, 200, 'first page fine');
  t.equal((await call(fake.url, { Action: 'DescribeCacheClusters', Marker: 'page-2' })).status, 500, 'second page fails');
  t.equal((await call(fake.url, { Action: 'DescribeCacheClusters', Marker: 'page-2' })).status, 200, 'count used up');

  fake.setFault({ kind: 'throttling' });
  fake.setFault({ kind: 'none' });
  t.equal((await call(fake.url, { Action: 'DescribeCacheClusters' })).status, 200, '"none" clears');
});

t.test('hang: the request gets no answer; close() still returns', async (t) => {
  const fake = await startFakeElastiCache({ topology });
  fake.setFault({ kind: 'hang', count: 1 });
  const hung = call(fake.url, { Action: 'DescribeCacheClusters' }).then(
    () => 'answered',
    () => 'dropped',
  );
  const early = await Promise.race([hung, new Promise((r) => setTimeout(() => r('waiting'), 300))]);
  t.equal(early, 'waiting');
  t.equal((await call(fake.url, { Action: 'DescribeCacheClusters' })).status, 200, 'the next one is answered');
  t.match(fake.requests()[0], { action: 'DescribeCacheClusters', fault: 'hang', status: undefined });
  await fake.close();
  t.equal(await hung, 'dropped');
});

t.test('control over HTTP: topology, fault, request log', async (t) => {
  const fake = await startFakeElastiCache({});
  t.teardown(fake.close);
  const control = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${fake.url}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  t.equal(tags((await call(fake.url, { Action: 'DescribeCacheClusters' })).body, 'CacheClusterId').length, 0, 'starts empty');
  t.equal((await control('PUT', '/_fake/topology', { clusters: [{ id: 'c1', nodes: [{ id: '0001', address: '10.0.0.5', port: 6379 }] }] })).status, 200);
  t.same(tags((await call(fake.url, { Action: 'DescribeCacheClusters' })).body, 'CacheClusterId'), ['c1']);

  const bad = await control('PUT', '/_fake/topology', { clusters: [{ nodes: [] }] });
  t.equal(bad.status, 400);
  t.match(bad.json.error, /clusters\[0\]\.id|id/);
  t.equal((await control('PUT', '/_fake/topology', '{nope')).status, 400);
  t.equal((await control('PUT', '/_fake/fault', { kind: 'meteor' })).status, 400);
  t.equal((await control('PUT', '/_fake/fault', { kind: 'unavailable', count: 0 })).status, 400);
  t.equal((await control('GET', '/_fake/nothing')).status, 404);

  t.equal((await control('PUT', '/_fake/fault', { kind: 'unavailable', count: 1 })).status, 200);
  t.equal((await call(fake.url, { Action: 'DescribeReplicationGroups' })).status, 503);
  t.equal((await call(fake.url, { Action: 'DescribeReplicationGroups' })).status, 200);

  const log = await control('GET', '/_fake/requests');
  t.equal(log.json.count, 4);
  t.match(log.json.requests, [
    { action: 'DescribeCacheClusters', status: 200 },
    { action: 'DescribeCacheClusters', status: 200 },
    { action: 'DescribeReplicationGroups', status: 503, fault: 'unavailable' },
    { action: 'DescribeReplicationGroups', status: 200 },
  ]);
  t.type((log.json.requests as { at: unknown }[])[0]?.at, 'number');
  t.equal(fake.requests().length, 4);
  await control('DELETE', '/_fake/requests');
  t.equal((await control('GET', '/_fake/requests')).json.count, 0);
});

t.test('command line: one ready line with the real port, topology file, exit on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-fake-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'topology.json');
  writeFileSync(file, JSON.stringify(topology));
  const script = fileURLToPath(new URL('../../lab/fake-elasticache.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, script, '--listen', '127.0.0.1:0', '--topology', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) resolve(stdout);
    });
    child.once('exit', () => reject(new Error(`exited early: ${stderr}`)));
  });
  const match = /^fake-elasticache listening on (http:\/\/127\.0\.0\.1:(\d+))\n$/.exec(line);
  t.ok(match, line);
  t.not(match?.[2], '0');
  const page = await call(match?.[1] as string, { Action: 'DescribeCacheClusters', MaxRecords: '100' });
  t.equal(tags(page.body, 'CacheClusterId').length, 5);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  t.equal(stdout, line, 'nothing else on stdout');
});

t.test('command line: bad arguments exit 2 with usage', async (t) => {
  const script = fileURLToPath(new URL('../../lab/fake-elasticache.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, script, '--listen', 'localhost'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 2);
  t.match(stderr, /--listen expects IPV4:PORT, got localhost\nusage:/);
});
