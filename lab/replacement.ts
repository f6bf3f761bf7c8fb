// An instance replaced by its Auto Scaling group, in the HA lab: a new disk
// (no state dir, no saved rules) and a kernel that never ran cachenat; and a
// cluster that appears while it is away, so its port can only come from the
// shared map. Shared by the failover e2e and the user-data e2e.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HaRig, NatName } from './ha-rig.js';
import { statusOf, type Status } from './ha-failover.js';
import { baseTopology, stretch, waitFor } from './rig.js';

/** The cluster that appears while an instance is away: one Memcached node, answering memc-22. */
export const SOLO = { key: 'node/solo/0001', protocol: 'memcached', answers: 'memc-22' } as const;

/** Serves the base topology plus the solo cluster. */
export async function addSoloCluster(rig: HaRig): Promise<void> {
  const solo = 'solo.abc123.0001.use1.cache.amazonaws.com';
  rig.lab.setHost(solo, '198.19.0.22');
  const topology = baseTopology();
  topology.clusters.push({ id: 'solo', engine: 'memcached', nodes: [{ id: '0001', address: solo, port: 11211 }] });
  await rig.setTopology(topology);
}

/** Waits until `which` leads with the Elastic IP and `forwards` forwards, all active; its status then. */
export const leadingAlone = (rig: HaRig, which: NatName, forwards: number): Promise<Status> =>
  waitFor(
    `${which} leading alone with ${forwards} forwards active and the Elastic IP`,
    async () => {
      const s = await statusOf(rig, which);
      return s.ha?.role === 'leader' && s.forwards.length === forwards && s.forwards.every((f) => f.state === 'active') && (await rig.eipHolder()) === which ? s : undefined;
    },
    stretch(20_000),
  );

/** Makes `which` a new instance: its daemon's files gone, its tables back to `bootRules` (iptables-save of a host that never ran cachenat). */
export async function asNewInstance(rig: HaRig, which: NatName, bootRules: string): Promise<void> {
  const { dir, ns } = rig.nodes[which];
  for (const path of ['state', 'run', 'rules.v4']) rmSync(join(dir, path), { recursive: true, force: true });
  for (const table of ['nat', 'filter']) {
    for (const flag of ['-F', '-X']) await rig.lab.exec(ns, 'iptables', ['-w', '5', '-t', table, flag]);
  }
  await rig.lab.exec(ns, 'iptables-restore', [], { input: bootRules });
}
