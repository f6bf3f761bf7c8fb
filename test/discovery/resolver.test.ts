import t from 'tap';
import { LookupSlots, resolveAll, resolveWithin, SystemResolver, type LookupIpv4 } from '../../src/discovery/resolver.js';
import type { Resolver } from '../../src/core/discovery/types.js';

// Each resolver its own slots: a fake lookup that hangs forever would otherwise hold the process's.
// No AAAA records unless a test says otherwise: a failed IPv4 lookup must not ask the real resolver for IPv6.
const resolver = (lookup?: LookupIpv4, timeoutMs = 1000) => new SystemResolver({ timeoutMs, slots: new LookupSlots(2), lookupIpv6: async () => [], ...(lookup ? { lookup } : {}) });
const refuse: LookupIpv4 = async (name) => {
  throw new Error(`no lookup expected for ${name}`);
};

t.test('IPv4 literals resolve to themselves without a lookup', async (t) => {
  t.same(await resolver(refuse).resolve('10.0.1.23'), { ok: true, ip: '10.0.1.23' });
  t.same(await resolver(refuse).resolve('198.51.100.7'), { ok: true, ip: '198.51.100.7' });
});

t.test('literals and answers that must never be targets are refused', async (t) => {
  for (const literal of ['127.0.0.1', '169.254.169.254', '0.0.0.0', '224.0.0.1', '255.255.255.255']) {
    const r = await resolver(refuse).resolve(literal);
    t.equal(r.ok, false, literal);
    t.match(r, { error: /never forwarded to/ });
  }
  // The real system resolver: /etc/hosts maps localhost to loopback.
  const local = await resolver().resolve('localhost');
  t.same(local.ok, false);
  t.match(local, { error: /^localhost resolves to 127\.0\.0\.1 is in 127\.0\.0\.0\/8/ });
  t.match(await resolver(async () => '169.254.169.254').resolve('imds.example.com'), { ok: false, error: /169\.254\.0\.0\/16/ });
  t.match(await resolver(async () => 'not-an-ip').resolve('odd.example.com'), { ok: false, error: /not an IPv4 address/ });
});

t.test('a good answer is passed through', async (t) => {
  t.same(await resolver(async () => '10.0.3.4').resolve('node.example.com'), { ok: true, ip: '10.0.3.4' });
});

t.test('a name that does not resolve is ok:false, not a throw', async (t) => {
  const real = await resolver(undefined, 5000).resolve('no-such-host.invalid');
  t.equal(real.ok, false);
  t.match(real, { error: /cannot resolve no-such-host\.invalid: (ENOTFOUND|EAI_AGAIN|ESERVFAIL)/ });
  const failing = resolver(async () => {
    throw Object.assign(new Error('getaddrinfo EAI_AGAIN x.example.com'), { code: 'EAI_AGAIN' });
  });
  t.same(await failing.resolve('x.example.com'), { ok: false, error: 'cannot resolve x.example.com: EAI_AGAIN', noAnswer: true }, 'EAI_AGAIN: the resolver did not answer');
  const gone = resolver(async () => {
    throw Object.assign(new Error('getaddrinfo ENOTFOUND x.example.com'), { code: 'ENOTFOUND' });
  });
  t.same(await gone.resolve('x.example.com'), { ok: false, error: 'cannot resolve x.example.com: ENOTFOUND' }, 'NXDOMAIN is a verdict, not silence');
});

t.test('a name with AAAA records and no A record is reported as IPv6-only, not as a resolver problem', async (t) => {
  const noA = async (name: string): Promise<string[]> => {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
  const sixOnly = new SystemResolver({ timeoutMs: 1000, lookup: noA, lookupIpv6: async () => ['2600:1f18::5', '2600:1f18::6'] });
  t.same(await sixOnly.resolve('v6.cache.example'), { ok: false, error: 'v6.cache.example has only IPv6 addresses (2600:1f18::5, …); cachenat forwards IPv4 only', ipv6Only: true });
  const emptyA = new SystemResolver({ timeoutMs: 1000, lookup: async () => [], lookupIpv6: async () => ['2600:1f18::5'] });
  t.match(await emptyA.resolve('v6.cache.example'), { ok: false, ipv6Only: true }, 'an empty IPv4 answer too');
  const neither = new SystemResolver({ timeoutMs: 1000, lookup: noA, lookupIpv6: noA });
  t.same(await neither.resolve('gone.cache.example'), { ok: false, error: 'cannot resolve gone.cache.example: ENOTFOUND' }, 'no address at all: the usual failure');
  const asked: string[] = [];
  const flaky = new SystemResolver({
    timeoutMs: 1000,
    lookup: async () => {
      throw Object.assign(new Error('EAI_AGAIN'), { code: 'EAI_AGAIN' });
    },
    lookupIpv6: async (name) => (asked.push(name), ['2600:1f18::5']),
  });
  t.same(await flaky.resolve('x.cache.example'), { ok: false, error: 'cannot resolve x.cache.example: EAI_AGAIN', noAnswer: true }, 'a resolver failure is not taken for IPv6-only (it is silence)');
  t.same(asked, [], 'and AAAA is not asked then');
});

t.test('names that are not DNS names are refused without a lookup', async (t) => {
  for (const name of ['a b.example.com', '-j.example.com', '127.1', '']) {
    t.match(await resolver(refuse).resolve(name), { ok: false, error: /is not a DNS name/ }, JSON.stringify(name));
  }
});

t.test('a lookup that hangs counts as failed after the timeout', async (t) => {
  const started = performance.now();
  const r = await resolver(() => new Promise<string>(() => undefined), 150).resolve('slow.example.com');
  const took = performance.now() - started;
  t.same(r, { ok: false, error: 'no answer for slow.example.com within 150 ms', noAnswer: true });
  t.ok(took >= 140 && took < 2000, `took ${Math.round(took)} ms`);
});

t.test('resolveAll: every distinct name once, bounded concurrency, input order', async (t) => {
  let active = 0;
  let peak = 0;
  const calls: string[] = [];
  const slow: Resolver = {
    async resolve(name) {
      calls.push(name);
      active += 1;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 10 + (name.length % 3) * 5));
      active -= 1;
      return name.startsWith('bad') ? { ok: false, error: 'nope' } : { ok: true, ip: `10.0.0.${name.length}` };
    },
  };
  const names = Array.from({ length: 20 }, (_, i) => `n${i}.example.com`);
  const result = await resolveAll([...names, 'n0.example.com', 'bad.example.com'], slow, 3);
  t.equal(peak, 3);
  t.equal(calls.length, 21);
  t.same([...result.keys()], [...names, 'bad.example.com']);
  t.same(result.get('bad.example.com'), { ok: false, error: 'nope' });
  t.same((await resolveAll([], slow)).size, 0);
});

t.test('resolveAll: a resolver that throws is recorded as a failure', async (t) => {
  const broken: Resolver = {
    async resolve() {
      throw new Error('boom');
    },
  };
  t.same(await resolveAll(['a.example.com'], broken), new Map([['a.example.com', { ok: false, error: 'cannot resolve a.example.com: Error: boom' }]]));
});

t.test('lookups in flight are capped, and a lookup nobody waits for keeps its slot until it really ends', async (t) => {
  const slots = new LookupSlots(2);
  const pending: (() => void)[] = [];
  let started = 0;
  const lookup: LookupIpv4 = (name) =>
    new Promise((resolve) => {
      started++;
      pending.push(() => resolve(`10.0.0.${name.length}`));
    });
  const r = new SystemResolver({ timeoutMs: 100, lookup, slots });
  t.match(await r.resolve('a.example.com'), { ok: false, noAnswer: true, error: 'no answer for a.example.com within 100 ms' });
  t.match(await r.resolve('bb.example.com'), { noAnswer: true });
  t.equal(slots.inFlight, 2, 'both abandoned lookups still hold their slot (getaddrinfo cannot be cancelled)');
  t.same(await r.resolve('ccc.example.com'), { ok: false, error: 'no answer for ccc.example.com within 100 ms (2 earlier lookups still hold the resolver)', noAnswer: true });
  t.equal(started, 2, 'the third lookup never started');
  pending.shift()!();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(slots.inFlight, 1, 'the slot is free once getaddrinfo returns');
  const fourth = r.resolve('dddd.example.com');
  await new Promise((resolve) => setImmediate(resolve));
  pending.pop()!();
  t.same(await fourth, { ok: true, ip: '10.0.0.16' });
});

t.test('resolveWithin: a silent resolver costs the budget, not one timeout per name; the rest are left unasked', async (t) => {
  const slots = new LookupSlots(2);
  const never: LookupIpv4 = () => new Promise<string>(() => undefined);
  const r = new SystemResolver({ timeoutMs: 5000, lookup: never, slots });
  const names = Array.from({ length: 500 }, (_, i) => `n${i}.cache.example`);
  const started = performance.now();
  const { answers, unasked } = await resolveWithin(names, r, { budgetMs: 300 });
  const took = performance.now() - started;
  t.ok(took < 1500, `500 silent names took ${Math.round(took)} ms with a 300 ms budget (load makes it longer, never 500 × 5 s)`);
  t.equal(answers.size + unasked.length, 500, 'every name is answered or left unasked');
  t.ok(unasked.length >= 490, `${unasked.length} names left for the next pass`);
  t.ok([...answers.values()].every((a) => !a.ok && a.noAnswer === true), 'what was asked is silence, not a verdict');
  t.equal(slots.inFlight, 2, 'never more than two lookups in flight');
});
