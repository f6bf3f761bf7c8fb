// The counterexamples from issue 18 ("a client always reaches the cache it
// dialled"), each kept as a named sequence run through the same harness and
// invariants as the random search (invariants.test.ts). Each failed before
// its fix.

import t, { type Test } from 'tap';
import { InvariantViolation, runSequence, World, emptyStats, type Start } from './harness.js';
import type { Step } from './steps.js';
import { HOST, ipOf, POOL, UNIVERSE, type Settings, type Setup } from './world.js';
import { serializeState } from '../../src/core/ports/port-map-codec.js';

const single: Setup = { removalGraceMs: 10_000, reuseAfterMs: 3_600_000, redisFrom: 6379, pair: false };
const index = (key: string): number => UNIVERSE.findIndex((u) => u.key === key);
const ALPHA = index('node/alpha/0001'); // redis, plaintext
const BRAVO = index('node/bravo/0001'); // valkey, TLS
const PRIMARY = index('primary/grp'); // redis, plaintext
const MC = index('node/mc/0001'); // memcached, plaintext
const SERVERLESS = index('serverless/sls'); // valkey, TLS
const PRIMARY_NAME = UNIVERSE[PRIMARY]!.name;
const addressMode = (pool: number[], more: Partial<Settings> = {}): Settings => ({ pool, sources: [0], plaintext: 'warn', ...more });
const portMode = (more: Partial<Settings> = {}): Settings => ({ pool: null, sources: [0], plaintext: 'warn', ...more });

/** Runs a named sequence; passes when every invariant holds after every step. */
async function holds(t: Test, steps: Step[], start: Start = {}, setup: Setup = single): Promise<World> {
  let world: World | undefined;
  let violation: string | undefined;
  try {
    world = await runSequence(setup, steps, emptyStats(), start);
  } catch (err) {
    if (!(err instanceof InvariantViolation)) throw err;
    violation = err.message;
  }
  t.equal(violation, undefined, `${steps.length} steps, every invariant held`);
  return world as World;
}

t.test('1. address mode, one address: a quarantined listener is never lent as a fallback, and its owner gets it back', async (t) => {
  const world = await holds(
    t,
    [
      { t: 'api', dt: 1, listed: [] }, // alpha leaves…
      { t: 'tick', dt: 2 }, // …its grace ends: 10.0.9.21:6379 is quarantined
      { t: 'api', dt: 1, listed: [BRAVO] }, // a newcomer: no address free, a fallback port on 10.0.9.21
      { t: 'connect', target: ALPHA, released: true }, // alpha's clients still dial 10.0.9.21:6379
      { t: 'api', dt: 1, listed: [ALPHA, BRAVO] }, // alpha is back within reuseAfter
    ],
    { settings: addressMode([0]), listed: [ALPHA] },
  );
  const alpha = world.model.current.get('node/alpha/0001');
  t.same(alpha, { address: POOL[0], port: 6379 }, 'alpha listens on its own address again');
  t.not(world.model.current.get('node/bravo/0001')?.port, 6379, 'the newcomer never had 6379 on that address');
});

t.test('1b. the same after a switch to port mode: no port-mode listener catches the quarantined address', async (t) => {
  await holds(
    t,
    [
      { t: 'api', dt: 1, listed: [] },
      { t: 'tick', dt: 2 }, // 10.0.9.21:6379 quarantined for alpha
      { t: 'config', dt: 1, settings: portMode() },
      { t: 'api', dt: 1, listed: [BRAVO] }, // a port-mode 6379 would answer 10.0.9.21:6379 too
      { t: 'connect', target: ALPHA, released: true },
    ],
    { settings: addressMode([0]), listed: [ALPHA] },
  );
});

t.test('2. a failover whose kernel write fails: the flows to the old primary go once a write succeeds', async (t) => {
  await holds(t, [
    { t: 'connect', target: PRIMARY, released: false }, // clients on the primary at 10.50.2.1
    { t: 'fault', host: 0, fault: 'fail' }, // the next iptables-restore exits 1
    { t: 'dns', dt: 1, name: PRIMARY_NAME, answer: { ips: [1] } }, // failover: the map is saved with 10.50.2.2, the write fails
    { t: 'tick', dt: 1 }, // the write works: the old flows must go
  ]);
});

t.test('2b. killed between saving the map and the kernel write during a failover', async (t) => {
  await holds(t, [
    { t: 'connect', target: PRIMARY, released: false },
    { t: 'fault', host: 0, fault: 'crash-before' },
    { t: 'dns', dt: 1, name: PRIMARY_NAME, answer: { ips: [1] } }, // map saved, then the process dies
    { t: 'tick', dt: 1 }, // restarted with the new IP in the map
  ]);
});

t.test('2c. killed between the kernel write and forgetting the flows', async (t) => {
  await holds(t, [
    { t: 'connect', target: PRIMARY, released: false },
    { t: 'fault', host: 0, fault: 'crash-after' },
    { t: 'dns', dt: 1, name: PRIMARY_NAME, answer: { ips: [1] } },
    { t: 'tick', dt: 1 },
  ]);
});

t.test('3. the map lost with refused targets: recovered from the kernel, nobody swaps ports', async (t) => {
  // primary/grp came first (6379), node/alpha/0001 second (6380); key order is the other way round.
  const refuse = portMode({ sources: [0, 2], plaintext: 'refuse' });
  await holds(
    t,
    [
      { t: 'api', dt: 1, listed: [PRIMARY, ALPHA] },
      { t: 'config', dt: 1, settings: refuse }, // both plaintext, a public source: refused, no rules
      { t: 'restart', host: 0, loseMap: true },
      { t: 'config', dt: 1, settings: portMode({ sources: [0, 2], plaintext: 'allow' }) },
      { t: 'connect', target: PRIMARY, released: false },
    ],
    { listed: [PRIMARY] },
  );
});

t.test('3b. the map lost with an unresolved target and a quarantined port', async (t) => {
  await holds(
    t,
    [
      { t: 'api', dt: 1, listed: [PRIMARY, ALPHA, BRAVO] },
      { t: 'dns', dt: 1, name: UNIVERSE[PRIMARY]!.name, answer: 'fail' },
      { t: 'tick', dt: 2 }, // primary/grp unresolved: no rule, port kept
      { t: 'api', dt: 1, listed: [ALPHA] }, // bravo leaves
      { t: 'tick', dt: 2 }, // its port is quarantined
      { t: 'restart', host: 0, loseMap: true },
      { t: 'api', dt: 1, listed: [PRIMARY, ALPHA, SERVERLESS] }, // a newcomer must get neither bravo's port nor primary/grp's
      { t: 'dns', dt: 1, name: UNIVERSE[PRIMARY]!.name, answer: { ips: [0] } },
    ],
    { listed: [PRIMARY] },
  );
});

t.test('3c. a fallback on its native port is recovered as a fallback, and moves to its own address when one frees', async (t) => {
  const world = await holds(
    t,
    [
      { t: 'api', dt: 1, listed: [MC, ALPHA] }, // 10.0.9.21 is Memcached's; alpha falls back to 10.0.9.21:6379, its native port
      { t: 'restart', host: 0, loseMap: true },
      { t: 'config', dt: 1, settings: addressMode([0, 1]) },
    ],
    { settings: addressMode([0]), listed: [MC] },
  );
  t.same(world.model.current.get('node/alpha/0001'), { address: POOL[1], port: 6379 }, 'alpha got its own address');
});

t.test('4. the codec agrees with the writer and the renderer', async (t) => {
  await t.test('a map with one key twice is lost (rebuilt from the kernel), not a pass that throws forever', async (t) => {
    const world = new World(single, emptyStats());
    await world.passAll();
    const host = world.hosts[0]!;
    const state = JSON.parse(host.store.text!) as { entries: { listenPort: number }[] };
    state.entries.push({ ...state.entries[0]!, listenPort: 6390 }); // the same key again, on a port of its own
    host.store.text = JSON.stringify(state);
    await world.step({ t: 'restart', host: 0, loseMap: false });
    t.same([...world.model.current.keys()].length, UNIVERSE.length, 'every target still has its listener');
  });
  await t.test('a map naming 169.254.169.254 while DNS fails is lost, not a pass that throws forever', async (t) => {
    const world = new World(single, emptyStats());
    await world.passAll();
    const host = world.hosts[0]!;
    await world.step({ t: 'dns', dt: 1, name: PRIMARY_NAME, answer: 'fail' }); // the last address is kept meanwhile
    t.match(host.store.text, `"ip": "${ipOf(PRIMARY_NAME, 0)}"`);
    host.store.text = host.store.text!.replace(`"ip": "${ipOf(PRIMARY_NAME, 0)}"`, '"ip": "169.254.169.254"');
    await t.resolves(world.step({ t: 'restart', host: 0, loseMap: false }), 'passes went on');
  });
  await t.test('a name with more than 64 addresses: the map the daemon writes reads back', async (t) => {
    const world = new World(single, emptyStats());
    await world.passAll();
    const many = Array.from({ length: 70 }, (_, i) => `10.60.${i >> 6}.${(i % 64) + 1}`);
    const host = world.hosts[0]!;
    // What the system resolver would give for a name with 70 A records.
    world.resolveOverride = (name) => (name === UNIVERSE[PRIMARY]!.address ? { ok: true, ip: many[0]!, ips: many } : undefined);
    await world.step({ t: 'tick', dt: 1 });
    const saved = JSON.parse(host.store.text!) as { entries: { key: string; ips?: string[] }[] };
    t.equal(saved.entries.find((e) => e.key === 'primary/grp')?.ips?.length, 64, 'the lowest 64 addresses are kept');
    await world.step({ t: 'restart', host: 0, loseMap: false });
    t.equal(serializeState(JSON.parse(host.store.text!)), host.store.text, 'and read back as written');
  });
});

t.test('5. taking access away cuts established flows in the same pass', async (t) => {
  await t.test('allowedSources narrowed', async (t) => {
    await holds(t, [{ t: 'connect', target: BRAVO, released: false }, { t: 'config', dt: 1, settings: portMode({ sources: [1] }) }], { settings: portMode({ sources: [0, 1] }) });
  });
  await t.test('plaintext: refuse', async (t) => {
    await holds(t, [{ t: 'connect', target: ALPHA, released: false }, { t: 'config', dt: 1, settings: portMode({ sources: [0, 2], plaintext: 'refuse' }) }], {
      settings: portMode({ sources: [0, 2] }),
    });
  });
  await t.test('a target removed after its grace', async (t) => {
    await holds(t, [{ t: 'connect', target: BRAVO, released: false }, { t: 'api', dt: 1, listed: [ALPHA] }, { t: 'tick', dt: 2 }]);
  });
  await t.test('a listen address dropped from the pool', async (t) => {
    await holds(t, [{ t: 'connect', target: ALPHA, released: false }, { t: 'config', dt: 1, settings: addressMode([1]) }], { settings: addressMode([0, 1]), listed: [ALPHA] });
  });
  t.equal(HOST, '198.18.0.1');
});

t.test('7. a Serverless endpoint that comes back joins the address its reader endpoint took meanwhile (one name, one address)', async (t) => {
  // Seed 4243: the endpoint's own address was quarantined for it, so the reader (same name) took another; the
  // endpoint then joins the reader, not its old address: a name maps to one address in clients' hosts files.
  const world = await holds(
    t,
    [
      { t: 'api', dt: 0, listed: [SERVERLESS] },
      { t: 'config', dt: 0, settings: addressMode([1, 0]) }, // the endpoint gets 10.0.9.22:6379
      { t: 'api', dt: 0, listed: [SERVERLESS + 1] }, // the endpoint leaves (no grace), the reader arrives: 10.0.9.21:6380
      { t: 'api', dt: 0, listed: [SERVERLESS, SERVERLESS + 1] },
    ],
    {},
    { ...single, removalGraceMs: 0 },
  );
  t.same(world.model.current.get('serverless/sls'), { address: POOL[0], port: 6379 }, 'the endpoint shares its reader\'s address');
  t.same(world.model.current.get('serverless-reader/sls'), { address: POOL[0], port: 6380 });
});

t.test('6. a released fallback listener is not another target’s own listener before reuseAfter', async (t) => {
  const onlyC = addressMode([2]); // 10.0.9.23 alone: whoever comes second falls back onto it
  await t.test('the first address changes: a fallback on its native port moves off, another takes the address on that port', async (t) => {
    await holds(
      t,
      [
        { t: 'api', dt: 1, listed: [BRAVO, PRIMARY] }, // bravo owns 10.0.9.23:6379, the group falls back to 10.0.9.23:6380
        { t: 'api', dt: 1, listed: [PRIMARY] },
        { t: 'tick', dt: 2 }, // bravo's grace ends: the address is quarantined…
        { t: 'tick', dt: 3 }, // …until reuseAfter; only a fallback sits on it now
        { t: 'api', dt: 1, listed: [PRIMARY, ALPHA] }, // alpha falls back to 10.0.9.23:6379 (free on that address)
        { t: 'connect', target: ALPHA, released: false },
        { t: 'config', dt: 1, settings: addressMode([0, 2]) }, // 10.0.9.21 first: alpha gets it, the group must not get 10.0.9.23:6379
        { t: 'connect', target: ALPHA, released: true },
      ],
      { settings: onlyC, listed: [BRAVO] },
      { ...single, reuseAfterMs: 20_000 },
    );
  });
  await t.test('a Serverless reader joins its endpoint’s address on the port a removed fallback held', async (t) => {
    await holds(
      t,
      [
        { t: 'api', dt: 1, listed: [SERVERLESS, ALPHA] }, // alpha falls back to 10.0.9.23:6380
        { t: 'connect', target: ALPHA, released: false },
        { t: 'api', dt: 1, listed: [SERVERLESS] },
        { t: 'tick', dt: 2 }, // alpha removed: its clients still dial 10.0.9.23:6380
        { t: 'api', dt: 1, listed: [SERVERLESS, SERVERLESS + 1] }, // the reader endpoint (native 6380) shares the name's address
        { t: 'connect', target: ALPHA, released: true },
      ],
      { settings: onlyC, listed: [SERVERLESS] },
    );
  });
  await t.test('a fallback that went to port mode on the same port and back: its first address stays quarantined on that port', async (t) => {
    await holds(
      t,
      [
        { t: 'api', dt: 1, listed: [SERVERLESS, PRIMARY] }, // the group falls back to 10.0.9.22:6380
        { t: 'connect', target: PRIMARY, released: false }, // its clients dial 10.0.9.22:6380
        { t: 'config', dt: 1, settings: portMode() }, // port mode: the group gets 6380 back, which catches 10.0.9.22:6380 too
        { t: 'api', dt: 1, listed: [SERVERLESS, PRIMARY, SERVERLESS + 1] }, // the reader (native 6380) gets a port
        { t: 'config', dt: 1, settings: addressMode([1]) }, // address mode again: the reader must not join 10.0.9.22 on 6380 yet
        { t: 'connect', target: PRIMARY, released: true },
      ],
      { settings: addressMode([1]), listed: [SERVERLESS] },
    );
  });
});

t.test('8. a listener handed on without quarantine to a target at the same address: its open flows are the new owner’s', async (t) => {
  // Seed -577151228: reuseAfter 0, the Serverless endpoint's port goes (after a failed write) to the reader
  // endpoint of the same name, so its clients' flows still reach the same address through the reader's rule.
  // The reader's name then stops resolving for its whole grace: its forward is suspended and, like every
  // suspended forward's, those flows stay. conntrack knows no keys: they are judged as the reader's.
  await holds(
    t,
    [
      { t: 'connect', target: SERVERLESS, released: false },
      { t: 'fault', host: 0, fault: 'fail' },
      { t: 'api', dt: 0, listed: [] },
      { t: 'tick', dt: 2 }, // every target removed; the write fails
      { t: 'api', dt: 0, listed: [ALPHA, BRAVO, PRIMARY, SERVERLESS + 1] }, // the reader takes the endpoint's port, same address
      { t: 'dns', dt: 1, name: UNIVERSE[SERVERLESS]!.name, answer: 'fail' },
      { t: 'api', dt: 2, listed: [] }, // the reader's grace runs out while its name fails: suspended
      { t: 'connect', target: ALPHA, released: false },
    ],
    {},
    { removalGraceMs: 30_000, reuseAfterMs: 0, redisFrom: 6379, pair: false },
  );
});
