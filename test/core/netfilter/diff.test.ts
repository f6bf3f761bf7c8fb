import t from 'tap';
import type { RuleForward } from '../../../src/core/model.js';
import { diffRules, renderFlush } from '../../../src/core/netfilter/diff.js';
import { renderRules, type RenderOptions } from '../../../src/core/netfilter/render.js';
import { DOCKER_SAVE } from '../../../lab/foreign-rules.js';
import { applyRestore, installedFrom, type InstalledRules as Installed } from '../../support/kernel-sim.js';

const options: RenderOptions = { inboundInterface: 'eth0', allowedSources: ['198.51.100.27/32'], snat: 'masquerade' };
const fwd = (n: number, ip = `10.0.1.${n}`): RuleForward => ({
  key: `node/c1/000${n}`,
  engine: 'redis',
  listenPort: 6379 + n,
  targetIp: ip,
  targetPort: 6379,
});
const desired = (forwards: RuleForward[]) => renderRules(forwards, options);

/** Every line of the text as the tables hold it, for comparing whole rulesets. */
const dump = (installed: Installed): string[] =>
  (['nat', 'filter'] as const).flatMap((table) =>
    [...installed[table].chains].flatMap(([name, chain]) => [`${table} :${name} ${chain.policy}`, ...chain.rules.map((r) => `${table} ${r}`)]),
  );
const foreign = (installed: Installed) => dump(installed).filter((line) => !line.includes('CACHENAT-'));

/** Applies the diff and returns the result; throws unless a second pass would change nothing. */
function converge(wanted: ReturnType<typeof desired>, installed: Installed): Installed {
  const changes = diffRules(wanted, installed);
  const after = changes.restore === null ? installed : applyRestore(installed, changes.restore);
  const again = diffRules(wanted, after).restore;
  if (again !== null) throw new Error(`a second pass still wants to write:\n${again}`);
  return after;
}

t.test('first apply on empty tables: chains, then rules, then jumps; both tables in one input', async (t) => {
  const changes = diffRules(desired([fwd(1)]), installedFrom(''));
  t.equal(
    changes.restore,
    [
      '*nat',
      ':CACHENAT-PREROUTING - [0:0]',
      ':CACHENAT-OUTPUT - [0:0]',
      ':CACHENAT-DNAT - [0:0]',
      ':CACHENAT-POSTROUTING - [0:0]',
      '-A CACHENAT-PREROUTING -s 198.51.100.27/32 -i eth0 -m addrtype --dst-type LOCAL -j CACHENAT-DNAT',
      '-A CACHENAT-OUTPUT -m addrtype --dst-type LOCAL -j CACHENAT-DNAT',
      '-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x1000000/0x1000000',
      '-A CACHENAT-DNAT -p tcp -m tcp --dport 6380 -m comment --comment "cachenat redis node/c1/0001" -j DNAT --to-destination 10.0.1.1:6379',
      '-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x0/0x1000000',
      '-A CACHENAT-POSTROUTING -m connmark --mark 0x1000000/0x1000000 -j MASQUERADE',
      '-I PREROUTING 1 -m comment --comment cachenat -j CACHENAT-PREROUTING',
      '-I OUTPUT 1 -m comment --comment cachenat -j CACHENAT-OUTPUT',
      '-I POSTROUTING 1 -m comment --comment cachenat -j CACHENAT-POSTROUTING',
      'COMMIT',
      '*filter',
      ':CACHENAT-FORWARD - [0:0]',
      '-A CACHENAT-FORWARD -m connmark --mark 0x1000000/0x1000000 -j ACCEPT',
      '-I FORWARD 1 -m comment --comment cachenat -j CACHENAT-FORWARD',
      'COMMIT',
      '',
    ].join('\n'),
  );
  t.same(changes.chainsWritten, ['CACHENAT-PREROUTING', 'CACHENAT-OUTPUT', 'CACHENAT-DNAT', 'CACHENAT-POSTROUTING', 'CACHENAT-FORWARD']);
  t.same(changes.jumpsAdded, [
    'PREROUTING -> CACHENAT-PREROUTING',
    'OUTPUT -> CACHENAT-OUTPUT',
    'POSTROUTING -> CACHENAT-POSTROUTING',
    'FORWARD -> CACHENAT-FORWARD',
  ]);
  t.equal(changes.jumpsRemoved, 0);
  t.same(changes.chainsDeleted, []);
});

t.test('on a Docker host: foreign rules untouched, jumps go first, idempotent', async (t) => {
  const before = installedFrom(DOCKER_SAVE);
  const after = converge(desired([fwd(1), fwd(2)]), before);
  t.same(foreign(after), foreign(before));
  t.equal(after.filter.chains.get('FORWARD')!.rules[0], '-A FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD');
  t.equal(after.filter.chains.get('FORWARD')!.policy, 'DROP');
  t.equal(after.nat.chains.get('PREROUTING')!.rules.length, 2);
  for (const line of diffRules(desired([fwd(1)]), before).restore!.split('\n')) {
    t.ok(
      /^(\*(nat|filter)|COMMIT|:CACHENAT-\S+ - \[0:0\]|-A CACHENAT-.*|-I (PREROUTING|OUTPUT|POSTROUTING|FORWARD) 1 -m comment --comment cachenat -j CACHENAT-\S+|)$/.test(line),
      `only owned lines: ${line}`,
    );
  }
});

t.test('an update rewrites only the chains that differ and only their table', async (t) => {
  const installed = converge(desired([fwd(1), fwd(2)]), installedFrom(DOCKER_SAVE));
  const moved = desired([fwd(1), fwd(2, '10.0.1.99')]);
  const changes = diffRules(moved, installed);
  t.same(changes.chainsWritten, ['CACHENAT-DNAT'], 'a moved target changes only its DNAT line: SNAT and FORWARD go by connmark');
  t.notMatch(changes.restore!, /\*filter/);
  t.same(changes.jumpsAdded, []);
  const after = converge(moved, installed);
  t.same(foreign(after), foreign(installed));

  const sourcesOnly = renderRules([fwd(1), fwd(2, '10.0.1.99')], { ...options, allowedSources: ['0.0.0.0/0'] });
  const onlyNat = diffRules(sourcesOnly, after);
  t.same(onlyNat.chainsWritten, ['CACHENAT-PREROUTING']);
  t.notMatch(onlyNat.restore!, /\*filter/, 'filter untouched when it already matches');
});

t.test('nothing to change: null', async (t) => {
  const installed = converge(desired([fwd(1)]), installedFrom(''));
  const changes = diffRules(desired([fwd(1)]), installed);
  t.same(changes, { restore: null, chainsWritten: [], jumpsAdded: [], jumpsRemoved: 0, chainsDeleted: [], leftoversKept: [] });
});

t.test('a flushed chain or a deleted jump comes back', async (t) => {
  const wanted = desired([fwd(1)]);
  const installed = converge(wanted, installedFrom(DOCKER_SAVE));
  const flushed = applyRestore(installed, '*nat\n:CACHENAT-DNAT - [0:0]\nCOMMIT\n');
  t.same(diffRules(wanted, flushed).chainsWritten, ['CACHENAT-DNAT']);
  t.same(dump(converge(wanted, flushed)), dump(installed));

  const unjumped = applyRestore(installed, '*filter\n-D FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD\nCOMMIT\n');
  const changes = diffRules(wanted, unjumped);
  t.equal(changes.restore, '*filter\n-I FORWARD 1 -m comment --comment cachenat -j CACHENAT-FORWARD\nCOMMIT\n');
  converge(wanted, unjumped);
});

t.test('duplicate and stray jumps are deleted, one wanted jump kept', async (t) => {
  const wanted = desired([fwd(1)]);
  const installed = converge(wanted, installedFrom(''));
  const messy = applyRestore(
    installed,
    [
      '*nat',
      '-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING',
      '-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING',
      '-A INPUT -m comment --comment cachenat -j CACHENAT-DNAT',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const changes = diffRules(wanted, messy);
  t.equal(changes.jumpsRemoved, 3);
  t.equal(
    changes.restore,
    [
      '*nat',
      '-D PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING',
      '-D PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING',
      '-D INPUT -m comment --comment cachenat -j CACHENAT-DNAT',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const after = converge(wanted, messy);
  t.same(after.nat.chains.get('PREROUTING')!.rules, ['-A PREROUTING -m comment --comment cachenat -j CACHENAT-PREROUTING']);
});

t.test('leftover CACHENAT-* chains are emptied and deleted after their jumps', async (t) => {
  const wanted = desired([fwd(1)]);
  const installed = converge(wanted, installedFrom(DOCKER_SAVE));
  const old = applyRestore(
    installed,
    [
      '*nat',
      ':CACHENAT-OLD - [0:0]',
      ':CACHENAT-OLDER - [0:0]',
      '-A CACHENAT-OLDER -j RETURN',
      '-A CACHENAT-OLD -j CACHENAT-OLDER',
      '-A CACHENAT-DNAT -j CACHENAT-OLD',
      '-I PREROUTING 1 -m comment --comment cachenat -j CACHENAT-OLD',
      'COMMIT',
      '*filter',
      ':CACHENAT-DNAT - [0:0]',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const changes = diffRules(wanted, old);
  t.same(changes.chainsDeleted, ['CACHENAT-OLD', 'CACHENAT-OLDER', 'CACHENAT-DNAT']);
  t.same(changes.chainsWritten, ['CACHENAT-DNAT']);
  t.equal(changes.jumpsRemoved, 1);
  const after = converge(wanted, old);
  t.same(dump(after), dump(installed));
});

t.test('a leftover that a foreign rule still jumps to is kept, with what it jumps to', async (t) => {
  const wanted = desired([fwd(1)]);
  const installed = converge(wanted, installedFrom(DOCKER_SAVE));
  const pinned = applyRestore(
    installed,
    [
      '*nat',
      ':CACHENAT-OLD - [0:0]',
      ':CACHENAT-OLDER - [0:0]',
      ':CACHENAT-GONE - [0:0]',
      '-A CACHENAT-OLD -j CACHENAT-OLDER',
      '-A DOCKER -p tcp -j CACHENAT-OLD',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const changes = diffRules(wanted, pinned);
  t.same(changes.leftoversKept, ['CACHENAT-OLD', 'CACHENAT-OLDER']);
  t.same(changes.chainsDeleted, ['CACHENAT-GONE']);
  t.equal(changes.restore, '*nat\n:CACHENAT-GONE - [0:0]\n-X CACHENAT-GONE\nCOMMIT\n');
  const after = converge(wanted, pinned);
  t.same(after.nat.chains.get('DOCKER')!.rules, pinned.nat.chains.get('DOCKER')!.rules);
});

t.test('a non-cachenat jump into an owned chain is left alone', async (t) => {
  const wanted = desired([fwd(1)]);
  const installed = converge(wanted, installedFrom(''));
  const extra = applyRestore(installed, '*filter\n-A FORWARD -i eth1 -j CACHENAT-FORWARD\nCOMMIT\n');
  t.equal(diffRules(wanted, extra).restore, null);
});

t.test('a comment that reads like a jump is not a jump', async (t) => {
  const text = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':CACHENAT-OLD - [0:0]',
    '-A INPUT -m comment --comment "see -j CACHENAT-OLD \\"x\\"" -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
  const installed = installedFrom(text);
  t.same(diffRules(desired([]), installed).chainsDeleted, ['CACHENAT-OLD']);
  t.equal(renderFlush(installed), '*filter\n:CACHENAT-OLD - [0:0]\n-X CACHENAT-OLD\nCOMMIT\n');
});

t.test('refuses desired rules outside owned chains', async (t) => {
  const installed = installedFrom('');
  t.throws(() => diffRules({ nat: { PREROUTING: [] }, filter: {} }, installed), /only writes chains named CACHENAT-/);
  t.throws(() => diffRules({ nat: { 'CACHENAT-DNAT': ['-A PREROUTING -j ACCEPT'] }, filter: {} }, installed), /refusing to write/);
});

t.test('renderFlush removes every jump into CACHENAT-* and every such chain, nothing else', async (t) => {
  const before = installedFrom(DOCKER_SAVE);
  const installed = converge(desired([fwd(1), fwd(2)]), before);
  const withExtra = applyRestore(installed, '*filter\n:CACHENAT-OLD - [0:0]\n-A FORWARD -i eth1 -j CACHENAT-FORWARD\nCOMMIT\n');
  const flush = renderFlush(withExtra)!;
  t.match(flush, /-D FORWARD -i eth1 -j CACHENAT-FORWARD/);
  const after = applyRestore(withExtra, flush);
  t.same(dump(after), dump(before));
  t.equal(renderFlush(after), null, 'nothing left to flush');
  t.equal(renderFlush(installedFrom('')), null);
});

t.test('renderFlush keeps chains a foreign chain still jumps to', async (t) => {
  const installed = converge(desired([fwd(1)]), installedFrom(DOCKER_SAVE));
  const pinned = applyRestore(installed, '*nat\n-A DOCKER -j CACHENAT-DNAT\nCOMMIT\n');
  const after = applyRestore(pinned, renderFlush(pinned)!);
  t.same([...after.nat.chains.keys()].filter((c) => c.startsWith('CACHENAT-')), ['CACHENAT-DNAT']);
  t.same(after.nat.chains.get('PREROUTING')!.rules, ['-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER']);
});

t.test('a jump into an owned chain that is no longer desired goes with the chain', async (t) => {
  const installed = converge(desired([fwd(1)]), installedFrom(''));
  const natOnly = { nat: desired([fwd(1)]).nat, filter: {} };
  const changes = diffRules(natOnly, installed);
  t.same(changes.chainsDeleted, ['CACHENAT-FORWARD']);
  t.equal(changes.restore, '*filter\n:CACHENAT-FORWARD - [0:0]\n-D FORWARD -m comment --comment cachenat -j CACHENAT-FORWARD\n-X CACHENAT-FORWARD\nCOMMIT\n');
  converge(natOnly, installed);
});
