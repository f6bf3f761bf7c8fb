// sameInstalledRules decides whether a plan made from the last kernel read
// stands for this read: it must say "same" exactly when iptables-save would
// print the same chains, policies and lines (counters aside).

import t from 'tap';
import fc from 'fast-check';
import { installedFromSave, sameInstalledRules } from '../../../src/core/netfilter/installed.js';
import type { InstalledRules } from '../../../src/core/netfilter/diff.js';
import { saveText } from '../../support/kernel-sim.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 2_000);
const SEED = process.env.HARDENING_SEED === undefined ? undefined : Number(process.env.HARDENING_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

// Few names and lines, so that equal and nearly equal pairs come up often.
const chainName = fc.constantFrom('PREROUTING', 'POSTROUTING', 'CACHENAT-DNAT', 'CACHENAT-MAP');
const table = fc
  .uniqueArray(fc.record({ name: chainName, policy: fc.constantFrom('ACCEPT', '-'), rules: fc.array(fc.constantFrom('-j ACCEPT', '-p tcp -j DNAT --to-destination 10.0.0.1:6379', '-j RETURN'), { maxLength: 3 }) }), { selector: (c) => c.name, maxLength: 3 })
  .map((chains) => ({ chains: new Map(chains.map((c) => [c.name, { policy: c.policy, rules: c.rules.map((r) => `-A ${c.name} ${r}`) }])) }));
const installed: fc.Arbitrary<InstalledRules> = fc.record({ nat: table, filter: table });

/** The same rules read again: a fresh parse of what iptables-save prints, counters included. */
const readAgain = (rules: InstalledRules): InstalledRules => installedFromSave(saveText(rules, undefined, new Map([[6379, 42]])));

/** The rules read again after one small change: a policy, a rule dropped, two chains swapped. */
const touched = (rules: InstalledRules, how: number): InstalledRules => {
  const copy = readAgain(rules);
  const chains = [...copy.nat.chains];
  const first = chains[0];
  if (first === undefined) return copy;
  if (how === 0) first[1].policy = first[1].policy === '-' ? 'ACCEPT' : 'DROP';
  else if (how === 1) first[1].rules.pop();
  else chains.reverse();
  return { ...copy, nat: { chains: new Map(chains) } };
};

t.test('same exactly when iptables-save prints the same tables', async (t) => {
  let runs = 0;
  let same = 0;
  const out = fc.check(
    fc.property(installed, installed, fc.integer({ min: 0, max: 4 }), (a, b, mode) => {
      runs++;
      const other = mode === 0 ? b : mode === 1 ? readAgain(a) : touched(a, mode - 2);
      const expected = saveText(a) === saveText(other);
      if (expected) same++;
      return sameInstalledRules(a, other) === expected && sameInstalledRules(other, a) === expected;
    }),
    params,
  );
  if (out.failed) t.fail(`counterexample ${JSON.stringify(out.counterexample, (_k, v: unknown) => (v instanceof Map ? [...v] : v))}; replay: HARDENING_SEED=${out.seed} npx tap test/core/netfilter/installed.test.ts`);
  t.equal(runs >= RUNS, true, `${runs} cases`);
  t.ok(same > RUNS / 8 && same < runs, `${same} of them the same: both answers were tried`);
});

t.test('named examples', async (t) => {
  const of = (text: string) => installedFromSave(text);
  const base = '*nat\n:PREROUTING ACCEPT [0:0]\n:CACHENAT-DNAT - [0:0]\n-A CACHENAT-DNAT -j RETURN\nCOMMIT\n';
  t.ok(sameInstalledRules(of(base), of(base.replace('[0:0]', '[7:420]'))), 'chain counters are not rules');
  t.notOk(sameInstalledRules(of(base), of(base.replace(':PREROUTING ACCEPT', ':PREROUTING DROP'))), 'a policy is');
  t.notOk(sameInstalledRules(of(base), of('*nat\n:CACHENAT-DNAT - [0:0]\n:PREROUTING ACCEPT [0:0]\n-A CACHENAT-DNAT -j RETURN\nCOMMIT\n')), 'so is the order of the chains');
  t.notOk(sameInstalledRules(of(base), of(base.replace('-A CACHENAT-DNAT -j RETURN\n', ''))), 'a rule gone');
});
