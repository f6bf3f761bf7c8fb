// The AWS and DNS edges, as the daemon sees them.

import type { Resolution, TargetSource, Topology } from '../model.js';

/**
 * Reads the whole topology. When some describe calls fail and others answer,
 * the answer lists the failed sources in `held` and their errors in
 * `failures`; when every call fails it throws a DiscoveryError.
 */
export interface CacheSource {
  describe(signal?: AbortSignal): Promise<Discovery>;
}

/** One source's call failed: its targets stay as they were this pass. */
export interface SourceFailure {
  source: TargetSource;
  error: DiscoveryError;
}

export interface Discovery extends Topology {
  failures?: SourceFailure[];
}

export interface Resolver {
  /**
   * One lookup with the system resolver; never throws. IPv4 literals resolve
   * to themselves. `signal`: stop waiting (the pass's DNS budget ran out); the
   * name then counts as not answered.
   */
  resolve(name: string, signal?: AbortSignal): Promise<Resolution>;
}

/** The API could not give a complete answer this time: keep every forward as it is. */
export class DiscoveryError extends Error {
  constructor(
    message: string,
    /** AWS error code or a short class: Throttling, AccessDenied, Timeout, BadResponse, Network… */
    readonly code: string,
    /** True when retrying later can help (throttling, 5xx, network); false for e.g. access denied. */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DiscoveryError';
  }
}
