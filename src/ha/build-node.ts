// The real edges of an HA node: DynamoDB, EC2 and IMDSv2 through the AWS SDK
// and fetch, the process's clocks and timers, random tokens.

import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../core/config/schema.js';
import { configFingerprint } from '../core/ha/fingerprint.js';
import { EC2_TIMEOUT_MS, storeTimeoutMs } from '../core/ha/timing.js';
import type { Logger } from '../log/logger.js';
import { DynamoHaStore } from './dynamo-store.js';
import { createElasticIps } from './elastic-ips.js';
import { HaNode } from './ha-node.js';
import { imdsClientFor } from '../aws/imds.js';
import { readInstanceIdentity } from '../aws/instance-identity.js';

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
      fingerprint: configFingerprint(config),
      ...(ha.elasticIp ? { elasticIp: ha.elasticIp } : {}),
      ...(listen ? { listenAddresses: listen.map((l) => ({ address: l.address, public: l.public, ...(l.allocationId ? { allocationId: l.allocationId } : {}) })) } : {}),
    },
    {
      store,
      addresses,
      identity: () => readInstanceIdentity(imds, IMDS_TIMEOUT_MS),
      // performance.now() is CLOCK_MONOTONIC: it stands still while the host is suspended, which is what the wall clock is compared with.
      monotonic: () => performance.now(),
      wallClock: () => Date.now(),
      deadline: (at) => AbortSignal.timeout(Math.max(0, Math.ceil(at - performance.now()))),
      sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
      token: () => randomUUID(),
      random: () => Math.random(),
      logger,
    },
  );
}
