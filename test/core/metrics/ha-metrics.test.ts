// The HA pair's metrics: cachenat_ha_leader counts a confirmed hold only; a
// leader whose lease is not confirmed says so on a gauge of its own.

import t from 'tap';
import { initialMetrics, metricFamilies } from '../../../src/core/metrics/daemon-metrics.js';
import type { HaStatus } from '../../../src/core/ha/ha-status.js';

const base: HaStatus = { role: 'standby', roleSince: '2026-12-07T00:00:00.000Z', group: 'prod-nat', leaseMs: 10_000, mayAllocate: false, elasticIps: [], peers: [], waiting: 0, misfits: [] };
const value = (ha: HaStatus, name: string): number | undefined =>
  (metricFamilies(initialMetrics(0), { forwards: [], connections: [], quarantinedPorts: 0, withoutPort: 0, now: Date.parse('2026-12-07T00:00:10Z'), ha }).find((f) => f.name === name)?.samples[0] as { value?: number } | undefined)?.value;

t.test('leader (confirmed), leader-unconfirmed, standby', async (t) => {
  const cases: [HaStatus['role'], boolean, [number, number, number]][] = [
    ['leader', true, [1, 0, 1]],
    ['leader-unconfirmed', false, [0, 1, 0]],
    ['standby', false, [0, 0, 0]],
    ['starting', false, [0, 0, 0]],
  ];
  for (const [role, mayAllocate, want] of cases) {
    const ha = { ...base, role, mayAllocate };
    t.same(['cachenat_ha_leader', 'cachenat_ha_lease_unconfirmed', 'cachenat_ha_may_allocate'].map((n) => value(ha, n)), want, role);
  }
});

t.test('waiting targets: those a follower cannot map, or those the leader found no room for', async (t) => {
  t.equal(value({ ...base, waiting: 2 }, 'cachenat_ha_waiting_targets'), 2);
  t.equal(value({ ...base, role: 'leader', mayAllocate: true, noRoom: ['node/a/0001', 'node/b/0001', 'node/c/0001'] }, 'cachenat_ha_waiting_targets'), 3);
});
