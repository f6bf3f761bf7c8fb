// The simulator is only worth trusting if it refuses what the kernel refuses.

import t from 'tap';
import { applyRestore, emptyKernel, installedFrom } from './kernel-sim.js';
import { DOCKER_SAVE } from '../../lab/foreign-rules.js';

const withChain = applyRestore(emptyKernel(), '*nat\n:CACHENAT-DNAT - [0:0]\n-A CACHENAT-DNAT -j RETURN\n-A PREROUTING -j CACHENAT-DNAT\nCOMMIT\n');

t.test('refuses what iptables-restore refuses', async (t) => {
  const refused: [string, string, RegExp][] = [
    ['a rule in an undeclared chain', '*nat\n-A CACHENAT-X -j ACCEPT\nCOMMIT\n', /CACHENAT-X does not exist/],
    ['a jump to a missing chain', '*nat\n-A PREROUTING -j CACHENAT-X\nCOMMIT\n', /CACHENAT-X does not exist/],
    ['deleting a rule that is not there', '*nat\n-D PREROUTING -j ACCEPT\nCOMMIT\n', /not there/],
    ['deleting a chain that is not empty', '*nat\n-D PREROUTING -j CACHENAT-DNAT\n-X CACHENAT-DNAT\nCOMMIT\n', /non-empty/],
    ['deleting a chain still jumped to', '*nat\n:CACHENAT-DNAT - [0:0]\n-X CACHENAT-DNAT\nCOMMIT\n', /still jumps/],
    ['an insert past the end', '*nat\n-I PREROUTING 3 -j ACCEPT\nCOMMIT\n', /too big/],
    ['a line outside a table', '-A PREROUTING -j ACCEPT\n', /outside a table/],
    ['a missing COMMIT', '*nat\n-A PREROUTING -j ACCEPT\n', /missing COMMIT/],
  ];
  for (const [what, text, message] of refused) t.throws(() => applyRestore(withChain, text), message, what);
});

t.test('applies what the kernel applies, and leaves its input alone', async (t) => {
  const before = JSON.stringify([...withChain.nat.chains]);
  const after = applyRestore(withChain, '*nat\n-I PREROUTING 1 -j ACCEPT\n-I PREROUTING 3 -j RETURN\n:CACHENAT-DNAT - [0:0]\nCOMMIT\n');
  t.same(after.nat.chains.get('PREROUTING')!.rules, ['-A PREROUTING -j ACCEPT', '-A PREROUTING -j CACHENAT-DNAT', '-A PREROUTING -j RETURN']);
  t.same(after.nat.chains.get('CACHENAT-DNAT')!.rules, [], 'declaring an existing chain empties it (--noflush)');
  t.equal(JSON.stringify([...withChain.nat.chains]), before);
  t.same(applyRestore(withChain, null), withChain, 'null writes nothing');
  const docker = installedFrom(DOCKER_SAVE);
  t.equal(docker.filter.chains.get('FORWARD')!.policy, 'DROP');
  t.same([...installedFrom('').filter.chains.keys()], ['INPUT', 'FORWARD', 'OUTPUT'], 'a table absent from the save has its built-in chains');
});
