// The reconciler's conntrack edge with the audit told about each flush: the
// flows a move deleted end with reason target-moved, not "deleted by someone".

import type { Conntrack } from '../core/netfilter/types.js';
import type { FlowFlushNotes } from './audit-control.js';

export function auditedConntrack(inner: Conntrack, notes: FlowFlushNotes): Conntrack {
  return {
    get available() {
      return inner.available;
    },
    async forgetFlows(listener, oldIp, deleted) {
      notes.flushStarting();
      let listing = '';
      try {
        return await inner.forgetFlows(listener, oldIp, (text) => {
          listing = text;
          deleted?.(text);
        });
      } finally {
        notes.flushed('target-moved', listing);
      }
    },
  };
}
