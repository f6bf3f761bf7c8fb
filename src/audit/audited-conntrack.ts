// The reconciler's conntrack edge with the audit told about each flush (the
// reconciler's one place that deletes flows goes through here): the flows a
// move deleted end "target-moved", those a revocation cut "revoked", not
// "deleted by someone".

import { flowReasonOf } from '../core/model.js';
import type { Conntrack } from '../core/netfilter/types.js';
import type { FlowFlushNotes } from './audit-control.js';

export function auditedConntrack(inner: Conntrack, notes: FlowFlushNotes): Conntrack {
  return {
    get available() {
      return inner.available;
    },
    async forgetFlows(filter, deleted) {
      notes.flushStarting();
      let listing = '';
      try {
        return await inner.forgetFlows(filter, (text) => {
          listing = text;
          deleted?.(text);
        });
      } finally {
        notes.flushed(flowReasonOf(filter.cause) === 'moved' ? 'target-moved' : 'revoked', listing);
      }
    },
  };
}
