import t from 'tap';
import { planPass } from '../../../src/core/planner/plan.js';
import { configSchema } from '../../../src/core/config/schema.js';
import type { DiscoveredTarget, Resolution } from '../../../src/core/model.js';
import { emptyPortState } from '../../../src/core/ports/port-state.js';
import { recoverForwards } from '../../../src/core/netfilter/recover.js';
import { parseSaveAll } from '../../../src/core/netfilter/parse-save.js';

const config = configSchema.parse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.27/32'] } });
const cache: DiscoveredTarget = {
  key: 'serverless/s1', kind: 'serverless', engine: 'valkey', serverlessCacheName: 's1', tls: true, address: 's1.serverless.example', targetPort: 6379,
};
const empty = { chains: new Map() };
const pass = (state = emptyPortState(), answer: Resolution, now = 0) =>
  planPass({ config, state, topology: { targets: [cache], skipped: [] }, resolutions: new Map([[cache.address, answer]]), installed: { nat: empty, filter: empty }, now });

t.test('a name with several addresses spreads new connections over all of them (round-robin rules)', async (t) => {
  const plan = pass(undefined, { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.2.7', '10.0.3.9'] });
  t.same(plan.forwards[0]?.targetIps, ['10.0.1.5', '10.0.2.7', '10.0.3.9']);
  t.same(plan.rules.nat['CACHENAT-DNAT']?.filter((l) => l.includes('DNAT --to')), [
    '-A CACHENAT-DNAT -p tcp -m tcp --dport 6379 -m comment --comment "cachenat valkey serverless/s1" -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.0.1.5:6379',
    '-A CACHENAT-DNAT -p tcp -m tcp --dport 6379 -m comment --comment "cachenat valkey serverless/s1" -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 10.0.2.7:6379',
    '-A CACHENAT-DNAT -p tcp -m tcp --dport 6379 -m comment --comment "cachenat valkey serverless/s1" -j DNAT --to-destination 10.0.3.9:6379',
  ]);
});

t.test('an address that leaves the answer loses its rule and its flows are forgotten', async (t) => {
  const first = pass(undefined, { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.2.7'] });
  const second = pass(first.state, { ok: true, ip: '10.0.2.7' }, 5000);
  t.same(second.forget, [{ kind: 'listener', listenPort: 6379, targetIp: '10.0.1.5', cause: 'moved' }]);
  t.equal(second.forwards[0]?.targetIps, undefined);
  t.same(second.rules.nat['CACHENAT-DNAT']?.filter((l) => l.includes('DNAT --to')), [
    '-A CACHENAT-DNAT -p tcp -m tcp --dport 6379 -m comment --comment "cachenat valkey serverless/s1" -j DNAT --to-destination 10.0.2.7:6379',
  ]);
  const third = pass(second.state, { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.2.7'] }, 10_000);
  t.same(third.forget, [], 'an address joining moves nothing');
  t.same(third.state.entries[0]?.ips, ['10.0.1.5', '10.0.2.7']);
  const steady = pass(third.state, { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.2.7'] }, 15_000);
  t.equal(steady.state.entries[0]?.resolvedAt, 10_000, 'a steady answer does not rewrite the port map');
});

t.test('the rules of a multi-address forward recover to its port and first address', async (t) => {
  const plan = pass(undefined, { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.2.7'] });
  const save = `*nat\n:CACHENAT-DNAT - [0:0]\n${plan.rules.nat['CACHENAT-DNAT']?.join('\n')}\nCOMMIT\n`;
  t.same(recoverForwards(parseSaveAll(save).get('nat')!), [{ key: 'serverless/s1', engine: 'valkey', listenPort: 6379, targetIp: '10.0.1.5', targetPort: 6379 }]);
});
