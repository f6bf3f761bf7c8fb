import t from 'tap';
import { diffRules } from '../../../src/core/netfilter/diff.js';
import { digestRules, installedOwnedRules, missingJumps } from '../../../src/core/netfilter/digest.js';
import { parseSave } from '../../../src/core/netfilter/parse-save.js';
import { renderRules } from '../../../src/core/netfilter/render.js';
import { applyRestore, installedFrom } from '../../support/kernel-sim.js';

const rules = renderRules([{ key: 'node/c1/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.231', targetPort: 6379 }], {
  inboundInterface: 'eth0',
  allowedSources: ['198.51.100.0/24'],
  snat: 'masquerade',
});

t.test('installed rules digest like the rules that were applied', async (t) => {
  const empty = installedFrom('');
  const installed = applyRestore(empty, diffRules(rules, empty).restore!);
  t.equal(digestRules(installedOwnedRules(installed)), digestRules(rules));
  t.same(missingJumps(installed), []);
  t.match(digestRules(rules), /^[0-9a-f]{64}$/);
});

t.test('digest ignores key order but not rule order or a missing chain', async (t) => {
  const reordered = { filter: rules.filter, nat: Object.fromEntries(Object.entries(rules.nat).reverse()) };
  t.equal(digestRules(reordered), digestRules(rules));
  const swapped = { ...rules, nat: { ...rules.nat, 'CACHENAT-PREROUTING': [...rules.nat['CACHENAT-PREROUTING']!, 'x'].reverse() } };
  t.not(digestRules(swapped), digestRules(rules));
  const { 'CACHENAT-DNAT': _gone, ...rest } = rules.nat;
  t.not(digestRules({ ...rules, nat: { ...rest, 'CACHENAT-DNAT': [] } }), digestRules({ ...rules, nat: rest }));
});

t.test('nothing installed: owned chains absent, every jump missing', async (t) => {
  const empty = { nat: parseSave(''), filter: parseSave('') };
  t.same(installedOwnedRules(empty), { nat: {}, filter: {} });
  t.same(missingJumps(empty), [
    'PREROUTING -> CACHENAT-PREROUTING',
    'OUTPUT -> CACHENAT-OUTPUT',
    'POSTROUTING -> CACHENAT-POSTROUTING',
    'FORWARD -> CACHENAT-FORWARD',
  ]);
});
