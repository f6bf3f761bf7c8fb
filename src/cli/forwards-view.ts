// What `status` and `endpoints` show: the running daemon's snapshot when there
// is one (works for unprivileged users), else the port map on disk.

import { networkInterfaces } from 'node:os';
import type { Config } from '../core/config/schema.js';
import { readSnapshotFile } from '../daemon/snapshot-file.js';
import type { Forward } from '../core/model.js';
import type { ForwardConnections } from '../core/metrics/daemon-metrics.js';
import { planForwards } from '../core/planner/plan-forwards.js';
import { forwardPolicyOf } from '../core/planner/plan.js';
import { StateStore } from '../ports/state-store.js';
import { isProcessAlive } from '../util/process-alive.js';

export interface ForwardsView {
  forwards: Forward[];
  source: 'daemon' | 'state' | 'stale-snapshot' | 'none';
  /** Per-forward connections, from the running daemon's snapshot only. */
  connections?: ForwardConnections[];
}

export async function readForwards(config: Config): Promise<ForwardsView> {
  const snapshot = await readSnapshotFile(config.state.statusFile);
  if (snapshot && isProcessAlive(snapshot.pid)) {
    return { forwards: snapshot.forwards, source: 'daemon', ...(snapshot.connections ? { connections: snapshot.connections } : {}) };
  }
  const loaded = await new StateStore(config.state.dir).load().catch(() => undefined);
  if (loaded?.status === 'ok') {
    return { forwards: planForwards(loaded.state, { resolutions: new Map() }, forwardPolicyOf(config), Date.now()).forwards, source: 'state' };
  }
  if (snapshot) return { forwards: snapshot.forwards, source: 'stale-snapshot' };
  return { forwards: [], source: 'none' };
}

/**
 * The address clients dial: forward.publicAddress, else the instance's public
 * IPv4 from IMDSv2, else the inbound interface's own address.
 */
export async function externalHost(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (config.forward.publicAddress) return config.forward.publicAddress;
  if (env.AWS_EC2_METADATA_DISABLED !== 'true') {
    const fromImds = await imdsPublicIpv4().catch(() => undefined);
    if (fromImds) return fromImds;
  }
  const iface = networkInterfaces()[config.forward.inboundInterface]?.find((a) => a.family === 'IPv4');
  return iface?.address ?? '127.0.0.1';
}

async function imdsPublicIpv4(): Promise<string | undefined> {
  const base = 'http://169.254.169.254/latest';
  const token = await fetch(`${base}/api/token`, {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
    signal: AbortSignal.timeout(1000),
  });
  if (!token.ok) return undefined;
  const answer = await fetch(`${base}/meta-data/public-ipv4`, {
    headers: { 'X-aws-ec2-metadata-token': await token.text() },
    signal: AbortSignal.timeout(1000),
  });
  const text = (await answer.text()).trim();
  return answer.ok && /^\d{1,3}(\.\d{1,3}){3}$/.test(text) ? text : undefined;
}
