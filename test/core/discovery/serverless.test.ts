import t from 'tap';
import type { CacheCluster, ServerlessCache } from '@aws-sdk/client-elasticache';
import { toTopology } from '../../../src/core/discovery/topology.js';

const all = { include: ['*'], exclude: [] };

const serverless = (name: string, extra: Partial<ServerlessCache> = {}): ServerlessCache => ({
  ServerlessCacheName: name,
  Status: 'available',
  Engine: 'valkey',
  Endpoint: { Address: `${name}-abc123.serverless.use1.cache.amazonaws.com`, Port: 6379 },
  ReaderEndpoint: { Address: `${name}-abc123.serverless.use1.cache.amazonaws.com`, Port: 6380 },
  ...extra,
});

const topologyOf = (caches: ServerlessCache[], filter = all, clusters: CacheCluster[] = []) =>
  toTopology({ cacheClusters: clusters, replicationGroups: [], serverlessCaches: caches }, filter);

t.test('an available Serverless cache gives a serverless and a serverless-reader target, both TLS', async (t) => {
  const { targets, skipped } = topologyOf([serverless('sessions')]);
  t.same(skipped, []);
  // Sorted by key: serverless-reader/ comes before serverless/.
  t.same(targets, [
    {
      key: 'serverless-reader/sessions',
      kind: 'serverless-reader',
      engine: 'valkey',
      serverlessCacheName: 'sessions',
      tls: true,
      address: 'sessions-abc123.serverless.use1.cache.amazonaws.com',
      targetPort: 6380,
    },
    {
      key: 'serverless/sessions',
      kind: 'serverless',
      engine: 'valkey',
      serverlessCacheName: 'sessions',
      tls: true,
      address: 'sessions-abc123.serverless.use1.cache.amazonaws.com',
      targetPort: 6379,
    },
  ]);
});

t.test('engines valkey, redis and memcached; status compared without case', async (t) => {
  const { targets } = topologyOf([
    serverless('a', { Engine: 'redis', Status: 'AVAILABLE' }),
    serverless('b', { Engine: 'memcached', Status: 'modifying' }),
    serverless('c', { Engine: 'Valkey' }),
  ]);
  t.same(
    targets.map((x) => `${x.key} ${x.engine}`),
    ['serverless-reader/a redis', 'serverless-reader/b memcached', 'serverless-reader/c valkey', 'serverless/a redis', 'serverless/b memcached', 'serverless/c valkey'],
  );
});

t.test('caches not serving, without endpoints, or with hostile data are skipped with a reason', async (t) => {
  const { targets, skipped } = topologyOf([
    serverless('creating', { Status: 'creating', Endpoint: undefined, ReaderEndpoint: undefined }),
    serverless('deleting', { Status: 'deleting' }),
    serverless('noreader', { ReaderEndpoint: undefined }),
    serverless('bad name!'),
    serverless('mongo', { Engine: 'mongodb' }),
    serverless('evil', { Endpoint: { Address: 'x; iptables -F', Port: 6379 } }),
    serverless('meta', { ReaderEndpoint: { Address: '169.254.169.254', Port: 80 } }),
    { Status: 'available' } as ServerlessCache,
  ]);
  t.same(targets.map((x) => x.key), ['serverless-reader/evil', 'serverless/meta', 'serverless/noreader']);
  t.same(
    skipped.map((s) => s.where),
    [
      'serverless cache creating',
      'serverless cache deleting',
      'serverless cache noreader reader endpoint',
      'serverless cache #4',
      'serverless cache mongo',
      'serverless cache evil endpoint',
      'serverless cache meta reader endpoint',
      'serverless cache #8',
    ],
  );
  t.match(skipped[0]?.reason, /not serving yet \(status "creating"\)/);
  t.match(skipped[5]?.reason, /neither an IPv4 address nor a DNS name/);
});

t.test('include/exclude globs match the cache name', async (t) => {
  const { targets, skipped } = topologyOf([serverless('prod-sessions'), serverless('dev-sessions')], { include: ['prod-*'], exclude: [] });
  t.same(targets.map((x) => x.key), ['serverless-reader/prod-sessions', 'serverless/prod-sessions']);
  t.same(skipped, [{ where: 'serverless cache dev-sessions', reason: 'not selected by discovery.include/exclude' }]);
});

t.test('a Memcached cluster gives a configuration target for its .cfg. endpoint, after its nodes', async (t) => {
  const memcached: CacheCluster = {
    CacheClusterId: 'mc',
    Engine: 'memcached',
    CacheClusterStatus: 'available',
    TransitEncryptionEnabled: false,
    ConfigurationEndpoint: { Address: 'mc.abc123.cfg.use1.cache.amazonaws.com', Port: 11211 },
    CacheNodes: [{ CacheNodeId: '0001', Endpoint: { Address: 'mc.abc123.0001.use1.cache.amazonaws.com', Port: 11211 } }],
  };
  const { targets, skipped } = topologyOf([], all, [memcached]);
  t.same(skipped, []);
  t.same(targets.map((x) => `${x.key} ${x.address}:${x.targetPort} tls=${x.tls}`), [
    'configuration/mc mc.abc123.cfg.use1.cache.amazonaws.com:11211 tls=false',
    'node/mc/0001 mc.abc123.0001.use1.cache.amazonaws.com:11211 tls=false',
  ]);
  t.equal(targets[0]?.cacheClusterId, 'mc');
});

t.test('TransitEncryptionEnabled is carried per cache; absent means unknown', async (t) => {
  const base = { Engine: 'redis', CacheClusterStatus: 'available', CacheNodes: [{ CacheNodeId: '0001', Endpoint: { Address: 'n.abc.use1.cache.amazonaws.com', Port: 6379 } }] };
  const { targets } = toTopology(
    {
      cacheClusters: [
        { CacheClusterId: 'on', TransitEncryptionEnabled: true, TransitEncryptionMode: 'required', ...base },
        { CacheClusterId: 'off', TransitEncryptionEnabled: false, ...base },
        { CacheClusterId: 'unknown', ...base },
      ],
      replicationGroups: [
        {
          ReplicationGroupId: 'grp',
          TransitEncryptionEnabled: true,
          ClusterEnabled: true,
          ConfigurationEndpoint: { Address: 'clustercfg.grp.abc.use1.cache.amazonaws.com', Port: 6379 },
        },
      ],
    },
    all,
  );
  t.same(targets.map((x) => `${x.key} ${x.tls}`), ['configuration/grp true', 'node/off/0001 false', 'node/on/0001 true', 'node/unknown/0001 undefined']);
});

t.test('a cluster-mode group without a configuration endpoint yet is skipped with its status', async (t) => {
  const { targets, skipped } = toTopology({ cacheClusters: [], replicationGroups: [{ ReplicationGroupId: 'grp', Status: 'creating', ClusterEnabled: true }] }, all);
  t.same(targets, []);
  t.same(skipped, [{ where: 'replication group grp configuration endpoint', reason: 'no configuration endpoint yet (status "creating")' }]);
});
