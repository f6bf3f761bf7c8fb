import t from 'tap';
import type { CacheCluster, ReplicationGroup } from '@aws-sdk/client-elasticache';
import { isHostName, toTopology } from '../../../src/core/discovery/topology.js';

const all = { include: ['*'], exclude: [] };

const node = (id: string, address?: string, port?: number) => ({
  CacheNodeId: id,
  CacheNodeStatus: address ? 'available' : 'creating',
  ...(address === undefined ? {} : { Endpoint: { Address: address, Port: port } }),
});

const cluster = (id: string, engine: string, nodes: ReturnType<typeof node>[], extra: Partial<CacheCluster> = {}): CacheCluster => ({
  CacheClusterId: id,
  Engine: engine,
  CacheClusterStatus: 'available',
  NumCacheNodes: nodes.length,
  CacheNodes: nodes,
  ...extra,
});

const memcachedExample = cluster('my-mem-cluster', 'memcached', [
  node('0001', 'my-mem-cluster.7ef-example.0001.usw2.cache.amazonaws.com', 11211),
  node('0002', 'my-mem-cluster.7ef-example.0002.usw2.cache.amazonaws.com', 11211),
  node('0003', 'my-mem-cluster.7ef-example.0003.usw2.cache.amazonaws.com', 11211),
]);

const disabledGroup: ReplicationGroup = {
  ReplicationGroupId: 'orders',
  Status: 'available',
  MemberClusters: ['orders-001', 'orders-002'],
  ClusterEnabled: false,
  ClusterMode: 'disabled',
  NodeGroups: [
    {
      NodeGroupId: '0001',
      PrimaryEndpoint: { Address: 'orders.abc123.ng.0001.use1.cache.amazonaws.com', Port: 6379 },
      ReaderEndpoint: { Address: 'orders-ro.abc123.ng.0001.use1.cache.amazonaws.com', Port: 6379 },
    },
  ],
};
const ordersClusters = ['orders-001', 'orders-002'].map((id) =>
  cluster(id, 'redis', [node('0001', `${id}.abc123.0001.use1.cache.amazonaws.com`, 6379)], { ReplicationGroupId: 'orders' }),
);

t.test("AWS's three-node Memcached example gives three node targets in order", async (t) => {
  const { targets, skipped } = toTopology({ cacheClusters: [memcachedExample], replicationGroups: [] }, all);
  t.same(skipped, []);
  t.same(targets, [1, 2, 3].map((n) => ({
    key: `node/my-mem-cluster/000${n}`,
    kind: 'node',
    engine: 'memcached',
    cacheClusterId: 'my-mem-cluster',
    cacheNodeId: `000${n}`,
    address: `my-mem-cluster.7ef-example.000${n}.usw2.cache.amazonaws.com`,
    targetPort: 11211,
  })));
});

t.test('cluster mode disabled: every member node plus primary and reader', async (t) => {
  const { targets, skipped } = toTopology({ cacheClusters: ordersClusters, replicationGroups: [disabledGroup] }, all);
  t.same(skipped, []);
  t.same(targets.map((x) => x.key), ['node/orders-001/0001', 'node/orders-002/0001', 'primary/orders', 'reader/orders']);
  t.match(targets[0], { replicationGroupId: 'orders', engine: 'redis' });
  t.same(targets[2], {
    key: 'primary/orders',
    kind: 'primary',
    engine: 'redis',
    replicationGroupId: 'orders',
    address: 'orders.abc123.ng.0001.use1.cache.amazonaws.com',
    targetPort: 6379,
  });
  t.equal(targets[3]?.address, 'orders-ro.abc123.ng.0001.use1.cache.amazonaws.com');
});

t.test("a group's engine: its own field, else a member cluster's, else redis", async (t) => {
  const valkeyMembers = ordersClusters.map((c) => ({ ...c, Engine: 'valkey' }));
  const engineOf = (groups: ReplicationGroup[], clusters: CacheCluster[]) =>
    toTopology({ cacheClusters: clusters, replicationGroups: groups }, all).targets.find((x) => x.kind === 'primary')?.engine;
  t.equal(engineOf([{ ...disabledGroup, Engine: 'Valkey' }], ordersClusters), 'valkey');
  t.equal(engineOf([disabledGroup], valkeyMembers), 'valkey');
  t.equal(engineOf([disabledGroup], []), 'redis');
});

t.test('cluster mode enabled: nodes from member clusters and the configuration endpoint, no primary or reader', async (t) => {
  const shards = ['cfg-0001-001', 'cfg-0001-002', 'cfg-0002-001'].map((id) =>
    cluster(id, 'redis', [node('0001', `${id}.abc123.use1.cache.amazonaws.com`, 6379)], { ReplicationGroupId: 'cfg' }),
  );
  for (const mode of [{ ClusterEnabled: true }, { ClusterMode: 'enabled' as const }]) {
    const group: ReplicationGroup = {
      ReplicationGroupId: 'cfg',
      MemberClusters: shards.map((s) => s.CacheClusterId as string),
      ConfigurationEndpoint: { Address: 'clustercfg.cfg.abc123.use1.cache.amazonaws.com', Port: 6379 },
      NodeGroups: [{ NodeGroupId: '0001' }, { NodeGroupId: '0002' }],
      ...mode,
    };
    const { targets, skipped } = toTopology({ cacheClusters: shards, replicationGroups: [group] }, all);
    t.same(targets.map((x) => x.key), ['configuration/cfg', 'node/cfg-0001-001/0001', 'node/cfg-0001-002/0001', 'node/cfg-0002-001/0001']);
    t.same(targets[0], {
      key: 'configuration/cfg',
      kind: 'configuration',
      engine: 'redis',
      replicationGroupId: 'cfg',
      address: 'clustercfg.cfg.abc123.use1.cache.amazonaws.com',
      targetPort: 6379,
    });
    t.same(skipped, []);
  }
});

t.test('clusters and nodes without endpoints are skipped and recorded, never an error', async (t) => {
  const creating = cluster('fresh', 'redis', [], { CacheClusterStatus: 'creating', CacheNodes: undefined });
  const growing = cluster('mc', 'memcached', [node('0001', 'mc.abc.0001.use1.cache.amazonaws.com', 11211), node('0002')]);
  const half = cluster('half', 'redis', [{ CacheNodeId: '0001', Endpoint: { Address: 'half.abc.use1.cache.amazonaws.com' } }] as never);
  const newGroup: ReplicationGroup = { ReplicationGroupId: 'newrg', Status: 'creating', NodeGroups: [{ NodeGroupId: '0001' }] };
  const noNodeGroups: ReplicationGroup = { ReplicationGroupId: 'newer', Status: 'creating' };
  const { targets, skipped } = toTopology({ cacheClusters: [creating, growing, half], replicationGroups: [newGroup, noNodeGroups] }, all);
  t.same(targets.map((x) => x.key), ['node/mc/0001']);
  t.same(skipped, [
    { where: 'cluster fresh', reason: 'no nodes listed yet (cluster status "creating")' },
    { where: 'cluster mc node 0002', reason: 'no endpoint yet (node status "creating")' },
    { where: 'cluster half node 0001', reason: 'endpoint "half.abc.use1.cache.amazonaws.com" has no port, or one that is not a number' },
    { where: 'replication group newrg primary', reason: 'no primary endpoint yet (status "creating")' },
    { where: 'replication group newrg reader', reason: 'no reader endpoint yet (status "creating")' },
    { where: 'replication group newer', reason: 'no node group yet (status "creating")' },
  ]);
});

t.test('engines: valkey and any case accepted, lower-cased; others skipped with a reason', async (t) => {
  const { targets, skipped } = toTopology(
    {
      cacheClusters: [
        cluster('v1', 'valkey', [node('0001', 'v1.abc.0001.use1.cache.amazonaws.com', 6379)]),
        cluster('r1', 'REDIS', [node('0001', 'r1.abc.0001.use1.cache.amazonaws.com', 6380)]),
        cluster('m1', 'Memcached', [node('0001', 'm1.abc.0001.use1.cache.amazonaws.com', 11211)]),
        cluster('x1', 'mysql', [node('0001', 'x1.abc.0001.use1.cache.amazonaws.com', 3306)]),
        { CacheClusterId: 'x2', CacheNodes: [node('0001', 'x2.example.com', 1)] },
      ],
      replicationGroups: [{ ...disabledGroup, ReplicationGroupId: 'weird', Engine: 'dragonfly' }],
    },
    all,
  );
  t.same(targets.map((x) => [x.key, x.engine]), [
    ['node/m1/0001', 'memcached'],
    ['node/r1/0001', 'redis'],
    ['node/v1/0001', 'valkey'],
  ]);
  t.same(skipped, [
    { where: 'cluster x1', reason: 'engine "mysql" is not redis, valkey or memcached' },
    { where: 'cluster x2', reason: 'engine undefined is not redis, valkey or memcached' },
    { where: 'replication group weird', reason: 'engine "dragonfly" is not redis, valkey or memcached' },
  ]);
});

t.test('include/exclude globs on cluster and replication group ids', async (t) => {
  const input = {
    cacheClusters: [...ordersClusters, memcachedExample, cluster('sessions', 'valkey', [node('0001', 'sessions.abc.use1.cache.amazonaws.com', 6379)])],
    replicationGroups: [disabledGroup],
  };
  const keys = (include: string[], exclude: string[] = []) => toTopology(input, { include, exclude }).targets.map((x) => x.key);
  t.same(keys(['orders']), ['node/orders-001/0001', 'node/orders-002/0001', 'primary/orders', 'reader/orders'], 'a group id selects its member nodes too');
  t.same(keys(['*'], ['orders-00?']), ['node/my-mem-cluster/0003', 'node/my-mem-cluster/0001', 'node/my-mem-cluster/0002', 'node/sessions/0001', 'primary/orders', 'reader/orders'].sort());
  t.same(keys(['*'], ['orders']), ['node/my-mem-cluster/0001', 'node/my-mem-cluster/0002', 'node/my-mem-cluster/0003', 'node/sessions/0001']);
  t.same(keys(['MY-*']), ['node/my-mem-cluster/0001', 'node/my-mem-cluster/0002', 'node/my-mem-cluster/0003'], 'case-insensitive: AWS stores ids in lower case');
  t.same(keys(['sess?ons', 'nothing*']), ['node/sessions/0001']);
  t.same(keys(['s*'], ['*']), []);
  const { skipped } = toTopology(input, { include: ['sessions'], exclude: [] });
  t.same(skipped.map((s) => s.where), ['cluster orders-001', 'cluster orders-002', 'cluster my-mem-cluster', 'replication group orders']);
  t.match(skipped[0]?.reason, /discovery\.include\/exclude/);
});

t.test('hostile values never become targets; each is skipped with where and why', async (t) => {
  const hostNode = (address: unknown, port: unknown = 6379) => ({ CacheNodeId: '0001', Endpoint: { Address: address, Port: port } });
  const c = (id: unknown, nodes: unknown[], extra: Record<string, unknown> = {}) => ({ CacheClusterId: id, Engine: 'redis', CacheNodes: nodes, ...extra });
  const cases: { name: string; cluster: unknown; where: string; reason: RegExp }[] = [
    { name: 'space in cluster id', cluster: c('bad id', [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /CacheClusterId "bad id" is not 1-64 letters/ },
    { name: 'iptables option in cluster id', cluster: c('-j ACCEPT', [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /"-j ACCEPT"/ },
    { name: 'leading hyphen', cluster: c('-x', [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /is not 1-64/ },
    { name: 'newline in cluster id', cluster: c('c1\n-A INPUT', [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /"c1\\n-A INPUT"/ },
    { name: 'unicode cluster id', cluster: c('cаche', [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /\\u0430/ },
    { name: '300-char cluster id', cluster: c('a'.repeat(300), [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /\.\.\. is not 1-64/ },
    { name: 'missing cluster id', cluster: c(undefined, [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /CacheClusterId is missing/ },
    { name: 'numeric cluster id', cluster: c(42, [hostNode('a.example.com')]), where: 'cache cluster #1', reason: /CacheClusterId 42 is not text/ },
    { name: 'quote in node id', cluster: c('c1', [{ ...hostNode('a.example.com'), CacheNodeId: '00"01' }]), where: 'cluster c1 node #1', reason: /CacheNodeId "00\\"01"/ },
    { name: 'bad replication group id', cluster: c('c1', [hostNode('a.example.com')], { ReplicationGroupId: 'rg;reboot' }), where: 'cluster c1', reason: /ReplicationGroupId "rg;reboot"/ },
    { name: 'space in address', cluster: c('c1', [hostNode('a.example.com -j ACCEPT')]), where: 'cluster c1 node 0001', reason: /neither an IPv4 address nor a DNS name/ },
    { name: 'newline in address', cluster: c('c1', [hostNode('a.example.com\n10.0.0.1')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: 'quote in address', cluster: c('c1', [hostNode('a"b.example.com')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: 'unicode address', cluster: c('c1', [hostNode('cаche.example.com')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: '300-char address', cluster: c('c1', [hostNode(`${'a'.repeat(60)}.`.repeat(5) + 'com')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: 'numeric shorthand address', cluster: c('c1', [hostNode('127.1')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: 'decimal address', cluster: c('c1', [hostNode('2130706433')]), where: 'cluster c1 node 0001', reason: /neither/ },
    { name: 'loopback literal', cluster: c('c1', [hostNode('127.0.0.1')]), where: 'cluster c1 node 0001', reason: /127\.0\.0\.0\/8, which is never forwarded to/ },
    { name: 'metadata service literal', cluster: c('c1', [hostNode('169.254.169.254')]), where: 'cluster c1 node 0001', reason: /169\.254\.0\.0\/16/ },
    { name: 'address not text', cluster: c('c1', [hostNode({ x: 1 })]), where: 'cluster c1 node 0001', reason: /address \{"x":1\} is not text/ },
    { name: 'port 0', cluster: c('c1', [hostNode('a.example.com', 0)]), where: 'cluster c1 node 0001', reason: /port 0 is not a TCP port/ },
    { name: 'port 65536', cluster: c('c1', [hostNode('a.example.com', 65536)]), where: 'cluster c1 node 0001', reason: /port 65536/ },
    { name: 'negative port', cluster: c('c1', [hostNode('a.example.com', -1)]), where: 'cluster c1 node 0001', reason: /port -1/ },
    { name: 'fractional port', cluster: c('c1', [hostNode('a.example.com', 6379.5)]), where: 'cluster c1 node 0001', reason: /port 6379.5/ },
    { name: 'NaN port', cluster: c('c1', [hostNode('a.example.com', Number.NaN)]), where: 'cluster c1 node 0001', reason: /port null/ },
    { name: 'port as text', cluster: c('c1', [hostNode('a.example.com', '6379 -j')]), where: 'cluster c1 node 0001', reason: /port "6379 -j"/ },
    { name: 'endpoint without address', cluster: c('c1', [hostNode(null, 6379)]), where: 'cluster c1 node 0001', reason: /port \(6379\) but no address/ },
  ];
  for (const { name, cluster: bad, where, reason } of cases) {
    const good = cluster('good', 'redis', [node('0001', 'good.example.com', 6379)]);
    const { targets, skipped } = toTopology({ cacheClusters: [bad as CacheCluster, good], replicationGroups: [] }, all);
    t.same(targets.map((x) => x.key), ['node/good/0001'], `${name}: only the good target`);
    t.equal(skipped.length, 1, `${name}: one skipped item`);
    t.equal(skipped[0]?.where, where, `${name}: where`);
    t.match(skipped[0]?.reason, reason, `${name}: why`);
    t.ok(skipped.every((s) => /^[\x20-\x7e]*$/.test(s.where + s.reason)), `${name}: printable ASCII`);
  }
});

t.test('hostile replication group values', async (t) => {
  const group = (over: Record<string, unknown>) => ({ ...disabledGroup, ...over }) as ReplicationGroup;
  const { targets, skipped } = toTopology(
    {
      cacheClusters: [],
      replicationGroups: [
        group({ ReplicationGroupId: 'rg 1' }),
        group({ ReplicationGroupId: 'rg2', NodeGroups: [{ PrimaryEndpoint: { Address: "x'.example.com", Port: 6379 }, ReaderEndpoint: { Address: 'ok.example.com', Port: 99999 } }] }),
        group({ ReplicationGroupId: 'rg3', NodeGroups: 'garbage' }),
      ],
    },
    all,
  );
  t.same(targets, []);
  t.same(skipped.map((s) => s.where), ['replication group #1', 'replication group rg2 primary', 'replication group rg2 reader', 'replication group rg3']);
});

t.test('garbage shapes never throw', async (t) => {
  const garbage: unknown[] = [null, 1, 'x', [], {}, { CacheNodes: 'no' }, { CacheClusterId: 'c', Engine: 'redis', CacheNodes: [null, 5, { Endpoint: 'x' }] }];
  t.doesNotThrow(() => toTopology({ cacheClusters: garbage as CacheCluster[], replicationGroups: garbage as ReplicationGroup[] }, all));
  t.doesNotThrow(() => toTopology({ cacheClusters: undefined as never, replicationGroups: null as never }, all));
  const cyclic: Record<string, unknown> = { CacheClusterId: 'c', Engine: 'redis' };
  cyclic.CacheClusterStatus = cyclic;
  t.match(toTopology({ cacheClusters: [cyclic as CacheCluster], replicationGroups: [] }, all).skipped, [{ where: 'cluster c', reason: /status \(object\)/ }]);
});

t.test('duplicate keys: the first wins, the rest are skipped with a reason', async (t) => {
  const again = cluster('my-mem-cluster', 'memcached', [node('0001', 'elsewhere.example.com', 11211)]);
  const { targets, skipped } = toTopology({ cacheClusters: [memcachedExample, again], replicationGroups: [disabledGroup, disabledGroup] }, all);
  t.same(targets.map((x) => x.key), ['node/my-mem-cluster/0001', 'node/my-mem-cluster/0002', 'node/my-mem-cluster/0003', 'primary/orders', 'reader/orders']);
  t.equal(targets[0]?.address, 'my-mem-cluster.7ef-example.0001.usw2.cache.amazonaws.com');
  t.same(skipped.map((s) => s.where), ['cluster my-mem-cluster node 0001', 'replication group orders primary', 'replication group orders reader']);
  t.match(skipped[0]?.reason, /lists node\/my-mem-cluster\/0001 more than once; kept the first/);
});

t.test('targets are sorted by key whatever the answer order', async (t) => {
  const { targets } = toTopology({ cacheClusters: [...ordersClusters].reverse(), replicationGroups: [disabledGroup] }, all);
  t.same(targets.map((x) => x.key), ['node/orders-001/0001', 'node/orders-002/0001', 'primary/orders', 'reader/orders']);
});

t.test('isHostName', async (t) => {
  for (const good of ['localhost', 'a.b', 'x-1.example.com', 'my-mem-cluster.7ef-example.0001.usw2.cache.amazonaws.com', '1a.example.com']) t.ok(isHostName(good), good);
  for (const bad of ['', '-a.com', 'a-.com', 'a..b', 'a.b.', '10.0.0.1', '127.1', '0x7f.1', 'a b', 'a\nb', `${'a'.repeat(64)}.com`]) t.notOk(isHostName(bad), JSON.stringify(bad));
});
