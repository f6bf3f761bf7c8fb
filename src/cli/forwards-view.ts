// What `status` and `endpoints` show: the running daemon's snapshot when there
// is one (works for unprivileged users), else the port map on disk.

import type { Config } from '../core/config/schema.js';
import { inboundInterfaceFor } from './commands/shared.js';
import { readSnapshotFile } from '../daemon/snapshot-file.js';
import type { Forward } from '../core/model.js';
import type { HaStatus } from '../core/daemon/status-snapshot.js';
import type { ForwardConnections } from '../core/metrics/daemon-metrics.js';
import { planForwards } from '../core/planner/plan-forwards.js';
import { forwardPolicyOf } from '../core/planner/plan.js';
import { StateStore } from '../ports/state-store.js';
import type { CliIo } from './io.js';

export interface ForwardsView {
  forwards: Forward[];
  source: 'daemon' | 'state' | 'stale-snapshot' | 'none';
  /** Per-forward connections, from the running daemon's snapshot only. */
  connections?: ForwardConnections[];
  /** HA pair: the running daemon's role, lease and peer. */
  ha?: HaStatus;
  /** Targets the running daemon found no free port for. */
  withoutPort?: string[];
}

export async function readForwards(config: Config, io: Pick<CliIo, 'isAlive' | 'now'>): Promise<ForwardsView> {
  const snapshot = await readSnapshotFile(config.state.statusFile);
  if (snapshot && io.isAlive(snapshot.pid)) {
    return {
      forwards: snapshot.forwards,
      source: 'daemon',
      ...(snapshot.connections ? { connections: snapshot.connections } : {}),
      ...(snapshot.ha ? { ha: snapshot.ha } : {}),
      ...(snapshot.withoutPort ? { withoutPort: snapshot.withoutPort } : {}),
    };
  }
  const loaded = await new StateStore(config.state.dir).load().catch(() => undefined);
  if (loaded?.status === 'ok') {
    return { forwards: planForwards(loaded.state, { resolutions: new Map() }, forwardPolicyOf(config), io.now()).forwards, source: 'state' };
  }
  if (snapshot) return { forwards: snapshot.forwards, source: 'stale-snapshot' };
  return { forwards: [], source: 'none' };
}

export type PublicAddress =
  | { address: string; from: 'config' | 'imds'; notes: string[] }
  | { address: string; from: 'interface'; notes: string[]; interface: string }
  /** Nothing usable: what was tried, in order, and why each gave nothing. */
  | { address: undefined; notes: string[] };

/**
 * The address clients dial: forward.publicAddress, else the instance's public
 * IPv4 from IMDSv2, else the inbound interface's own address. Never a guess:
 * when all three give nothing, the caller is told where it looked.
 */
export async function findPublicAddress(config: Config, io: Pick<CliIo, 'host' | 'env'>): Promise<PublicAddress> {
  if (config.forward.publicAddress) return { address: config.forward.publicAddress, from: 'config', notes: [] };
  const notes = ['forward.publicAddress is not set'];
  const imds = await io.host.imds(config.ha?.imdsEndpoint).publicIpv4();
  if ('value' in imds) return { address: imds.value, from: 'imds', notes: [] };
  notes.push(`IMDSv2 public-ipv4: ${imds.reason}`);
  const iface = await inboundInterfaceFor(config, io);
  const address = iface === undefined ? undefined : io.host.interfaces().find((i) => i.name === iface)?.ipv4[0];
  if (address !== undefined) return { address, from: 'interface', notes, interface: iface! };
  notes.push(`forward.inboundInterface ${iface ?? config.forward.inboundInterface}: no IPv4 address`);
  return { address: undefined, notes };
}
