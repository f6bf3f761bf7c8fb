// The Elastic IP client with the real SDK v3 EC2 client against the fake EC2
// Query API (lab/fake-ec2.ts), without namespaces: association,
// reassociation, describe, EC2's error document as the SDK reads it, and one
// attempt per call.

import t, { type Test } from 'tap';
import { AssociateAddressCommand, DescribeAddressesCommand } from '@aws-sdk/client-ec2';
import { createEc2Client, createElasticIps } from '../../src/ha/elastic-ips.js';
import { EC2_XML_NAMESPACE, startFakeEc2, type FakeEc2State } from '../../lab/fake-ec2.js';

const ALLOC = 'eipalloc-0aaaaaaaaaaaaaaaa';
const OTHER = 'eipalloc-0bbbbbbbbbbbbbbbb';
const UNKNOWN = 'eipalloc-0ccccccccccccccccc'.slice(0, 26);
const ENI_A = 'eni-0aaaaaaaaaaaaaaaa';
const ENI_B = 'eni-0bbbbbbbbbbbbbbbb';
const I_A = 'i-0aaaaaaaaaaaaaaaa';
const I_B = 'i-0bbbbbbbbbbbbbbbb';

const state = (): FakeEc2State => ({
  addresses: [
    { allocationId: ALLOC, publicIp: '203.0.113.10' },
    { allocationId: OTHER, publicIp: '203.0.113.11' },
  ],
  interfaces: [
    { networkInterfaceId: ENI_A, instanceId: I_A, privateIps: ['10.0.1.10', '10.0.1.11'] },
    { networkInterfaceId: ENI_B, instanceId: I_B, privateIps: ['10.0.2.10'] },
  ],
});

const credentials = { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' };

async function setup(t: Test) {
  const fake = await startFakeEc2({ state: state() });
  const eips = createElasticIps({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 1000, credentials });
  t.teardown(async () => {
    eips.close();
    await fake.close();
  });
  return { fake, eips };
}

t.test('the SDK sends the Query form the fake reads, and reads the fake\'s XML', async (t) => {
  const { fake } = await setup(t);
  const client = createEc2Client({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 1000, credentials });
  t.teardown(() => client.destroy());
  const out = await client.send(new AssociateAddressCommand({ AllocationId: ALLOC, NetworkInterfaceId: ENI_A, PrivateIpAddress: '10.0.1.11', AllowReassociation: true }));
  t.match(out.AssociationId, /^eipassoc-[0-9a-f]{17}$/, 'associationId parsed from the answer');
  const described = await client.send(new DescribeAddressesCommand({ AllocationIds: [ALLOC, OTHER] }));
  t.same(
    described.Addresses?.map((a) => [a.AllocationId, a.PublicIp, a.Domain, a.NetworkInterfaceId, a.PrivateIpAddress, a.InstanceId, a.AssociationId]),
    [
      [ALLOC, '203.0.113.10', 'vpc', ENI_A, '10.0.1.11', I_A, out.AssociationId],
      [OTHER, '203.0.113.11', 'vpc', undefined, undefined, undefined, undefined],
    ],
  );
  const [associate, describe] = fake.requests();
  t.match(associate?.params, { Action: 'AssociateAddress', Version: '2016-11-15', AllocationId: ALLOC, NetworkInterfaceId: ENI_A, PrivateIpAddress: '10.0.1.11', AllowReassociation: 'true' });
  t.match(describe?.params, { Action: 'DescribeAddresses', Version: '2016-11-15', 'AllocationId.1': ALLOC, 'AllocationId.2': OTHER });

  const raw = await (await fetch(fake.url, { method: 'POST', body: new URLSearchParams({ Action: 'DescribeAddresses', Version: '2016-11-15', 'AllocationId.1': OTHER }) })).text();
  t.match(raw, `<DescribeAddressesResponse xmlns="${EC2_XML_NAMESPACE}"><requestId>`);
  t.match(raw, '<addressesSet><item><publicIp>203.0.113.11</publicIp><allocationId>eipalloc-0bbbbbbbbbbbbbbbb</allocationId><domain>vpc</domain>');
  const error = await fetch(fake.url, { method: 'POST', body: new URLSearchParams({ Action: 'DescribeAddresses', 'AllocationId.1': UNKNOWN }) });
  t.equal(error.status, 400);
  t.match(await error.text(), /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>InvalidAllocationID\.NotFound<\/Code><Message>The allocation ID &apos;eipalloc-0cc[c]+&apos; does not exist<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/);
});

t.test('associate, describe, reassociate to the other instance', async (t) => {
  const { fake, eips } = await setup(t);
  t.same(await eips.describe([ALLOC]), [{ allocationId: ALLOC, publicIp: '203.0.113.10' }], 'not associated yet');
  t.same(await eips.describe([]), [], 'no ids: no call (it would list every address of the account)');
  t.equal(fake.requests().length, 1);

  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' });
  t.same(await eips.describe([ALLOC, OTHER]), [
    { allocationId: ALLOC, publicIp: '203.0.113.10', networkInterfaceId: ENI_A, privateIp: '10.0.1.10', instanceId: I_A },
    { allocationId: OTHER, publicIp: '203.0.113.11' },
  ]);
  await t.resolves(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), 'associating again where it already is: accepted');
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_B, privateIp: '10.0.2.10' });
  t.same(await eips.describe([ALLOC]), [{ allocationId: ALLOC, publicIp: '203.0.113.10', networkInterfaceId: ENI_B, privateIp: '10.0.2.10', instanceId: I_B }], 'taken over by B');

  const moves = fake.associations();
  t.same(moves.map((m) => [m.from?.instanceId ?? null, m.to.instanceId]), [[null, I_A], [I_A, I_A], [I_A, I_B]]);
  for (const m of moves) t.ok(m.arrivedAt <= m.movedAt && m.movedAt <= (m.answeredAt ?? 0), 'arrived <= moved <= answered');
  t.same(fake.holders()[ALLOC], { networkInterfaceId: ENI_B, instanceId: I_B, privateIp: '10.0.2.10' });
});

t.test('without AllowReassociation the fake refuses to take an address from elsewhere', async (t) => {
  const { fake } = await setup(t);
  const client = createEc2Client({ region: 'us-east-1', endpoint: fake.url, timeoutMs: 1000, credentials });
  t.teardown(() => client.destroy());
  await client.send(new AssociateAddressCommand({ AllocationId: ALLOC, NetworkInterfaceId: ENI_A }));
  t.same(fake.holders()[ALLOC], { networkInterfaceId: ENI_A, instanceId: I_A, privateIp: '10.0.1.10' }, 'no PrivateIpAddress: the primary');
  await t.rejects(client.send(new AssociateAddressCommand({ AllocationId: ALLOC, NetworkInterfaceId: ENI_B })), {
    name: 'Resource.AlreadyAssociated',
    message: /^resource eipalloc-0aaaaaaaaaaaaaaaa is already associated with associate-id eipassoc-/,
  });
});

t.test('EC2 errors: the message names the allocation id and what EC2 said', async (t) => {
  const { fake, eips } = await setup(t);
  await t.rejects(eips.associate({ allocationId: UNKNOWN, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), {
    message: `AssociateAddress of ${UNKNOWN} to ${ENI_A} (10.0.1.10) failed: InvalidAllocationID.NotFound (HTTP 400): The allocation ID '${UNKNOWN}' does not exist`,
  });
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: 'eni-0cccccccccccccccc', privateIp: '10.0.1.10' }), {
    message: /AssociateAddress of eipalloc-0aaaaaaaaaaaaaaaa .*failed: InvalidNetworkInterfaceID\.NotFound \(HTTP 400\)/,
  });
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_B, privateIp: '10.0.1.10' }), {
    message: /AssociateAddress of eipalloc-0aaaaaaaaaaaaaaaa .*failed: InvalidParameterValue \(HTTP 400\): The specified private IP address 10\.0\.1\.10 is not assigned to network interface eni-0bbbbbbbbbbbbbbbb/,
  });
  await t.rejects(eips.describe([ALLOC, UNKNOWN]), { message: /^DescribeAddresses of eipalloc-0aaaaaaaaaaaaaaaa, eipalloc-0c+ failed: InvalidAllocationID\.NotFound \(HTTP 400\)/ });
  t.equal(fake.requests().length, 4);

  await t.rejects(eips.associate({ allocationId: 'eipalloc-bogus', networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), { message: /^AssociateAddress of eipalloc-bogus not sent: expected an Elastic IP allocation id/ });
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.256' }), { message: /not sent: "10\.0\.1\.256" is not/ });
  await t.rejects(eips.describe(['eipalloc-bogus']), { message: /^DescribeAddresses not sent/ });
  t.equal(fake.requests().length, 4, 'invalid input never reaches EC2');
});

t.test('a 503 fault is an error, and the SDK makes exactly one attempt', async (t) => {
  const { fake, eips } = await setup(t);
  fake.setFault({ kind: 'error', code: 'RequestLimitExceeded', status: 503, message: 'Request limit exceeded.', count: 2 });
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), {
    message: `AssociateAddress of ${ALLOC} to ${ENI_A} (10.0.1.10) failed: RequestLimitExceeded (HTTP 503): Request limit exceeded.`,
  });
  t.equal(fake.requests().length, 1, 'one request, no SDK retry (a throttling code would be retried by default)');
  fake.setFault({ kind: 'error', code: 'Unavailable', status: 503, count: 1 });
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), { message: /failed: Unavailable \(HTTP 503\): fake-ec2: injected Unavailable/ });
  t.equal(fake.requests().length, 2);
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' });
  t.same(fake.requests().map((r) => [r.status, r.fault ?? null, r.code ?? null]), [[503, 'error', 'RequestLimitExceeded'], [503, 'error', 'Unavailable'], [200, null, null]]);
  t.equal(fake.associations().length, 1, 'only the third call associated');
});

t.test('a slow EC2: the request times out after one attempt, and the call was applied all the same (the risky case)', async (t) => {
  const { fake, eips } = await setup(t);
  fake.setFault({ kind: 'delay', ms: 1500, count: 1 });
  const started = Date.now();
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }), { message: /^AssociateAddress of eipalloc-0aaaaaaaaaaaaaaaa .*failed: .*time/i });
  t.ok(Date.now() - started < 1450, `gave up after ${Date.now() - started} ms (budget 1000)`);
  await new Promise((resolve) => setTimeout(resolve, 700));
  t.equal(fake.requests().length, 1, 'no retry');
  t.match(fake.associations(), [{ allocationId: ALLOC, to: { networkInterfaceId: ENI_A } }], 'the caller saw a timeout; EC2 moved the address: a timed-out call is not a call that did nothing');
  t.equal(fake.requests()[0]?.status, 0, 'the fake says the answer found nobody');
  t.same(await eips.describe([ALLOC]), [{ allocationId: ALLOC, publicIp: '203.0.113.10', networkInterfaceId: ENI_A, privateIp: '10.0.1.10', instanceId: I_A }], 'what the next look finds');
});

t.test('a deadline (the caller\'s AbortSignal) ends the call like a timeout', async (t) => {
  const { fake, eips } = await setup(t);
  fake.setFault({ kind: 'delay', ms: 800, count: 1 });
  const started = Date.now();
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }, AbortSignal.timeout(200)), { message: /failed: .*abort/i });
  t.ok(Date.now() - started < 700, `gave up after ${Date.now() - started} ms (deadline 200)`);
  await t.rejects(eips.describe([ALLOC], AbortSignal.abort()), { message: /DescribeAddresses of .* failed/ }, 'a deadline already passed: not sent');
});

t.test('control endpoints over HTTP', async (t) => {
  const { fake, eips } = await setup(t);
  const put = await fetch(`${fake.url}/_fake/fault`, { method: 'PUT', body: JSON.stringify({ kind: 'error', code: 'Unavailable', status: 503, count: 1 }) });
  t.match(await put.json(), { ok: true, at: Number });
  t.equal((await fetch(`${fake.url}/_fake/fault`, { method: 'PUT', body: JSON.stringify({ kind: 'error', code: 'x y', status: 200 }) })).status, 400, 'a bad fault is refused');
  await t.rejects(eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' }));
  await eips.associate({ allocationId: ALLOC, networkInterfaceId: ENI_A, privateIp: '10.0.1.10' });
  t.match(await (await fetch(`${fake.url}/_fake/requests`)).json(), { count: 2, requests: [{ action: 'AssociateAddress', status: 503 }, { action: 'AssociateAddress', status: 200 }] });
  t.match(await (await fetch(`${fake.url}/_fake/associations`)).json(), { count: 1, associations: [{ allocationId: ALLOC, publicIp: '203.0.113.10', from: null, to: { networkInterfaceId: ENI_A }, arrivedAt: Number, movedAt: Number }] });
  t.match(await (await fetch(`${fake.url}/_fake/state`)).json(), { holders: { [ALLOC]: { instanceId: I_A }, [OTHER]: null } });
  t.equal((await fetch(`${fake.url}/_fake/requests`, { method: 'DELETE' })).status, 200);
  t.same(fake.requests(), []);
});
