// The imperative shell's wiring: real kernel, AWS, DNS and disk behind the
// interfaces the core was written against. Imported only by commands that
// need them (it loads the AWS SDK).

import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../core/config/schema.js';
import { ElastiCacheSources } from '../discovery/elasticache-source.js';
import { SystemResolver } from '../discovery/resolver.js';
import type { Logger } from '../log/logger.js';
import { ConntrackTool } from '../netfilter/conntrack.js';
import { runCommand } from '../netfilter/iptables.js';
import { IptablesNetfilter } from '../netfilter/iptables.js';
import { enableIpForward, readIpForward } from '../netfilter/ip-forward.js';
import { detectBackend } from '../netfilter/backend.js';
import { chooseRulesFile, persistRules } from '../netfilter/persist.js';
import { createNotifier } from '../daemon/notify.js';
import { StateStore } from '../ports/state-store.js';
import { MetricsRecorder, hostMetricsEdges } from '../metrics/recorder.js';
import type { ReconcilerEdges } from '../daemon/reconciler.js';
import type { IpForwardControl } from '../daemon/run-daemon.js';
import type { Machine, RuleEdges } from './io.js';
import { auditFactory } from '../audit/build-audit.js';

/** `newClient` is for tests that watch the SDK clients a reload creates and destroys. */
export function realMachine(newClient?: ConstructorParameters<typeof ElastiCacheSources>[0]): Machine {
  return {
    edgeFactory: (logger) => {
      const sources = new ElastiCacheSources(newClient);
      return (config) => buildEdges(config, logger, sources);
    },
    ruleEdges: (config, logger) => buildRuleEdges(config, logger),
    ipForward: ipForwardControl,
    detectBackend: () => detectBackend(),
    notifier: (logger) =>
      createNotifier(process.env, undefined, {
        onError: (err) => logger.warn({ err: String(err) }, 'systemd-notify failed: systemd may not see READY or the watchdog; is NotifyAccess=all set in the unit?'),
      }),
    daemon: {
      sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
      random: Math.random,
      signals: process,
    },
    metrics: (logger) => new MetricsRecorder(hostMetricsEdges(logger)),
    // The DynamoDB and EC2 clients cost more memory than the rest of the daemon: only a pair loads them.
    haNode: async (config, logger) => (config.ha ? (await import('../ha/build-node.js')).buildHaNode(config, logger) : undefined),
    audit: (logger) => auditFactory(logger),
  };
}

/** `sources` is shared by successive calls (run's reloads); a one-shot command may leave it out. */
export function buildEdges(config: Config, logger: Logger, sources = new ElastiCacheSources()): ReconcilerEdges {
  const source = sources.sourceFor({
    region: config.aws.region,
    ...(config.aws.endpoint ? { endpoint: config.aws.endpoint } : {}),
    timeoutMs: config.discovery.apiTimeout,
    filter: { include: config.discovery.include, exclude: config.discovery.exclude },
  });
  return {
    ...buildRuleEdges(config, logger),
    conntrack: new ConntrackTool(runCommand, config.forward.connmark),
    source,
    resolver: new SystemResolver({ timeoutMs: Math.min(5000, Math.max(500, config.dns.interval)) }),
    store: new StateStore(config.state.dir),
    clock: { now: () => Date.now() },
    logger,
  };
}

/** The kernel's rules and their saved copy: all `flush` needs (no AWS, no region). */
export function buildRuleEdges(config: Pick<Config, 'persist'>, logger: Logger): RuleEdges {
  const netfilter = new IptablesNetfilter();
  const rulesFile = chooseRulesFile(config.persist.rulesFile, existsSync);
  if (rulesFile.path !== null) {
    const { path, mode } = rulesFile;
    return { netfilter, persistRules: async () => void (await persistRules(netfilter, path, mode)) };
  }
  if (rulesFile.warning) logger.warn(rulesFile.warning);
  return { netfilter };
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
