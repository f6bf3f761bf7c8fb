// Which flows a pass forgets: what the kernel admitted and the new rules do
// not, named by cause; never a flow the new rules admit.

import t from 'tap';
import fc from 'fast-check';
import { cidrContains, cidrDifference, parseCidr, type Cidr } from '../../../src/core/ipv4.js';
import { desiredAdmissions, flowsToForget, installedAdmissions, pendingToForget, type Admitted } from '../../../src/core/flows/forget.js';
import { parseSave } from '../../../src/core/netfilter/parse-save.js';
import type { Forward } from '../../../src/core/model.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 10_000);

t.test(`cidrDifference: exactly the addresses of one list outside the other, as the fewest aligned blocks (${RUNS} cases)`, async (t) => {
  const cidr = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([ip, prefix]) => {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    const network = (ip & mask) >>> 0;
    return `${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${prefix}`;
  });
  let cases = 0;
  fc.assert(
    fc.property(fc.array(cidr, { maxLength: 4 }), fc.array(cidr, { maxLength: 4 }), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }), (from, minus, probes) => {
      cases++;
      const diff = cidrDifference(from, minus);
      const parsed = (list: string[]) => list.map((c) => parseCidr(c) as Cidr);
      const inAny = (list: Cidr[], ip: number) => list.some((c) => cidrContains(c, ip));
      const blocks = parsed(diff);
      // Probe the edges of every block too, where an off-by-one would show.
      const edges = blocks.flatMap((b) => [b.network, b.network + 2 ** (32 - b.prefix) - 1, b.network - 1, b.network + 2 ** (32 - b.prefix)]).filter((ip) => ip >= 0 && ip <= 0xffffffff);
      for (const ip of [...probes, ...edges, ...parsed(from).map((c) => c.network), ...parsed(minus).map((c) => c.network)]) {
        const want = inAny(parsed(from), ip) && !inAny(parsed(minus), ip);
        if (inAny(blocks, ip) !== want) throw new Error(`${ip} in the difference of ${from} minus ${minus}: got ${!want}, want ${want} (${diff})`);
      }
      for (let i = 1; i < blocks.length; i++) {
        const [a, b] = [blocks[i - 1]!, blocks[i]!];
        if (a.network + 2 ** (32 - a.prefix) > b.network) throw new Error(`blocks overlap or are unordered: ${diff}`);
        const size = 2 ** (32 - a.prefix);
        if (a.prefix === b.prefix && a.prefix > 0 && a.network + size === b.network && a.network % (size * 2) === 0) throw new Error(`${a.text} and ${b.text} make one block: ${diff}`);
      }
      for (const text of diff) if ((parseCidr(text) as Cidr).text !== text) throw new Error(`${text} is not canonical`);
    }),
    { numRuns: RUNS },
  );
  t.equal(cases, RUNS);
  t.same(cidrDifference(['0.0.0.0/0'], ['10.0.0.0/8']).slice(0, 2), ['0.0.0.0/5', '8.0.0.0/7']);
  t.same(cidrDifference(['10.0.0.0/16'], ['10.0.0.0/17']), ['10.0.128.0/17']);
  t.same(cidrDifference(['10.0.0.0/24', '10.0.1.0/24'], []), ['10.0.0.0/23'], 'adjacent ranges merge');
});

const nat = (lines: string[]) => parseSave(['*nat', ':CACHENAT-PREROUTING - [0:0]', ':CACHENAT-DNAT - [0:0]', ':CACHENAT-MAP - [0:0]', ...lines, 'COMMIT', ''].join('\n'));
const dnat = (port: number, key: string, ip: string, address?: string) =>
  `-A CACHENAT-DNAT${address ? ` -d ${address}/32` : ''} -p tcp -m tcp --dport ${port} -m comment --comment "cachenat redis ${key}" -j DNAT --to-destination ${ip}:6379`;
const from = (cidr: string) => `-A CACHENAT-PREROUTING ${cidr === '0.0.0.0/0' ? '' : `-s ${cidr} `}-i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT`;
const forward = (key: string, listenPort: number, extra: Partial<Forward> = {}): Forward => ({ key, kind: 'node', engine: 'redis', address: 'x.example', targetPort: 6379, listenPort, state: 'active', targetIp: '10.0.1.1', ...extra });

t.test('what the kernel admits: DNAT pairs, an unresolved target\'s last addresses, source ranges', async (t) => {
  const installed = installedAdmissions(
    nat([
      from('10.1.0.0/16'),
      from('0.0.0.0/0'),
      dnat(6379, 'node/a/0001', '10.0.1.1'),
      dnat(6379, 'node/b/0001', '10.0.1.2', '10.0.9.21'),
      '-A CACHENAT-MAP -m comment --comment "cachenat entry node/c/0001 redis 10.0.9.22:6379 6379 - c.example"',
      '-A CACHENAT-MAP -m comment --comment "cachenat stale node/c/0001 10.0.1.3"',
    ]),
  );
  t.same(installed, {
    pairs: [
      { key: 'node/a/0001', listenPort: 6379, ip: '10.0.1.1' },
      { key: 'node/b/0001', listenAddress: '10.0.9.21', listenPort: 6379, ip: '10.0.1.2' },
      { key: 'node/c/0001', listenAddress: '10.0.9.22', listenPort: 6379, ip: '10.0.1.3' },
    ],
    sources: ['10.1.0.0/16', '0.0.0.0/0'],
  });
  t.same(installedAdmissions(parseSave('')), { pairs: [] }, 'nothing installed: no sources known (not "none allowed")');
});

t.test('each way a flow loses its admission, with its cause; kept flows are not touched', async (t) => {
  const installed: Admitted = {
    pairs: [
      { key: 'node/moved/0001', listenPort: 6379, ip: '10.0.1.1' },
      { key: 'node/gone/0001', listenPort: 6380, ip: '10.0.1.2' },
      { key: 'node/plain/0001', listenPort: 6381, ip: '10.0.1.3' },
      { key: 'node/away/0001', listenAddress: '10.0.9.21', listenPort: 6379, ip: '10.0.1.4' },
      { key: 'node/kept/0001', listenPort: 6382, ip: '10.0.1.5' },
      { key: 'node/asleep/0001', listenPort: 6383, ip: '10.0.1.6' },
    ],
    sources: ['10.0.0.0/8', '203.0.113.0/24'],
  };
  const forwards = [
    forward('node/moved/0001', 6379, { targetIp: '10.0.1.9' }),
    forward('node/plain/0001', 6381, { targetIp: '10.0.1.3', state: 'refused' }),
    forward('node/away/0001', 6379, { targetIp: '10.0.1.4', listenAddress: '10.0.9.22' }),
    forward('node/kept/0001', 6382, { targetIp: '10.0.1.5' }),
    forward('node/asleep/0001', 6383, { state: 'unresolved', lastIps: ['10.0.1.6'] }),
  ];
  delete forwards[4]!.targetIp;
  const forget = flowsToForget({ installed, desired: desiredAdmissions(forwards, ['10.1.0.0/16', '203.0.113.0/24']), forwards, moves: [], pending: [], flushed: new Set() });
  const byJson = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
  t.same([...forget].sort(byJson), [
    { kind: 'listener', listenAddress: '10.0.9.21', listenPort: 6379, targetIp: '10.0.1.4', cause: 'relocated' },
    { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.1', cause: 'moved' },
    { kind: 'listener', listenPort: 6380, targetIp: '10.0.1.2', cause: 'removed' },
    { kind: 'listener', listenPort: 6381, targetIp: '10.0.1.3', cause: 'refused' },
    ...['10.0.0.0/16', '10.2.0.0/15', '10.4.0.0/14', '10.8.0.0/13', '10.16.0.0/12', '10.32.0.0/11', '10.64.0.0/10', '10.128.0.0/9'].map((source) => ({ kind: 'source', source, cause: 'source' })),
  ].sort(byJson) as never);
  t.notOk(forget.some((f) => f.kind === 'listener' && (f.targetIp === '10.0.1.5' || f.targetIp === '10.0.1.6')), 'the kept forward and the unresolved one keep their flows');
});

t.test('pending records: forgotten once, never when the rules admit them again, never twice by one process', async (t) => {
  const table = nat([
    from('10.1.0.0/16'),
    dnat(6379, 'node/a/0001', '10.0.1.1'),
    '-A CACHENAT-MAP -m comment --comment "cachenat forget moved :6379 10.0.1.1"', // admitted again (a failback)
    '-A CACHENAT-MAP -m comment --comment "cachenat forget moved :6379 10.0.1.7"',
    '-A CACHENAT-MAP -m comment --comment "cachenat forget source 10.0.0.0/8"', // partly allowed again
  ]);
  t.same([...pendingToForget(table, new Set())].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)), [
    { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.7', cause: 'moved' },
    ...['10.0.0.0/16', '10.2.0.0/15', '10.4.0.0/14', '10.8.0.0/13', '10.16.0.0/12', '10.32.0.0/11', '10.64.0.0/10', '10.128.0.0/9'].map((source) => ({ kind: 'source', source, cause: 'source' })),
  ].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) as never);
  t.same(pendingToForget(table, new Set(['cachenat forget moved :6379 10.0.1.7'])).filter((f) => f.kind === 'listener'), [], 'already forgotten by this process');
});
