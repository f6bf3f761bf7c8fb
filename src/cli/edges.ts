// The imperative shell's wiring: real kernel, AWS, DNS and disk behind the
// interfaces the core was written against.

import { existsSync } from 'node:fs';
import type { Config } from '../core/config/schema.js';
import { ElastiCacheSource } from '../discovery/elasticache-source.js';
import { SystemResolver } from '../discovery/resolver.js';
import type { Logger } from '../log/logger.js';
import { ConntrackTool } from '../netfilter/conntrack.js';
import { IptablesNetfilter } from '../netfilter/iptables.js';
import { enableIpForward, readIpForward } from '../netfilter/ip-forward.js';
import { chooseRulesFile, persistRules } from '../netfilter/persist.js';
import { StateStore } from '../ports/state-store.js';
import type { ReconcilerEdges } from '../daemon/reconciler.js';
import type { IpForwardControl } from '../daemon/run-daemon.js';

export function buildEdges(config: Config, logger: Logger): ReconcilerEdges {
  const netfilter = new IptablesNetfilter();
  const conntrack = new ConntrackTool();
  const source = new ElastiCacheSource({
    region: config.aws.region,
    ...(config.aws.endpoint ? { endpoint: config.aws.endpoint } : {}),
    timeoutMs: config.discovery.apiTimeout,
    filter: { include: config.discovery.include, exclude: config.discovery.exclude },
  });
  const edges: ReconcilerEdges = {
    netfilter,
    conntrack,
    source,
    resolver: new SystemResolver({ timeoutMs: Math.min(5000, Math.max(500, config.dns.interval)) }),
    store: new StateStore(config.state.dir),
    clock: { now: () => Date.now() },
    logger,
  };
  const rulesFile = chooseRulesFile(config.persist.rulesFile, existsSync);
  if (rulesFile.path !== null) {
    const { path, mode } = rulesFile;
    edges.persistRules = async () => {
      await persistRules(netfilter, path, mode);
    };
  } else if (rulesFile.warning) {
    logger.warn(rulesFile.warning);
  }
  return edges;
}

export function ipForwardControl(logger: Logger): IpForwardControl {
  let persisted = false;
  return {
    async ensure(mode) {
      const value = (await readIpForward()) ? 1 : 0;
      if (mode === 'check') {
        if (value !== 1) logger.warn('net.ipv4.ip_forward is 0: the kernel will not forward to the caches. Set ipForward: enable, or run sysctl -w net.ipv4.ip_forward=1 and persist it');
        return value;
      }
      if (value !== 1 || !persisted) {
        await enableIpForward();
        if (value !== 1) logger.warn('net.ipv4.ip_forward was 0; set it to 1 and persisted it in sysctl.d');
        persisted = true;
      }
      return 1;
    },
  };
}
