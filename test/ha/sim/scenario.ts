// One simulated run as data: the pair's settings and every fault, drawn
// from a seed (or written by hand, for a named counterexample). Faults are
// injected far more often than in life, per instance and per service:
// asymmetric partitions (requests dropped, answers dropped, or both), slow
// calls that succeed just before their timeout, calls applied with the
// answer lost, calls lost before they were applied, process pauses at
// whatever await the process is in, suspends (the monotonic clock stops,
// the wall clock jumps), clocks that tick up to 1% apart, handovers.

import { Random } from './scheduler.js';

export type Service = 'dynamodb' | 'ec2';
export type Direction = 'requests' | 'answers' | 'both';

export interface Partition {
  host: number;
  service: Service;
  /** requests: nothing reaches the service; answers: calls are applied but their answers are lost; both. */
  direction: Direction;
  from: number;
  to: number;
}

export interface Freeze {
  host: number;
  from: number;
  ms: number;
  /** A suspend (hibernation, VM suspend): the monotonic clock stands still, the wall clock keeps going. Otherwise a pause (SIGSTOP, GC, a frozen VM) with both clocks running. */
  suspend: boolean;
}

/** Per-call fates, as probabilities, for one host and service. */
export interface CallFaults {
  /** Answered late, before the caller's deadline. */
  slow: number;
  /** A slow call's answer comes at this share of the caller's budget (default [0.3, 0.99]). */
  slowShare?: [number, number];
  /** Applied, answer lost: the caller times out. */
  appliedLost: number;
  /** Lost before it was applied: the caller times out. */
  lost: number;
  /**
   * Applied after the caller gave up, answer lost: the service went on with
   * a request the client had abandoned at its deadline (an SDK abort cannot
   * recall what already left the host), or the host paused between its last
   * check and the bytes leaving. Drawn after the other fates.
   */
  appliedLate?: number;
  /** How long after the caller's deadline a late call is applied (ms; default [0, 1000]). */
  lateMs?: [number, number];
}

export interface Scenario {
  /** Drives every per-call draw (latencies, fates), topology changes and tokens. */
  seed: number;
  leaseMs: number;
  /** Faults stop at `healAt`; the run ends at `durationMs` (liveness is checked then). */
  healAt: number;
  durationMs: number;
  hosts: {
    /** Monotonic clock rate (1 ± 0.01). */
    rate: number;
    /** Wall clock offset from true time (ms). */
    wallSkew: number;
    /** When its daemon starts. */
    startAt: number;
    calls: Record<Service, CallFaults>;
    /** The node's own settings, where a test needs others than the pair's defaults (port mode, one Elastic IP, the same config on both). */
    node?: { fingerprint?: Record<string, string>; listenAddresses?: { address: string; public: string; allocationId?: string }[]; privateIps?: string[] };
  }[];
  partitions: Partition[];
  freezes: Freeze[];
  /** Planned handovers (SIGUSR2) sent to whichever host then says it leads. */
  handovers: number[];
  /** Targets at the start; more come and go every few seconds until healAt. */
  targets: number;
}

const noCallFaults = (): CallFaults => ({ slow: 0, appliedLost: 0, lost: 0 });

/** A scenario drawn from `seed`: the same seed, the same scenario, on every machine. */
export function scenarioFor(seed: number): Scenario {
  const r = new Random(seed);
  const leaseMs = r.pick([3000, 4000, 6000, 10_000]);
  const healAt = r.int(6, 24) * 1000;
  // After the faults: a takeover (a lease and a look), the Elastic IP, and a pass or two to map every target.
  const durationMs = healAt + 2 * leaseMs + 7000;
  const calls = (): Record<Service, CallFaults> => {
    const draw = (): CallFaults => (r.chance(0.5) ? { slow: r.between(0, 0.15), appliedLost: r.between(0, 0.1), lost: r.between(0, 0.1) } : noCallFaults());
    return { dynamodb: draw(), ec2: draw() };
  };
  const hosts = [0, 1].map((i) => ({
    rate: r.chance(0.6) ? 1 + r.between(-0.01, 0.01) : 1,
    wallSkew: r.int(-5000, 5000),
    startAt: i === 0 || r.chance(0.5) ? 0 : r.int(0, 2 * leaseMs),
    calls: calls(),
  }));
  const partitions: Partition[] = [];
  for (let n = r.int(0, 3); n > 0; n--) {
    const from = r.int(0, healAt - 1000);
    partitions.push({
      host: r.int(0, 1),
      service: r.chance(0.7) ? 'dynamodb' : 'ec2',
      direction: r.pick(['requests', 'answers', 'both'] as const),
      from,
      to: Math.min(healAt, from + r.int(500, 3 * leaseMs)),
    });
  }
  const freezes: Freeze[] = [];
  for (let n = r.chance(0.5) ? r.int(1, 2) : 0; n > 0; n--) {
    const from = r.int(0, healAt - 1000);
    freezes.push({ host: r.int(0, 1), from, ms: Math.min(healAt - from, r.int(100, 3 * leaseMs)), suspend: r.chance(0.4) });
  }
  const handovers = r.chance(0.3) ? [r.int(leaseMs, healAt - 1000)] : [];
  return { seed, leaseMs, healAt, durationMs, hosts, partitions, freezes, handovers, targets: r.int(0, 6) };
}

/** The share of a lease by which `withLateCalls` applies a call after its caller gave up, at most. */
export const LATE_SHARE = 0.03;

/**
 * `scenario` with calls applied after their caller gave up, by up to
 * `maxShare` of a lease, on about half of the host-services (drawn from the
 * seed apart from everything else, so the rest of the scenario is the
 * seed's own). The lease is 3 or 4 s: there an association's deadline is the
 * end of the hold itself (EC2_TIMEOUT_MS is longer), so a late one lands
 * closest to a takeover. docs/design/ha.md ("Timing") says why a few
 * percent of a lease is absorbed: the standby takes over a whole lease after
 * its first sight of the last write, the hold lasts 90% of one.
 */
export function withLateCalls(scenario: Scenario, maxShare = LATE_SHARE): Scenario {
  const r = new Random(scenario.seed ^ 0x1a7e);
  const leaseMs = r.pick([3000, 4000]);
  const hosts = scenario.hosts.map((h) => ({
    ...h,
    calls: Object.fromEntries(
      (['dynamodb', 'ec2'] as const).map((service) => [service, r.chance(0.5) ? { ...h.calls[service], appliedLate: r.between(0, 1), lateMs: [0, maxShare * leaseMs] as [number, number] } : h.calls[service]]),
    ) as Record<Service, CallFaults>,
  }));
  return { ...scenario, leaseMs, durationMs: scenario.healAt + 2 * leaseMs + 7000, hosts };
}
