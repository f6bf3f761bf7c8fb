// One EC2 call with cachenat's own Elastic IP client (src/ha/elastic-ips.ts,
// the real SDK v3 client), for lab tests that move the Elastic IP by hand.
// A CLI because the fake EC2 API is reachable only from inside the lab's
// namespaces:
//
//   node dist/lab/ec2-call.js ENDPOINT associate ALLOCATION_ID ENI PRIVATE_IP
//   node dist/lab/ec2-call.js ENDPOINT describe ALLOCATION_ID…
//
// associate prints {"ok":true,"tookMs":n}; describe prints the validated
// associations as JSON. Any failure: the message on stderr, exit 1.

import { pathToFileURL } from 'node:url';
import { createElasticIps } from '../src/ha/elastic-ips.js';

const USAGE = 'usage: ec2-call ENDPOINT associate ALLOCATION_ID ENI PRIVATE_IP | ENDPOINT describe ALLOCATION_ID…';

async function main(argv: string[]): Promise<number> {
  const [endpoint, action, ...rest] = argv;
  if (endpoint === undefined || (action === 'associate' ? rest.length !== 3 : action !== 'describe' || rest.length === 0)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const eips = createElasticIps({ region: 'us-east-1', endpoint, timeoutMs: 5_000, credentials: { accessKeyId: 'AKIDLAB', secretAccessKey: 'lab-secret' } });
  try {
    const started = Date.now();
    if (action === 'associate') {
      const [allocationId, networkInterfaceId, privateIp] = rest as [string, string, string];
      await eips.associate({ allocationId, networkInterfaceId, privateIp });
      process.stdout.write(`${JSON.stringify({ ok: true, tookMs: Date.now() - started })}\n`);
    } else {
      process.stdout.write(`${JSON.stringify(await eips.describe(rest))}\n`);
    }
    return 0;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 1;
  } finally {
    eips.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
