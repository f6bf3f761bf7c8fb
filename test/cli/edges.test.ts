// The real machine's edge factory, as `run` uses it across reloads (SIGHUP):
// one SDK client while aws.* stays the same, the old one destroyed when it
// changes. Real SDK clients against two fake ElastiCache APIs on loopback.

import t from 'tap';
import type { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { realMachine } from '../../src/cli/edges.js';
import { parseConfig } from '../../src/config/load.js';
import { createElastiCacheClient, type ClientSettings } from '../../src/discovery/elasticache-source.js';
import { createLogger } from '../../src/log/logger.js';
import { startFakeElastiCache } from '../../lab/fake-elasticache.js';

// Nothing here may go near the instance metadata service or real AWS.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_ACCESS_KEY_ID = 'AKIDFAKEFAKEFAKE';
process.env.AWS_SECRET_ACCESS_KEY = 'fake-secret';

const cluster = (id: string, address: string) => ({ id, nodes: [{ id: '0001', address, port: 6379 }] });

const configFor = (endpoint: string, include = '"*"') =>
  parseConfig(
    `aws: { region: us-east-1, endpoint: "${endpoint}" }\nforward: { allowedSources: [198.51.100.27/32] }\ndiscovery: { include: [${include}], apiTimeout: 5s }\npersist: { rulesFile: none }\n`,
    'test',
  ).config;

t.test('a reload reuses the SDK client while aws.* holds, and destroys it when aws.endpoint changes', async (t) => {
  const first = await startFakeElastiCache({ topology: { clusters: [cluster('a1', '10.0.1.1'), cluster('b1', '10.0.1.2')] } });
  const second = await startFakeElastiCache({ topology: { clusters: [cluster('c1', '10.0.2.1')] } });
  const clients: { settings: ClientSettings; client: ElastiCacheClient; destroyed: number }[] = [];
  const newClient = (settings: ClientSettings): ElastiCacheClient => {
    const client = createElastiCacheClient(settings);
    const record = { settings, client, destroyed: 0 };
    clients.push(record);
    const destroy = client.destroy.bind(client);
    client.destroy = () => {
      record.destroyed++;
      destroy();
    };
    return client;
  };
  const edgesFor = realMachine(newClient).edgeFactory(createLogger({ level: 'silent', destination: { write: () => undefined } }));
  t.teardown(async () => {
    for (const { client, destroyed } of clients) if (destroyed === 0) client.destroy();
    await first.close();
    await second.close();
  });

  const start = edgesFor(configFor(first.url));
  t.same((await start.source.describe()).targets.map((x) => x.key), ['node/a1/0001', 'node/b1/0001']);

  const narrowed = edgesFor(configFor(first.url, '"b*"'));
  t.same((await narrowed.source.describe()).targets.map((x) => x.key), ['node/b1/0001'], 'the new filter applies');
  t.equal(clients.length, 1, 'same region, endpoint and timeout: the client is reused');
  t.equal(clients[0]!.destroyed, 0);

  const moved = edgesFor(configFor(second.url));
  t.same((await moved.source.describe()).targets.map((x) => x.key), ['node/c1/0001']);
  t.equal(clients.length, 2, 'a new endpoint gets a new client');
  t.equal(clients[0]!.destroyed, 1, 'and the old one is destroyed');
  t.equal(clients[1]!.settings.endpoint, second.url);

  edgesFor(configFor(second.url));
  t.equal(clients.length, 2);
  t.equal(clients[1]!.destroyed, 0, 'the client in use stays');
});
