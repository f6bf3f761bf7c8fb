import t from 'tap';
import { compileFilter, compileGlob } from '../../../src/core/discovery/glob.js';

t.test('globs: * any run, ? one character, the rest literal, case ignored', async (t) => {
  const cases: [string, string, boolean][] = [
    ['*', 'anything', true],
    ['*', '', true],
    ['prod-*', 'prod-orders', true],
    ['prod-*', 'staging-orders', false],
    ['c?', 'c1', true],
    ['c?', 'c12', false],
    ['Orders', 'orders', true],
    ['a.b', 'axb', false], // regex characters are literal
    ['a+', 'aa', false],
    ['*-001', 'orders-001', true],
    ['*-001', 'orders-0011', false],
  ];
  for (const [glob, text, expected] of cases) t.equal(compileGlob(glob)(text), expected, `${glob} vs ${text}`);
});

t.test('filter: any id included and no id excluded', async (t) => {
  const selected = compileFilter({ include: ['orders*', 'sessions'], exclude: ['*-test'] });
  t.ok(selected(['orders-001', 'orders']));
  t.ok(selected(['x', 'orders']), 'the group id alone selects');
  t.notOk(selected(['orders-test']));
  t.notOk(selected(['orders-001', 'orders-test']), 'any excluded id wins');
  t.notOk(selected(['other']));
  t.notOk(compileFilter({ include: [], exclude: [] })(['a']), 'an empty include selects nothing');
});
