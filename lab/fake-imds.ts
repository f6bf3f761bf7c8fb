// A local stand-in for the instance metadata service, IMDSv2 only, as far as
// cachenat reads it: a session token (PUT /latest/api/token with the TTL
// header), then the instance id, the primary MAC, that interface's id and
// addresses, the primary address, the region and the public address, each GET refused with 401 unless it
// carries a token this fake handed out and that has not expired.
// Values are served as configured, unchecked, so tests can serve bad ones.
//
// Run directly:
//   node dist/lab/fake-imds.js --listen 127.0.0.1:8169 --instance-id i-… --mac 0e:… --eni eni-… --ips a,b,c [--region R] [--public-ipv4 A]
// prints exactly one line, "fake-imds listening on http://HOST:PORT", and exits on SIGTERM.
// The first of --ips is the primary address (local-ipv4).

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeServer, listen, parseListen, send, runIfMain, UsageError } from './fake-http.js';

export interface FakeImdsConfig {
  instanceId: string;
  mac: string;
  eni: string;
  /** The interface's private addresses; the first is the primary (local-ipv4). */
  ips: string[];
  /** placement/region; 404 when unset. */
  region?: string;
  /** public-ipv4; 404 when unset (no public address). */
  publicIpv4?: string;
  /** Answers wait this long (a slow or unreachable IMDS). */
  delayMs?: number;
}

/** One request as the fake saw it. */
export interface FakeImdsRequest {
  at: number;
  method: string;
  path: string;
  status: number;
}

export interface FakeImdsHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** The configuration, read on every request: change it to change the answers. */
  config: FakeImdsConfig;
  requests: FakeImdsRequest[];
}

const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';

/** The request handler, for a test to run in its own server. */
export function createImdsHandler(config: FakeImdsConfig): FakeImdsHandler {
  const tokens = new Map<string, number>(); // token -> expiry (ms since the epoch)

  const answer = (req: IncomingMessage): { status: number; body: string; headers?: Record<string, string> } => {
    const path = new URL(req.url ?? '/', 'http://imds').pathname;
    const c = handler.config;
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return { status: 405, body: '' };
      // The real service refuses tokens asked for through a proxy.
      if (req.headers['x-forwarded-for'] !== undefined) return { status: 403, body: '' };
      const ttlText = req.headers[TTL_HEADER];
      const ttl = typeof ttlText === 'string' && /^\d{1,5}$/.test(ttlText) ? Number(ttlText) : Number.NaN;
      if (!(ttl >= 1 && ttl <= 21600)) return { status: 400, body: '' };
      const token = randomBytes(32).toString('base64');
      tokens.set(token, Date.now() + ttl * 1000);
      return { status: 200, body: token, headers: { [TTL_HEADER]: String(ttl) } };
    }
    if (req.method !== 'GET') return { status: 405, body: '' };
    const token = req.headers[TOKEN_HEADER];
    const expiry = typeof token === 'string' ? tokens.get(token) : undefined;
    if (expiry === undefined || expiry < Date.now()) return { status: 401, body: '' };
    const interfacePath = `/latest/meta-data/network/interfaces/macs/${c.mac}/`;
    const values: Record<string, string | undefined> = {
      '/latest/meta-data/instance-id': c.instanceId,
      '/latest/meta-data/mac': c.mac,
      '/latest/meta-data/local-ipv4': c.ips[0],
      '/latest/meta-data/placement/region': c.region,
      '/latest/meta-data/public-ipv4': c.publicIpv4,
      [`${interfacePath}interface-id`]: c.eni,
      [`${interfacePath}local-ipv4s`]: c.ips.join('\n'),
    };
    const value = values[path];
    return value === undefined ? { status: 404, body: '' } : { status: 200, body: value };
  };

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      const reply = answer(req);
      handler.requests.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', status: reply.status });
      const respond = () => send(res, reply.status, 'text/plain', reply.body, reply.headers);
      const delay = handler.config.delayMs ?? 0;
      if (delay > 0) setTimeout(respond, delay).unref();
      else respond();
    });
  }) as FakeImdsHandler;
  handler.config = config;
  handler.requests = [];
  return handler;
}

export interface FakeImds {
  url: string;
  handler: FakeImdsHandler;
  close(): Promise<void>;
}

export async function startFakeImds(config: FakeImdsConfig, options: { host?: string; port?: number } = {}): Promise<FakeImds> {
  const host = options.host ?? '127.0.0.1';
  const handler = createImdsHandler(config);
  const server = createServer(handler);
  const port = await listen(server, host, options.port ?? 0);
  return { url: `http://${host}:${port}`, handler, close: () => closeServer(server) };
}

// ---- command line ---------------------------------------------------------

const USAGE = 'usage: fake-imds --listen HOST:PORT --instance-id ID --mac MAC --eni ENI --ips A[,B...] [--region REGION] [--public-ipv4 ADDRESS]';

async function main(argv: string[]): Promise<void> {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (!['--listen', '--instance-id', '--mac', '--eni', '--ips', '--region', '--public-ipv4'].includes(flag)) throw new UsageError(`unknown option ${flag}`);
    given.set(flag, value);
  }
  const need = (flag: string): string => {
    const value = given.get(flag);
    if (value === undefined) throw new UsageError(`${flag} is required`);
    return value;
  };
  const address = parseListen(given.get('--listen') ?? '127.0.0.1:8169');
  if (!address) throw new UsageError(`--listen expects IPV4:PORT, got ${given.get('--listen')}`);
  const fake = await startFakeImds(
    {
      instanceId: need('--instance-id'),
      mac: need('--mac'),
      eni: need('--eni'),
      ips: need('--ips').split(','),
      ...(given.has('--region') ? { region: given.get('--region')! } : {}),
      ...(given.has('--public-ipv4') ? { publicIpv4: given.get('--public-ipv4')! } : {}),
    },
    address,
  );
  process.stdout.write(`fake-imds listening on ${fake.url}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await runIfMain(import.meta.url, 'fake-imds', USAGE, main);
