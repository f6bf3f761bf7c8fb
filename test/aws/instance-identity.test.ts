// readInstanceIdentity against the fake IMDSv2 (lab/fake-imds.ts) in this
// process: the token flow, a service that refuses the token, bad values, and
// a service that does not answer in time.

import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ImdsClient } from '../../src/aws/imds.js';
import { readInstanceIdentity } from '../../src/aws/instance-identity.js';
import { createImdsHandler, startFakeImds, type FakeImdsConfig } from '../../lab/fake-imds.js';

const config = (): FakeImdsConfig => ({
  instanceId: 'i-0123456789abcdef0',
  mac: '0e:49:61:0f:c3:11',
  eni: 'eni-0aaaaaaaaaaaaaaaa',
  ips: ['10.0.1.10', '10.0.1.11', '10.0.1.12'],
});

const imds = await startFakeImds(config());
t.teardown(imds.close);
const read = (timeoutMs = 2000, endpoint = imds.url) => readInstanceIdentity(new ImdsClient({ endpoint }), timeoutMs);

t.beforeEach(() => {
  imds.handler.config = config();
  imds.handler.requests.length = 0;
});

t.test('IMDSv2: one token, then the five values with it', async (t) => {
  t.same(await read(), {
    instanceId: 'i-0123456789abcdef0',
    networkInterfaceId: 'eni-0aaaaaaaaaaaaaaaa',
    privateIp: '10.0.1.10',
    privateIps: ['10.0.1.10', '10.0.1.11', '10.0.1.12'],
  });
  t.same(
    imds.handler.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      'PUT /latest/api/token 200',
      'GET /latest/meta-data/instance-id 200',
      'GET /latest/meta-data/mac 200',
      'GET /latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/interface-id 200',
      'GET /latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/local-ipv4s 200',
      'GET /latest/meta-data/local-ipv4 200',
    ],
    'never a GET without a token first (no IMDSv1)',
  );
});

t.test('the fake itself: 401 for a GET without a valid token, 400 for a token request without a TTL', async (t) => {
  t.equal((await fetch(`${imds.url}/latest/meta-data/instance-id`)).status, 401);
  t.equal((await fetch(`${imds.url}/latest/meta-data/instance-id`, { headers: { 'X-aws-ec2-metadata-token': 'forged' } })).status, 401);
  t.equal((await fetch(`${imds.url}/latest/api/token`, { method: 'PUT' })).status, 400);
  const token = await (await fetch(`${imds.url}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
  const res = await fetch(`${imds.url}/latest/meta-data/instance-id`, { headers: { 'X-aws-ec2-metadata-token': token } });
  t.equal(res.status, 200);
  t.equal(await res.text(), 'i-0123456789abcdef0');
});

t.test('a service that refuses the token: the error says which request and what to check', async (t) => {
  // A proxy in between that drops the token header: every GET is 401.
  const handler = createImdsHandler(config());
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    delete req.headers['x-aws-ec2-metadata-token'];
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await t.rejects(read(2000, url), {
    message: new RegExp(`^instance metadata: GET ${url}/latest/meta-data/instance-id answered HTTP 401 \\(the session token was refused\\); is IMDSv2 reachable.*hop limit.*ha\\.imdsEndpoint`),
  });
});

t.test('no IMDS at all: connection refused, named with the hint', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await t.rejects(read(2000, `http://127.0.0.1:${port}`), { message: /^instance metadata: PUT http:\/\/127\.0\.0\.1:\d+\/latest\/api\/token failed: .*ECONNREFUSED.*hop limit/ });
});

t.test('bad values are refused before use', async (t) => {
  const cases: [Partial<FakeImdsConfig>, RegExp][] = [
    [{ instanceId: 'i-xyz' }, /^instance metadata: IMDS \/latest\/meta-data\/instance-id: expected an EC2 instance id/],
    [{ mac: '0e:49:61:0f:c3:11/../../../user-data' }, /^instance metadata: IMDS \/latest\/meta-data\/mac: expected a MAC address/],
    [{ eni: 'eni-0aaaaaaaaaaaaaaaa; reboot' }, /interface-id: expected a network interface id/],
    [{ ips: ['10.0.1.10', 'fe80::1'] }, /local-ipv4s: line 2: "fe80::1" is not/],
    [{ ips: ['169.254.0.5'] }, /"169.254.0.5" is not a unicast IPv4 address an interface can hold/],
  ];
  for (const [change, error] of cases) {
    imds.handler.config = { ...config(), ...change };
    imds.handler.requests.length = 0;
    await t.rejects(read(), { message: error }, JSON.stringify(change));
    if (change.mac !== undefined) {
      t.notOk(imds.handler.requests.some((r) => r.path.includes('/macs/')), 'a bad MAC never becomes a request path');
    }
  }
});

t.test('an IMDS that does not answer in time: refused within the budget', async (t) => {
  imds.handler.config = { ...config(), delayMs: 5000 };
  const started = Date.now();
  await t.rejects(read(300), { message: /^instance metadata: PUT .*\/latest\/api\/token failed: no answer within 300 ms; is IMDSv2 reachable/ });
  const took = Date.now() - started;
  t.ok(took >= 250 && took < 2000, `gave up after ${took} ms`);

  // The budget covers the whole read, not each request.
  imds.handler.config = { ...config(), delayMs: 120 };
  await t.rejects(read(400), { message: /no answer within 400 ms/ }, 'six requests of 120 ms do not fit in 400 ms');
});
