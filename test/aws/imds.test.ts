// The one IMDSv2 client against the fake IMDSv2 (lab/fake-imds.ts) in this
// process: region, primary MAC and public address each read with one token;
// bad answers refused; which endpoint is asked, and when none is.

import t from 'tap';
import { answerOf, ImdsClient, imdsClientFor, readPrimaryMac, readPublicIpv4, readRegion } from '../../src/aws/imds.js';
import { startFakeImds, type FakeImdsConfig } from '../../lab/fake-imds.js';

const config = (): FakeImdsConfig => ({
  instanceId: 'i-0123456789abcdef0',
  mac: '0e:49:61:0f:c3:11',
  eni: 'eni-0aaaaaaaaaaaaaaaa',
  ips: ['10.0.1.10'],
  region: 'eu-west-1',
  publicIpv4: '203.0.113.9',
});

const imds = await startFakeImds(config());
t.teardown(imds.close);
const client = new ImdsClient({ endpoint: imds.url });

t.beforeEach(() => {
  imds.handler.config = config();
  imds.handler.requests.length = 0;
});

t.test('region, MAC and public address: one token each, then the value with it', async (t) => {
  t.equal(await readRegion(client, 2000), 'eu-west-1');
  t.equal(await readPrimaryMac(client, 2000), '0e:49:61:0f:c3:11');
  t.equal(await readPublicIpv4(client, 2000), '203.0.113.9');
  t.same(
    imds.handler.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      'PUT /latest/api/token 200',
      'GET /latest/meta-data/placement/region 200',
      'PUT /latest/api/token 200',
      'GET /latest/meta-data/mac 200',
      'PUT /latest/api/token 200',
      'GET /latest/meta-data/public-ipv4 200',
    ],
  );
});

t.test('bad answers are refused with the path and what was expected', async (t) => {
  imds.handler.config = { ...config(), region: 'EU-WEST-1; reboot', mac: '0e:49:61:0f:c3:11/../x', publicIpv4: '127.0.0.1' };
  await t.rejects(readRegion(client, 2000), { message: /^instance metadata: IMDS \/latest\/meta-data\/placement\/region: expected an AWS region like us-east-1 \(lower case\), got "EU-WEST-1; reboot"$/ });
  await t.rejects(readPrimaryMac(client, 2000), { message: /^instance metadata: IMDS \/latest\/meta-data\/mac: expected a MAC address/ });
  await t.rejects(readPublicIpv4(client, 2000), { message: /public-ipv4: "127\.0\.0\.1" is not a unicast IPv4 address an interface can hold/ });
});

t.test('no public address: the 404 is told as a reason, not thrown further', async (t) => {
  const { publicIpv4: _none, ...rest } = config();
  imds.handler.config = rest;
  const answer = await answerOf(readPublicIpv4(client, 2000));
  t.match(answer, { reason: /^GET http:\/\/127\.0\.0\.1:\d+\/latest\/meta-data\/public-ipv4 answered HTTP 404;/ });
});

t.test('which endpoint: the config names one (always asked), else the SDK variables', async (t) => {
  t.equal(imdsClientFor({}).endpoint, 'http://169.254.169.254');
  t.equal(imdsClientFor({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url }).endpoint, imds.url);
  const disabled = imdsClientFor({ AWS_EC2_METADATA_DISABLED: 'true', AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
  await t.rejects(readRegion(disabled, 2000), { message: 'instance metadata: not asked: AWS_EC2_METADATA_DISABLED=true' });
  t.equal(imds.handler.requests.length, 0, 'nothing was asked');
  const configured = imdsClientFor({ AWS_EC2_METADATA_DISABLED: 'true' }, imds.url);
  t.equal(await readRegion(configured, 2000), 'eu-west-1', 'an endpoint named in the config is asked even so (the lab runs HA with the SDK kept off IMDS)');
});

t.test('an IMDS that does not answer: refused within the budget', async (t) => {
  imds.handler.config = { ...config(), delayMs: 3000 };
  const started = Date.now();
  await t.rejects(readRegion(client, 200), { message: /^instance metadata: PUT .*\/latest\/api\/token failed: no answer within 200 ms; is IMDSv2 reachable/ });
  t.ok(Date.now() - started < 2000, `gave up after ${Date.now() - started} ms`);
});
