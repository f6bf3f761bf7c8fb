import t from 'tap';
import { parseSave } from '../../../src/core/netfilter/parse-save.js';
import { recoverForwards } from '../../../src/core/netfilter/recover.js';
import { renderRules } from '../../../src/core/netfilter/render.js';
import type { RuleForward } from '../../../src/core/model.js';

const natWith = (dnat: string[]) =>
  parseSave(['*nat', ':PREROUTING ACCEPT [0:0]', ':CACHENAT-DNAT - [0:0]', ...dnat, 'COMMIT', ''].join('\n'));

t.test('recovers what renderRules wrote', async (t) => {
  const forwards: RuleForward[] = [
    { key: 'node/c1/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.231', targetPort: 6379 },
    { key: 'primary/rg1', engine: 'valkey', listenPort: 6379, targetIp: '10.0.1.5', targetPort: 6379 },
    { key: 'reader/rg1', engine: 'valkey', listenPort: 6381, targetIp: '10.0.1.6', targetPort: 6379 },
    { key: 'node/mc/0003', engine: 'memcached', listenPort: 11213, targetIp: '10.0.2.3', targetPort: 11211 },
  ];
  const dnat = renderRules(forwards, { inboundInterface: 'eth0', allowedSources: ['0.0.0.0/0'], snat: 'masquerade' }).nat['CACHENAT-DNAT']!;
  t.same(
    recoverForwards(natWith(dnat)),
    [...forwards].sort((a, b) => a.listenPort - b.listenPort),
  );
});

t.test('no DNAT chain: nothing recovered', async (t) => {
  t.same(recoverForwards(parseSave('')), []);
});

t.test('skips lines that do not parse or hold invalid values; first rule per port or key wins', async (t) => {
  const line = (port: string, comment: string, to: string) =>
    `-A CACHENAT-DNAT -p tcp -m tcp --dport ${port} -m comment --comment "${comment}" -j DNAT --to-destination ${to}`;
  const recovered = recoverForwards(
    natWith([
      line('6380', 'cachenat redis node/c1/0001', '10.0.1.231:6379'),
      line('6380', 'cachenat redis node/c1/0002', '10.0.1.232:6379'), // same port again
      line('6390', 'cachenat redis node/c1/0001', '10.0.1.233:6379'), // same key again
      line('70000', 'cachenat redis node/c1/0003', '10.0.1.234:6379'), // port out of range
      line('6391', 'cachenat mysql node/c1/0004', '10.0.1.235:6379'), // unknown engine
      line('6392', 'cachenat redis other/x', '10.0.1.236:6379'), // bad key
      line('6393', 'cachenat redis node/c1/0005', '127.0.0.1:6379'), // never a target
      line('6394', 'cachenat redis node/c1/0006', '10.0.1.999:6379'), // not an address
      line('6395', 'someone else', '10.0.1.237:6379'), // not ours
      '-A CACHENAT-DNAT -p tcp -m tcp --dport 6396 -j DNAT --to-destination 10.0.1.238:6379', // no comment
      line('6397', 'cachenat memcached node/m/0001', '10.0.3.1:11211'),
    ]),
  );
  t.same(recovered, [
    { key: 'node/c1/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.231', targetPort: 6379 },
    { key: 'node/m/0001', engine: 'memcached', listenPort: 6397, targetIp: '10.0.3.1', targetPort: 11211 },
  ]);
});
