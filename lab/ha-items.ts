// The HA group's lease and map items as cachenat's own store reads them
// (src/ha/dynamo-store.ts: validated, strongly consistent), for lab tests
// that check what DynamoDB holds. A CLI because dynalite is reachable only
// from inside the lab's namespaces:
//
//   node dist/lab/ha-items.js ENDPOINT TABLE GROUP
//
// prints {"lease":LeaseRead,"map":StoreRead<MapItem>} as JSON; a usage error
// exits 2.

import { pathToFileURL } from 'node:url';
import { DynamoHaStore } from '../src/ha/dynamo-store.js';

const USAGE = 'usage: ha-items ENDPOINT TABLE GROUP';

async function main(argv: string[]): Promise<number> {
  const [endpoint, table, group, ...rest] = argv;
  if (endpoint === undefined || table === undefined || group === undefined || rest.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const store = new DynamoHaStore({ region: 'us-east-1', endpoint, table, group, timeoutMs: 5_000, credentials: { accessKeyId: 'AKIDLAB', secretAccessKey: 'lab-secret' } });
  try {
    const [lease, map] = await Promise.all([store.readLease(), store.readMap()]);
    process.stdout.write(`${JSON.stringify({ lease, map })}\n`);
    return 0;
  } finally {
    store.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
