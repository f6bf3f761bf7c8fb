import t from 'tap';
import { parseSave, parseSaveAll } from '../../../src/core/netfilter/parse-save.js';
import { DOCKER_SAVE } from '../../../lab/foreign-rules.js';

t.test('reads every table of a full save, chains in order, rules as printed', async (t) => {
  const tables = parseSaveAll(DOCKER_SAVE);
  t.same([...tables.keys()], ['filter', 'nat']);
  const filter = tables.get('filter')!;
  t.same([...filter.chains.keys()], ['INPUT', 'FORWARD', 'OUTPUT', 'DOCKER', 'DOCKER-ISOLATION-STAGE-1', 'DOCKER-ISOLATION-STAGE-2', 'DOCKER-USER']);
  t.equal(filter.chains.get('FORWARD')!.policy, 'DROP');
  t.equal(filter.chains.get('DOCKER')!.policy, '-');
  t.same(filter.chains.get('INPUT')!.rules, [
    '-A INPUT -i lo -j ACCEPT',
    '-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh from admins" -j ACCEPT',
  ]);
  t.equal(tables.get('nat')!.chains.get('DOCKER')!.rules.length, 2);
});

t.test('parseSave picks one table, the first by default, an absent one as empty', async (t) => {
  t.ok(parseSave(DOCKER_SAVE).chains.has('DOCKER-USER'), 'first table is filter');
  t.ok(parseSave(DOCKER_SAVE, 'nat').chains.has('POSTROUTING'));
  t.equal(parseSave(DOCKER_SAVE, 'mangle').chains.size, 0);
});

t.test('empty output (table not loaded yet) is valid', async (t) => {
  t.equal(parseSave('').chains.size, 0);
  t.equal(parseSaveAll('\n').size, 0);
});

t.test('counters are stripped, blank and comment lines skipped', async (t) => {
  const saved = parseSave('# Generated\n*nat\n:PREROUTING ACCEPT [12:720]\n:X - [0:0]\n\n[3:180] -A PREROUTING -j X\n[0:0] -A X -j RETURN\nCOMMIT\n');
  t.same(saved.chains.get('PREROUTING'), { policy: 'ACCEPT', rules: ['-A PREROUTING -j X'] });
  t.same(saved.chains.get('X'), { policy: '-', rules: ['-A X -j RETURN'] });
});

const broken: [string, string, RegExp][] = [
  ['rule outside a table', '-A INPUT -j ACCEPT\n', /line 1: .* outside a table/],
  ['rule for an undeclared chain', '*nat\n-A NOPE -j ACCEPT\nCOMMIT\n', /line 2: rule for chain NOPE/],
  ['unknown line', '*nat\n:PREROUTING ACCEPT [0:0]\nbogus\nCOMMIT\n', /line 3: cannot read "bogus"/],
  ['COMMIT outside a table', 'COMMIT\n', /COMMIT outside a table/],
];
for (const [name, text, error] of broken) {
  t.test(`refuses ${name}`, async (t) => {
    t.throws(() => parseSaveAll(text), error);
  });
}
