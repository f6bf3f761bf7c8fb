// The real edges of an HA node: DynamoDB, EC2 and IMDSv2 through the AWS SDK
// and fetch, the process's monotonic clock, random tokens.

import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config/schema.js';
import type { Logger } from '../log/logger.js';
import { DynamoHaStore } from './dynamo-store.js';
import { createElasticIps } from './elastic-ips.js';
import { HaNode } from './ha-node.js';
import { imdsClientFor } from '../aws/imds.js';
import { readInstanceIdentity } from '../aws/instance-identity.js';

/**
 * Each DynamoDB call must answer well within a third of a lease (the renewal
 * period), so a slow call is met as "unavailable" in time for the next beat.
 */
export const storeTimeoutMs = (leaseMs: number): number => Math.max(500, Math.min(2000, Math.floor(leaseMs / 4)));
const EC2_TIMEOUT_MS = 5000;
const IMDS_TIMEOUT_MS = 2000;

export function buildHaNode(config: Config, logger: Logger): HaNode | undefined {
  const ha = config.ha;
  if (!ha) return undefined;
  const region = config.aws.region;
  const store = new DynamoHaStore({ region, table: ha.table, group: ha.group, timeoutMs: storeTimeoutMs(ha.lease), ...(ha.endpoint ? { endpoint: ha.endpoint } : {}) });
  const addresses = createElasticIps({ region, timeoutMs: EC2_TIMEOUT_MS, ...(ha.ec2Endpoint ? { endpoint: ha.ec2Endpoint } : {}) });
  const listen = config.forward.listenAddresses;
  const imds = imdsClientFor(process.env, ha.imdsEndpoint);
  return new HaNode(
    {
      group: ha.group,
      leaseMs: ha.lease,
      ...(ha.elasticIp ? { elasticIp: ha.elasticIp } : {}),
      ...(listen ? { listenAddresses: listen.map((l) => ({ address: l.address, public: l.public, ...(l.allocationId ? { allocationId: l.allocationId } : {}) })) } : {}),
    },
    {
      store,
      addresses,
      identity: () => readInstanceIdentity(imds, IMDS_TIMEOUT_MS),
      monotonic: () => performance.now(),
      wallClock: () => Date.now(),
      token: () => randomUUID(),
      logger,
    },
  );
}
