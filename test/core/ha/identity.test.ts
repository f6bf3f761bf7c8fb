// The instance identity from IMDS answers, and the DescribeAddresses answer,
// validated without any I/O: good values pass, each bad one is refused with
// text naming what and where.

import t from 'tap';
import { imdsPaths, parseInstanceIdentity, parseLocalIpv4s, parseMac, type ImdsAnswers } from '../../../src/core/ha/identity.js';
import { parseAddresses } from '../../../src/core/ha/addresses.js';
import { isImdsToken, macAddressProblem, networkInterfaceIdProblem } from '../../../src/core/grammar.js';

const MAC = '0e:49:61:0f:c3:11';
const good: ImdsAnswers = {
  instanceId: 'i-0123456789abcdef0',
  mac: MAC,
  interfaceId: 'eni-0aaaaaaaaaaaaaaaa',
  localIpv4s: '10.0.1.10\n10.0.1.11\n10.0.1.12',
  localIpv4: '10.0.1.10',
};

t.test('grammar: eni ids, MACs and IMDS tokens', async (t) => {
  for (const ok of ['eni-0123abcd', 'eni-0123456789abcdef0']) t.equal(networkInterfaceIdProblem(ok), undefined, ok);
  for (const bad of ['eni-0123abc', 'eni-0123456789ABCDEF0', 'eni-0123abcde', 'i-0123abcd', ' eni-0123abcd', 'eni-0123abcd\n', 42, undefined]) {
    t.match(networkInterfaceIdProblem(bad), /expected a network interface id such as eni-/, String(bad));
  }
  t.equal(macAddressProblem(MAC), undefined);
  for (const bad of ['0E:49:61:0F:C3:11', '0e-49-61-0f-c3-11', '0e:49:61:0f:c3', '0e:49:61:0f:c3:11:22', '../../x', '']) {
    t.match(macAddressProblem(bad), /expected a MAC address/, bad);
  }
  t.ok(isImdsToken('AQAEAKrZ0HQvGd5gkBb_PwdOz4N0z8dwYf7qTbVWqTQZmh5jVcwj1A=='));
  for (const bad of ['', 'a b', 'x\ny', 'x'.repeat(1025)]) t.notOk(isImdsToken(bad), JSON.stringify(bad.slice(0, 10)));
});

t.test('a good identity: the primary address first, whatever order IMDS lists them in', async (t) => {
  t.same(parseInstanceIdentity(good), {
    instanceId: 'i-0123456789abcdef0',
    networkInterfaceId: 'eni-0aaaaaaaaaaaaaaaa',
    privateIp: '10.0.1.10',
    privateIps: ['10.0.1.10', '10.0.1.11', '10.0.1.12'],
  });
  t.same(parseInstanceIdentity({ ...good, localIpv4s: '10.0.1.11\n10.0.1.10\n', localIpv4: '10.0.1.10\n' }), {
    instanceId: 'i-0123456789abcdef0',
    networkInterfaceId: 'eni-0aaaaaaaaaaaaaaaa',
    privateIp: '10.0.1.10',
    privateIps: ['10.0.1.10', '10.0.1.11'],
  }, 'one trailing newline is forgiven; the primary moves to the front');
  t.same(parseInstanceIdentity({ ...good, instanceId: 'i-0123abcd', interfaceId: 'eni-0123abcd', localIpv4s: '10.0.1.10' }), {
    instanceId: 'i-0123abcd',
    networkInterfaceId: 'eni-0123abcd',
    privateIp: '10.0.1.10',
    privateIps: ['10.0.1.10'],
  }, 'the older 8-digit ids');
});

t.test('each bad value is refused, naming the path and the value', async (t) => {
  const cases: [Partial<ImdsAnswers>, RegExp][] = [
    [{ instanceId: 'i-xyz' }, /^IMDS \/latest\/meta-data\/instance-id: expected an EC2 instance id such as i-0123456789abcdef0, got "i-xyz"$/],
    [{ instanceId: '<html>login</html>' }, /instance-id: .*got "<html>/],
    [{ instanceId: 'i-0123456789abcdef0\n\n' }, /instance-id: .*got "i-0123456789abcdef0\\n"/],
    [{ mac: '0e:49:61:0f:c3:11/../../x' }, /^IMDS \/latest\/meta-data\/mac: expected a MAC address/],
    [{ interfaceId: 'eni-zz' }, new RegExp(`^IMDS ${imdsPaths.interfaceId(MAC)}: expected a network interface id .*got "eni-zz"$`)],
    [{ localIpv4s: '' }, /local-ipv4s: the interface has no private IPv4 address/],
    [{ localIpv4s: '10.0.1.10\n10.0.1.300' }, /local-ipv4s: line 2: "10.0.1.300" is not a unicast IPv4 address/],
    [{ localIpv4s: '10.0.1.10\n\n10.0.1.11' }, /local-ipv4s: line 2: "" is not/],
    [{ localIpv4s: '10.0.1.10 10.0.1.11' }, /line 1: "10.0.1.10 10.0.1.11" is not/],
    [{ localIpv4s: '10.0.1.10\n10.0.1.10' }, /local-ipv4s: 10.0.1.10 is listed twice/],
    [{ localIpv4s: '127.0.0.1', localIpv4: '127.0.0.1' }, /"127.0.0.1" is not a unicast IPv4 address an interface can hold/],
    [{ localIpv4: '10.0.1.99' }, /the primary address 10.0.1.99 \(local-ipv4\) is not on the primary interface eni-0aaaaaaaaaaaaaaaa/],
    [{ localIpv4: '010.0.1.10' }, /^IMDS \/latest\/meta-data\/local-ipv4: "010.0.1.10" is not/],
    [{ localIpv4s: `${'10.0.1.10\n'.repeat(500)}` }, /local-ipv4s: the answer is 5000 characters long/],
  ];
  for (const [change, error] of cases) {
    const result = parseInstanceIdentity({ ...good, ...change });
    t.ok('error' in result, `${JSON.stringify(change).slice(0, 60)} is refused`);
    if ('error' in result) t.match(result.error, error);
  }
  t.same(parseMac(MAC), { value: MAC });
  t.same(parseLocalIpv4s('10.0.1.10\n', MAC), { value: ['10.0.1.10'] });
});

t.test('DescribeAddresses answers: validated, each id asked answered once', async (t) => {
  const A = 'eipalloc-0aaaaaaaaaaaaaaaa';
  const B = 'eipalloc-0bbbbbbbbbbbbbbbb';
  const associated = { AllocationId: A, PublicIp: '203.0.113.10', NetworkInterfaceId: 'eni-0aaaaaaaaaaaaaaaa', PrivateIpAddress: '10.0.1.10', InstanceId: 'i-0aaaaaaaaaaaaaaaa', AssociationId: 'eipassoc-1' };
  t.same(parseAddresses([associated, { AllocationId: B, PublicIp: '203.0.113.11' }], [A, B]), {
    value: [
      { allocationId: A, publicIp: '203.0.113.10', networkInterfaceId: 'eni-0aaaaaaaaaaaaaaaa', privateIp: '10.0.1.10', instanceId: 'i-0aaaaaaaaaaaaaaaa' },
      { allocationId: B, publicIp: '203.0.113.11' },
    ],
  });
  const refused: [Parameters<typeof parseAddresses>[0], RegExp][] = [
    [[{ ...associated, AllocationId: undefined }], /address 1 has no allocation id/],
    [[{ ...associated, AllocationId: 'eipalloc-xyz' }], /address 1 expected an Elastic IP allocation id/],
    [[{ ...associated, AllocationId: B }], /answered eipalloc-0bbbbbbbbbbbbbbbb, which was not asked for/],
    [[associated, associated], /answered eipalloc-0aaaaaaaaaaaaaaaa twice/],
    [[], /no answer for "eipalloc-0aaaaaaaaaaaaaaaa"/],
    [undefined, /no answer for/],
    [[{ ...associated, PublicIp: '203.0.113.999' }], /eipalloc-0aaaaaaaaaaaaaaaa publicIp: "203.0.113.999" is not/],
    [[{ ...associated, NetworkInterfaceId: 'eni-;reboot' }], /networkInterfaceId: expected a network interface id/],
    [[{ ...associated, PrivateIpAddress: '10.0.1' }], /privateIp: "10.0.1" is not/],
    [[{ ...associated, InstanceId: 'i-nope' }], /instanceId: expected an EC2 instance id/],
  ];
  for (const [answer, error] of refused) {
    const result = parseAddresses(answer, [A]);
    t.ok('error' in result && error.test(result.error), `${error} (${'error' in result ? result.error : 'accepted'})`);
  }
});
