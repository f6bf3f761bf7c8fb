// Address mode with HA: the shared map names listeners by Elastic IP; each
// instance translates to and from its own private addresses.

import t from 'tap';
import { fromSharedMap, toSharedMap } from '../../../src/core/ha/shared-map.js';
import type { PortState } from '../../../src/core/ports/port-state.js';

const entry = (cluster: string, listenAddress?: string) => ({
  key: `node/${cluster}/0001`, kind: 'node' as const, engine: 'redis' as const, cacheClusterId: cluster, cacheNodeId: '0001', address: `${cluster}.cache.example`, targetPort: 6379, listenPort: 6379, ...(listenAddress ? { listenAddress } : {}),
});
const leaderPairs = [{ address: '10.0.1.21', public: '203.0.113.21' }, { address: '10.0.1.22', public: '203.0.113.22' }];
const standbyPairs = [{ address: '10.0.2.31', public: '203.0.113.21' }, { address: '10.0.2.32', public: '203.0.113.22' }];

const leaderState: PortState = {
  version: 1,
  entries: [entry('alpha', '10.0.1.21'), entry('bravo', '10.0.1.22')],
  released: [{ port: 6380, key: 'node/gone/0001', releasedAt: 4, address: '10.0.1.21' }], // a fallback's port, on the first address
  releasedAddresses: [{ address: '10.0.1.22', key: 'node/old/0001', releasedAt: 5 }],
};

t.test("the leader's private addresses become Elastic IPs, and the standby's own private addresses", async (t) => {
  const shared = toSharedMap(leaderState, leaderPairs);
  t.same(shared.entries.map((e) => e.listenAddress), ['203.0.113.21', '203.0.113.22']);
  t.same(shared.releasedAddresses, [{ address: '203.0.113.22', key: 'node/old/0001', releasedAt: 5 }], 'the quarantine travels too');
  t.same(shared.released, [{ port: 6380, key: 'node/gone/0001', releasedAt: 4, address: '203.0.113.21' }], "and a fallback's port with its address");
  t.same(fromSharedMap(shared, standbyPairs).released, [{ port: 6380, key: 'node/gone/0001', releasedAt: 4, address: '10.0.2.31' }]);
  const standby = fromSharedMap(shared, standbyPairs);
  t.same(standby.entries.map((e) => e.listenAddress), ['10.0.2.31', '10.0.2.32'], 'same Elastic IP, the standby\'s own address');
  t.same(fromSharedMap(shared, leaderPairs), leaderState, 'a round trip on one instance gives back its own map');
  t.same(leaderState.entries[0]!.listenAddress, '10.0.1.21', 'the input is not modified');
});

t.test('port mode translates nothing; an address with no pair stays as it is (the follower names it a misfit)', async (t) => {
  const portMode: PortState = { version: 1, entries: [entry('alpha')], released: [] };
  t.equal(toSharedMap(portMode, undefined), portMode);
  t.equal(fromSharedMap(portMode, undefined), portMode);
  const shared = toSharedMap(leaderState, leaderPairs);
  t.same(fromSharedMap(shared, standbyPairs.slice(0, 1)).entries.map((e) => e.listenAddress), ['10.0.2.31', '203.0.113.22']);
});
