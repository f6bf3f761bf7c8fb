// The conntrack edge as the audit wraps it: every flush is announced before it
// runs and reported after it, even when it fails, with what the tool deleted
// and the reason its cause stands for.

import t from 'tap';
import { auditedConntrack } from '../../src/audit/audited-conntrack.js';
import type { FlowFilter } from '../../src/core/model.js';
import type { Conntrack } from '../../src/core/netfilter/types.js';

const LISTING = 'tcp 6 431999 ESTABLISHED src=198.51.100.27 dst=10.0.0.5 sport=40000 dport=6379 src=10.0.1.5 dst=10.0.0.5 sport=6379 dport=40000 [ASSURED] mark=16777216 use=1\n';

t.test('each cause gives its reason; the listing reaches both the audit and the caller', async (t) => {
  const notes: string[] = [];
  const inner: Conntrack = { available: true, forgetFlows: async (_filter, deleted) => (deleted?.(LISTING), 1) };
  const edge = auditedConntrack(inner, { flushStarting: () => notes.push('starting'), flushed: (reason, listing) => notes.push(`${reason}:${listing === LISTING}`) });
  const filters: FlowFilter[] = [
    { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.5', cause: 'moved' },
    { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.5', cause: 'removed' },
    { kind: 'listener', listenPort: 6379, targetIp: '10.0.1.5', cause: 'refused' },
    { kind: 'listener', listenAddress: '10.0.0.21', listenPort: 6379, targetIp: '10.0.1.5', cause: 'relocated' },
    { kind: 'source', source: '198.51.100.0/24', cause: 'source' },
  ];
  let seen = '';
  for (const filter of filters) t.equal(await edge.forgetFlows(filter, (l) => (seen = l)), 1);
  t.equal(seen, LISTING, "the caller's own callback still gets the listing");
  t.same(notes, ['starting', 'target-moved:true', 'starting', 'revoked:true', 'starting', 'revoked:true', 'starting', 'revoked:true', 'starting', 'revoked:true']);
  t.equal(edge.available, true);
});

t.test('a flush that fails still ends its hold, with nothing deleted', async (t) => {
  const notes: string[] = [];
  const inner: Conntrack = {
    available: false,
    forgetFlows: async () => {
      throw new Error('conntrack -D exited 2');
    },
  };
  const edge = auditedConntrack(inner, { flushStarting: () => notes.push('starting'), flushed: (reason, listing) => notes.push(`${reason}:${JSON.stringify(listing)}`) });
  await t.rejects(edge.forgetFlows({ kind: 'source', source: '198.51.100.0/24', cause: 'source' }), /exited 2/);
  t.same(notes, ['starting', 'revoked:""']);
  t.equal(edge.available, false, 'availability is the inner tool\'s');
});
