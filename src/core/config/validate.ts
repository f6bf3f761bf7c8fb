// Parsed YAML → a config, or every problem at once, each with its key path.
// The schema (./schema.ts) checks each key alone; the checks below catch
// combinations that validate key by key but cannot work together. Pure: what
// only the host can tell (does the interface exist, is a port in use) is
// decided in ./host.ts from facts the shell gathers.

import { dirname } from 'node:path/posix';
import { configSchema, type Config } from './schema.js';
import { describeIssue, type ConfigIssue } from './issues.js';

export type { ConfigIssue } from './issues.js';

/** The port map's file name in state.dir. */
export const PORT_MAP_FILE = 'ports.json';

/** The lock's file name, next to state.statusFile (in /run: a reboot clears it). */
export const LOCK_FILE = 'cachenat.lock';

/**
 * Ports below this are the well-known (system) ports: sshd's 22, DNS's 53,
 * HTTP's 80 and 443, NTP's 123... In port mode a forward takes its port on
 * every address of the inbound interface for allowedSources, so a range down
 * there would take those services over.
 */
export const FIRST_UNPRIVILEGED_PORT = 1024;

/**
 * Ports the lower range has to itself before it runs into the other: the
 * default quota of nodes in one ElastiCache cluster is 90, so a hundred keeps
 * a whole cluster's ports in one run. Closer ranges interleave.
 */
export const MIN_RANGE_ROOM = 100;

export type ValidationResult = { config: Config; warnings: string[] } | { issues: ConfigIssue[] };

export function validateConfigObject(raw: unknown): ValidationResult {
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) return { issues: result.error.issues.flatMap(describeIssue) };
  const config = result.data;
  const issues = [...portIssues(config), ...fileIssues(config), ...haIssues(config)];
  if (config.health.syncCriticalIntervals < config.health.syncWarnIntervals) {
    issues.push({ path: 'health.syncCriticalIntervals', message: `expected at least health.syncWarnIntervals (${config.health.syncWarnIntervals}), got ${config.health.syncCriticalIntervals}` });
  }
  if (issues.length > 0) return { issues };

  const warnings: string[] = [];
  if (config.forward.allowedSources.includes('0.0.0.0/0')) {
    warnings.push('forward.allowedSources contains 0.0.0.0/0: every address on the internet can reach the caches through this host');
  }
  return { config, warnings };
}

/** Both ranges above the well-known ports, and apart from each other. */
function portIssues(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { redis, memcached } = config.ports;
  for (const [engine, first] of [['redis', redis], ['memcached', memcached]] as const) {
    if (first < FIRST_UNPRIVILEGED_PORT) {
      issues.push({
        path: `ports.${engine}`,
        message: `expected a first port of ${FIRST_UNPRIVILEGED_PORT} or above, got ${first}: ports below ${FIRST_UNPRIVILEGED_PORT} are well-known services (22 is ssh), and in port mode cachenat would take them over on every address of forward.inboundInterface for allowedSources`,
      });
    }
  }
  if (redis === memcached) {
    issues.push({ path: 'ports', message: `ports.redis and ports.memcached are both ${redis}; give each engine its own first port, at least ${MIN_RANGE_ROOM} apart` });
  } else if (Math.abs(redis - memcached) < MIN_RANGE_ROOM) {
    const [lower, upper] = redis < memcached ? (['redis', 'memcached'] as const) : (['memcached', 'redis'] as const);
    issues.push({
      path: `ports.${upper}`,
      message: `expected at least ${MIN_RANGE_ROOM} ports between the two ranges, got ${Math.abs(redis - memcached)} (ports.redis ${redis}, ports.memcached ${memcached}): the ${lower} range would run into the ${upper} range after ${Math.abs(redis - memcached)} targets and the two would interleave (the defaults are 6379 and 11211)`,
    });
  }
  return issues;
}

/** Every file cachenat writes is its own: two keys naming one path would overwrite each other. */
function fileIssues(config: Config): ConfigIssue[] {
  const files: { path: string; key: string; what: string }[] = [
    { path: `${config.state.dir.replace(/\/+$/, '')}/${PORT_MAP_FILE}`, key: 'state.dir', what: 'the port map' },
    { path: `${dirname(config.state.statusFile)}/${LOCK_FILE}`, key: 'state.statusFile', what: 'the lock, next to the status file' },
    { path: config.state.statusFile, key: 'state.statusFile', what: 'the status snapshot' },
  ];
  if (config.persist.rulesFile !== 'auto' && config.persist.rulesFile !== 'none') files.push({ path: config.persist.rulesFile, key: 'persist.rulesFile', what: 'the saved ruleset' });
  if (config.metrics.textfile !== 'none') files.push({ path: config.metrics.textfile, key: 'metrics.textfile', what: 'the metrics' });
  const issues: ConfigIssue[] = [];
  const normal = (path: string) => path.replace(/\/+/g, '/').replace(/\/$/, '');
  files.forEach((file, i) => {
    if (normal(file.path) === normal(config.state.dir)) {
      issues.push({ path: file.key, message: `expected a file path, got ${file.path}, which is state.dir itself (a directory)` });
    }
    for (const other of files.slice(0, i)) {
      if (normal(other.path) !== normal(file.path) || other.key === file.key) continue;
      issues.push({ path: file.key, message: `expected a file of its own, got ${file.path}, which is also ${other.what} (${other.key}): the two would overwrite each other` });
    }
  });
  return issues;
}

/**
 * The ha section against the forward mode: port mode moves one Elastic IP
 * (ha.elasticIp), address mode one per listen address (its allocationId);
 * without ha no allocation id means anything, so none may be written.
 */
function haIssues(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const list = config.forward.listenAddresses;
  if (config.ha === undefined) {
    list?.forEach((entry, i) => {
      if (entry.allocationId !== undefined) issues.push({ path: `forward.listenAddresses[${i}].allocationId`, message: 'is used only with an ha section (the leader moves the Elastic IP); remove it, or add ha' });
    });
    return issues;
  }
  if (list === undefined) {
    if (config.ha.elasticIp === undefined) issues.push({ path: 'ha.elasticIp', message: 'required in port mode: the allocation id of the Elastic IP clients dial, which the leader moves to itself (e.g. eipalloc-0123abcd)' });
    return issues;
  }
  if (config.ha.elasticIp !== undefined) issues.push({ path: 'ha.elasticIp', message: 'is for port mode; in address mode each forward.listenAddresses entry names its own allocationId' });
  list.forEach((entry, i) => {
    if (entry.allocationId === undefined) issues.push({ path: `forward.listenAddresses[${i}].allocationId`, message: `required with ha: the allocation id of ${entry.public}, which the leader associates with its own ${entry.address}` });
  });
  return issues;
}
