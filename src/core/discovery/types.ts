// The AWS and DNS edges, as the daemon sees them.

import type { Resolution, Topology } from '../model.js';

/** Reads the whole topology. Throws DiscoveryError when the view would be incomplete. */
export interface CacheSource {
  describe(signal?: AbortSignal): Promise<Topology>;
}

export interface Resolver {
  /** One lookup with the system resolver; never throws. IPv4 literals resolve to themselves. */
  resolve(name: string): Promise<Resolution>;
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
