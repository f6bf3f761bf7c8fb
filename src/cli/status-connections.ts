// The connections `status` shows per forward: open now (conntrack) and new
// since the daemon started (the DNAT rule's packet counter), as the daemon
// last read them.

import type { Forward } from '../core/model.js';
import type { ForwardConnections } from '../core/metrics/daemon-metrics.js';
import { forwardId } from '../core/metrics/rule-counters.js';

export type ForwardWithConnections = Forward & { activeConnections?: number; newConnections?: number };

export function withConnections(forwards: readonly Forward[], connections: readonly ForwardConnections[] | undefined): ForwardWithConnections[] {
  const byForward = new Map((connections ?? []).map((c) => [forwardId(c.listenPort, c.key), c]));
  return forwards.map((f) => {
    const c = byForward.get(forwardId(f.listenPort, f.key));
    const out: ForwardWithConnections = { ...f };
    if (c?.active !== undefined) out.activeConnections = c.active;
    if (c?.new !== undefined) out.newConnections = c.new;
    return out;
  });
}

/** `3/12`; a `-` for a figure the daemon could not read (or when it is not running). */
export const connectionsCell = (f: ForwardWithConnections): string => `${f.activeConnections ?? '-'}/${f.newConnections ?? '-'}`;
