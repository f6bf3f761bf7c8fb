// The events of a sequence, as plain data (a failing sequence prints as JSON
// and replays exactly), and their generators.

import fc from 'fast-check';
import { NAMES, POOL, SOURCES, UNIVERSE, type DnsAnswer, type KernelFault, type Settings, type Setup } from './world.js';

/** How far the clock moves before a pass: not at all, a second, a removal grace, a reuseAfter. */
export type Tick = 0 | 1 | 2 | 3;

export type Step =
  /** The API lists these targets (indexes into UNIVERSE). */
  | { t: 'api'; dt: Tick; listed: number[] }
  /** The API fails: membership is held as it was. */
  | { t: 'api-down'; dt: Tick }
  /** A name answers differently (a failover, several addresses, a failure, AAAA only). */
  | { t: 'dns'; dt: Tick; name: number; answer: DnsAnswer }
  /** A target's in-transit encryption flips (the API says so). */
  | { t: 'tls'; dt: Tick; target: number }
  /** SIGHUP with another forward section: mode and pool, allowedSources, plaintext. */
  | { t: 'config'; dt: Tick; settings: Settings }
  /** Time passes. */
  | { t: 'tick'; dt: Tick }
  /** Every client opens a connection to a target's listener, the one it has or one it released (no pass). */
  | { t: 'connect'; target: number; released: boolean }
  /** The next kernel write on a host fails or the process dies around it. */
  | { t: 'fault'; host: number; fault: KernelFault }
  /** The daemon on a host restarts, its port map kept or lost (rebuilt from the kernel). */
  | { t: 'restart'; host: number; loseMap: boolean }
  /** HA: the lease moves to the other instance. */
  | { t: 'hand-over' };

const tick = fc.constantFrom<Tick>(0, 1, 1, 1, 2, 3);
const answer: fc.Arbitrary<DnsAnswer> = fc.oneof(
  { weight: 6, arbitrary: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }).map((ips) => ({ ips })) },
  { weight: 2, arbitrary: fc.constant<DnsAnswer>('fail') },
  { weight: 1, arbitrary: fc.constant<DnsAnswer>('ipv6') },
);
const settings: fc.Arbitrary<Settings> = fc.record({
  pool: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: POOL.length - 1 }), { minLength: 1, maxLength: POOL.length }), { nil: null, freq: 3 }),
  sources: fc.uniqueArray(fc.integer({ min: 0, max: SOURCES.length - 1 }), { minLength: 1, maxLength: SOURCES.length }),
  plaintext: fc.constantFrom('allow', 'warn', 'refuse'),
});

export function stepArb(setup: Setup): fc.Arbitrary<Step> {
  const hosts = setup.pair ? 2 : 1;
  const host = fc.integer({ min: 0, max: hosts - 1 });
  const steps: fc.WeightedArbitrary<Step>[] = [
    { weight: 6, arbitrary: fc.record({ t: fc.constant('api' as const), dt: tick, listed: fc.subarray(UNIVERSE.map((_, i) => i)) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('api-down' as const), dt: tick }) },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('dns' as const), dt: tick, name: fc.integer({ min: 0, max: NAMES.length - 1 }), answer }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('tls' as const), dt: tick, target: fc.integer({ min: 0, max: UNIVERSE.length - 1 }) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('config' as const), dt: tick, settings }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('tick' as const), dt: tick }) },
    {
      weight: 6,
      arbitrary: fc.record({ t: fc.constant('connect' as const), target: fc.integer({ min: 0, max: UNIVERSE.length - 1 }), released: fc.boolean() }),
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('fault' as const), host, fault: fc.constantFrom<KernelFault>('fail', 'crash-before', 'crash-after') }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('restart' as const), host, loseMap: fc.boolean() }) },
  ];
  if (setup.pair) steps.push({ weight: 2, arbitrary: fc.constant<Step>({ t: 'hand-over' }) });
  return fc.oneof(...steps);
}

export const setupArb: fc.Arbitrary<Setup> = fc.record({
  removalGraceMs: fc.constantFrom(0, 10_000, 30_000),
  reuseAfterMs: fc.constantFrom(0, 20_000, 120_000, 3_600_000),
  // Sometimes right below the top of the port space, so the Redis range runs out.
  redisFrom: fc.constantFrom(6379, 6379, 6379, 65533),
  pair: fc.constantFrom(false, false, false, true), // a quarter of the sequences run an HA pair
});

// size 'max': without it fast-check caps an array near 10 elements whatever maxLength says.
export const sequenceArb = (maxSteps: number): fc.Arbitrary<{ setup: Setup; steps: Step[] }> =>
  setupArb.chain((setup) => fc.record({ setup: fc.constant(setup), steps: fc.array(stepArb(setup), { minLength: 1, maxLength: maxSteps, size: 'max' }) }));
