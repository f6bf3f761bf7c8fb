// A local DynamoDB for one test file: dynalite (in memory) on a random
// loopback port, closed in teardown, and a real SDK v3 client pointed at it.

import type { Test } from 'tap';
import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface LocalDynamo {
  endpoint: string;
  /** A client with fixed dummy credentials (dynalite checks none). */
  client(): DynamoDBClient;
}

export async function startDynalite(t: Test, createTableMs = 200): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const clients: DynamoDBClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    client() {
      const c = new DynamoDBClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 });
      clients.push(c);
      return c;
    },
  };
}
