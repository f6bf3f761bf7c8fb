// Standing warnings the reconciler keeps for the status snapshot and health:
// each is logged once when it appears and dropped when it clears.

import type { DiscoveryError, SourceFailure } from '../core/discovery/types.js';
import { describeExposure, type PlaintextExposure } from '../core/planner/plaintext-guard.js';
import type { Logger } from '../log/logger.js';

const SERVERLESS_DENIED = 'permission:DescribeServerlessCaches';
const DENIED = /^(AccessDenied|AccessDeniedException|UnauthorizedOperation)$/;

/**
 * Sorts this pass's failed sources. An instance role from before Serverless
 * support lacks elasticache:DescribeServerlessCaches: that alone is a standing
 * WARNING naming the permission, not a failed sync. Returns the error that
 * makes this sync count as failed, if any.
 */
export function noteSourceFailures(failures: readonly SourceFailure[], warnings: Map<string, string>, logger: Logger): DiscoveryError | undefined {
  const denied = failures.find((f) => f.source === 'serverless' && DENIED.test(f.error.code));
  if (denied === undefined) {
    warnings.delete(SERVERLESS_DENIED);
  } else if (!warnings.has(SERVERLESS_DENIED)) {
    const message =
      'the instance role may not call elasticache:DescribeServerlessCaches, so Serverless caches are not forwarded; add it to the role (see ami/iam-policy.json)';
    warnings.set(SERVERLESS_DENIED, message);
    logger.warn({ code: denied.error.code }, message);
  }
  return failures.find((f) => f !== denied)?.error;
}

/** Keeps one warning per exposed plaintext forward; logs each when it first appears. */
export function notePlaintext(exposures: readonly PlaintextExposure[], warnings: Map<string, string>, logger: Logger): void {
  const current = new Map(exposures.map((e) => [`plaintext:${e.key}`, describeExposure(e)]));
  for (const topic of warnings.keys()) {
    if (topic.startsWith('plaintext:') && !current.has(topic)) warnings.delete(topic);
  }
  for (const [topic, message] of current) {
    if (warnings.get(topic) === message) continue;
    warnings.set(topic, message);
    logger.warn({ key: topic.slice('plaintext:'.length) }, message);
  }
}
