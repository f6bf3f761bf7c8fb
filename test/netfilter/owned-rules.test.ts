import t from 'tap';
import { diffRules } from '../../src/core/netfilter/diff.js';
import { installedFromSave } from '../../src/core/netfilter/installed.js';
import { renderRules } from '../../src/core/netfilter/render.js';
import { flushOwnedRules, readInstalledRules } from '../../src/netfilter/owned-rules.js';
import { DOCKER_SAVE, foreignLines } from '../../lab/foreign-rules.js';
import { saveText, SimulatedNetfilter } from '../support/kernel-sim.js';

const rules = renderRules([{ key: 'node/c1/0001', engine: 'redis', listenPort: 6380, targetIp: '10.0.1.231', targetPort: 6379 }], {
  inboundInterface: 'eth0',
  allowedSources: ['198.51.100.0/24'],
  snat: 'masquerade',
});

/** A Docker host with cachenat's rules installed on top. */
async function dockerHostWithCachenat(): Promise<SimulatedNetfilter> {
  const netfilter = new SimulatedNetfilter(installedFromSave(DOCKER_SAVE));
  await netfilter.restore(diffRules(rules, netfilter.kernel).restore!);
  netfilter.restores.length = 0;
  return netfilter;
}

t.test('readInstalledRules reads both tables from one save', async (t) => {
  const netfilter = await dockerHostWithCachenat();
  let saves = 0;
  const installed = await readInstalledRules({ saveAll: async () => (saves++, netfilter.saveAll()) });
  t.equal(saves, 1, 'one iptables-save for both tables');
  t.same(installed.nat.chains.get('CACHENAT-DNAT')!.rules, rules.nat['CACHENAT-DNAT']);
  t.same(installed.filter.chains.get('CACHENAT-FORWARD')!.rules, rules.filter['CACHENAT-FORWARD']);
  t.equal(installed.filter.chains.get('FORWARD')!.policy, 'DROP');
});

t.test('a table the save does not list holds its empty built-in chains', async (t) => {
  const installed = await readInstalledRules({ saveAll: async () => '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' });
  t.same([...installed.nat.chains.keys()], ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  t.same(diffRules(rules, installed).jumpsAdded.length, 4, 'every jump is still added');
});

t.test('flushOwnedRules removes every cachenat chain and jump, nothing else, and only once', async (t) => {
  const netfilter = await dockerHostWithCachenat();
  const before = foreignLines(saveText(netfilter.kernel));
  t.ok(saveText(netfilter.kernel).includes('CACHENAT-'), 'cachenat rules are installed first');
  const written = await flushOwnedRules(netfilter);
  t.not(written, null);
  t.same(netfilter.restores, [written], 'one restore');
  t.notOk(saveText(netfilter.kernel).includes('CACHENAT-'), 'nothing of cachenat left');
  t.equal(foreignLines(saveText(netfilter.kernel)), before, 'Docker rules untouched');
  t.equal(await flushOwnedRules(netfilter), null, 'a second flush finds nothing');
  t.equal(netfilter.restores.length, 1, 'and writes nothing');
});
