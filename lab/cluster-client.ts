// Real Redis clients as an application outside the VPC runs them, for the lab's
// client namespace: ioredis `Cluster` with `natMap`, node-redis `createCluster`
// with `nodeAddressMap`, both seeded with the configuration endpoint's
// forwarded port, and an ioredis TLS ping. With `tls` and no `natMap` they are
// what an ElastiCache TLS user writes (address mode): seeded with the
// configuration endpoint's name, following the names the nodes announce,
// verifying every certificate against the CA; ioredis with
// `dnsLookup: (address, cb) => cb(null, address)`, so it connects by name as
// its README tells ElastiCache TLS users (no remap). Run as
//   node cluster-client.js '<json request>'
// It prints one line per round of SET and GET over `keys` keys
// ("round N ok" or "round N failed: …"), and exits 0 when the last round was
// whole. With `rounds: 0` it goes on until SIGTERM (to watch a failover).

import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';

type NatMap = Record<string, { host: string; port: number }>;

export type ClientRequest =
  | {
      client: 'ioredis' | 'node-redis';
      seed: { host: string; port: number };
      /** Port mode's remap; absent: none (address mode). */
      natMap?: NatMap;
      /** TLS, certificates verified against this CA only (rejectUnauthorized, no servername override). */
      tls?: { caFile: string };
      keys: number;
      prefix: string;
      /** How many rounds; 0: until SIGTERM. */
      rounds: number;
      /** Read the keys first and expect the values an earlier run stored. */
      verifyFirst?: boolean;
    }
  | {
      client: 'tls-ping';
      host: string;
      port: number;
      caFile: string;
      servername?: string;
      /** Sent instead of PING; its reply printed (arrays as JSON). */
      command?: string[];
    };

interface KeyValueClient {
  set(key: string, value: string): Promise<unknown>;
  get(key: string): Promise<string | null>;
  close(): Promise<void>;
}

type KeyValueRequest = Extract<ClientRequest, { seed: unknown }>;

async function connect(request: KeyValueRequest): Promise<KeyValueClient> {
  const ca = request.tls === undefined ? undefined : readFileSync(request.tls.caFile);
  if (request.client === 'ioredis') {
    const cluster = new Cluster([request.seed], {
      ...(request.natMap === undefined ? {} : { natMap: request.natMap }),
      ...(ca === undefined ? {} : { dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) => callback(null, address) }),
      redisOptions: { connectTimeout: 3000, ...(ca === undefined ? {} : { tls: { ca, rejectUnauthorized: true } }) },
    });
    cluster.on('error', () => {}); // each command reports its own failure
    return { set: (k, v) => cluster.set(k, v), get: (k) => cluster.get(k), close: async () => void cluster.disconnect() };
  }
  const cluster = createCluster({
    rootNodes: [{ socket: request.seed }],
    ...(request.natMap === undefined ? {} : { nodeAddressMap: request.natMap }),
    ...(ca === undefined ? {} : { defaults: { socket: { tls: true as const, ca, rejectUnauthorized: true } } }),
  });
  cluster.on('error', () => {});
  await cluster.connect();
  return { set: (k, v) => cluster.set(k, v), get: (k) => cluster.get(k), close: async () => void (await cluster.close()) };
}

const valueOf = (prefix: string, i: number): string => `${prefix}-value-${i}`;

/** Every key's operation at once; the first failure's text, or undefined. */
async function eachKey(count: number, op: (i: number) => Promise<string | undefined>): Promise<string | undefined> {
  const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => op(i)));
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`key ${i}: ${String(r.reason)}`] : r.value === undefined ? [] : [r.value]));
  return failures.length === 0 ? undefined : `${failures.length} of ${count}: ${failures[0]}`;
}

async function keyValueRounds(request: KeyValueRequest): Promise<number> {
  let stopping = false;
  process.once('SIGTERM', () => void (stopping = true));
  const client = await connect(request);
  const key = (i: number) => `${request.prefix}:${i}`;
  const expectValue = async (i: number) => {
    const got = await client.get(key(i));
    return got === valueOf(request.prefix, i) ? undefined : `key ${i}: got ${JSON.stringify(got)}`;
  };
  let lastFailed = false;
  if (request.verifyFirst) {
    const failed = await eachKey(request.keys, expectValue);
    console.log(failed === undefined ? 'verify ok' : `verify failed: ${failed}`);
    lastFailed = failed !== undefined;
  }
  for (let round = 1; request.rounds === 0 ? !stopping : round <= request.rounds; round++) {
    const failed =
      (await eachKey(request.keys, async (i) => void (await client.set(key(i), valueOf(request.prefix, i))))) ?? (await eachKey(request.keys, expectValue));
    console.log(failed === undefined ? `round ${round} ok` : `round ${round} failed: ${failed}`);
    lastFailed = failed !== undefined;
  }
  await client.close();
  return lastFailed ? 1 : 0;
}

async function tlsPing(request: Extract<ClientRequest, { client: 'tls-ping' }>): Promise<number> {
  const tls = { ca: readFileSync(request.caFile), ...(request.servername === undefined ? {} : { servername: request.servername }) };
  const client = new Redis({ host: request.host, port: request.port, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // A failed handshake reaches the 'error' event; connect() only says the connection closed.
  let handshakeError: (Error & { code?: string }) | undefined;
  client.on('error', (err: Error) => void (handshakeError ??= err));
  try {
    await client.connect();
    if (request.command === undefined) console.log(await client.ping());
    else {
      const [name = 'PING', ...args] = request.command;
      const reply = await client.call(name, ...args);
      console.log(typeof reply === 'string' ? reply : JSON.stringify(reply));
    }
    return 0;
  } catch (err) {
    const cause = handshakeError ?? (err as Error & { code?: string });
    console.log(`refused: ${cause.code ?? '(no code)'} ${cause.message}`);
    return 1;
  } finally {
    client.disconnect();
  }
}

const request = JSON.parse(process.argv[2] ?? '{}') as ClientRequest;
// Exit at once: a client's reconnect timers must not keep the process (stdout to a pipe is synchronous on Linux).
process.exit(await (request.client === 'tls-ping' ? tlsPing(request) : keyValueRounds(request)));
