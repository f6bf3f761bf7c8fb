// Two HA instances against one store that applies conditional writes
// atomically, under arbitrary interleavings (HARDENING_RUNS cases, default
// 10,000): each instance's beat is split into its separate store operations
// (read the lease or, holding it, renew without reading; read the map, write
// its chunks and head), and the scheduler may
// run one instance for a long time while the other is paused between any two
// of them, so a paused leader wakes with a decision made before it slept.
// The store keeps the items as DynamoDB attributes and evaluates the
// conditions items.ts builds. It may be down, may apply a write and lose the
// answer, or hold a write in flight to land it much later (even after its
// sender restarted). An instance may restart (memory lost) or hand over. Each
// instance's monotonic clock has its own offset and runs up to 4% fast or
// slow. Checked throughout:
//   - at no moment do two instances both hold a confirmed lease;
//   - every accepted map write carries a term its writer acquired, terms never
//     go back, and one term has one writer (a stale writer is always refused);
//   - no accepted map has two targets on one port;
//   - a target keeps its port across writes, whoever the writer;
//   - a freed port goes to no other target within ports.reuseAfter, across instances;
//   - a standby installs exactly the listeners of the map it read.

import t from 'tap';
import fc from 'fast-check';
import type { DiscoveredTarget } from '../../src/core/model.js';
import { planFollower, planForwards, type ForwardPolicy } from '../../src/core/planner/plan-forwards.js';
import { emptyPortState, listenerClash, type PortState } from '../../src/core/ports/port-state.js';
import { parseState, serializeState } from '../../src/core/ports/port-map-codec.js';
import { afterLeaseWrite, afterRelease, beginRelease, decideLease, holdConfirmed, noteTerm, releaseWrite, renewal, renewEveryMs, type Clocks, type LeaseItem, type LeaseMemory, type LeaseWrite, type LeaseWriteOutcome } from '../../src/core/ha/lease.js';
import {
  chunkAttributes,
  chunkKey,
  leaseAttributes,
  leaseKey,
  leaseReleaseCondition,
  leaseWriteCondition,
  mapHeadAttributes,
  mapKey,
  mapWriteCondition,
  planMapWrite,
  readChunkItem,
  readLeaseItem,
  readMapHead,
  type Attributes,
  type Condition,
  type MapItem,
  type MapWritePlan,
} from '../../src/core/ha/items.js';
import { assembleMap } from '../../src/core/ha/map-chunks.js';

const RUNS = Number(process.env.HARDENING_RUNS ?? 10_000);
const SEED = process.env.HARDENING_SEED === undefined ? undefined : Number(process.env.HARDENING_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

const LEASE = 9000;
const IDS = ['i-0aaaaaaaaaaaaaaaa', 'i-0bbbbbbbbbbbbbbbb'] as const;
const WALL_EPOCH = 1_700_000_000_000;

const UNIVERSE: DiscoveredTarget[] = ['alpha', 'bravo', 'carol'].flatMap((cluster) =>
  ['0001', '0002'].map((node): DiscoveredTarget => ({
    key: `node/${cluster}/${node}`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: node, address: `${cluster}-${node}.cache.example`, targetPort: 6379,
  })),
);

interface Op {
  who: 0 | 1;
  /** Global time that passes before this operation: long gaps are pauses of whoever is not picked. */
  dtMs: number;
  kind: 'step' | 'restart' | 'handover';
  /** The store is down for this operation. */
  down: boolean;
  /** A write is applied but its answer lost. */
  lostReply: boolean;
  /** A write stays in flight (its answer lost too), to land at some later operation, or never. */
  delay: boolean;
  /** The oldest write in flight lands before this operation. */
  deliver: boolean;
  /** What the API lists, should this operation plan. */
  listed: number[];
}

const opBody = fc.record({
  dtMs: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 2000 }) }, { weight: 1, arbitrary: fc.integer({ min: 2000, max: 3 * LEASE }) }),
  kind: fc.oneof({ weight: 30, arbitrary: fc.constant('step' as const) }, fc.constant('restart' as const), fc.constant('handover' as const)),
  down: fc.integer({ min: 0, max: 99 }).map((n) => n < 8),
  lostReply: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  delay: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  deliver: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  listed: fc.subarray(UNIVERSE.map((_, i) => i)),
});

/** Runs of operations by one instance while the other is paused wherever it was. */
const schedule: fc.Arbitrary<Op[]> = fc
  .array(fc.record({ who: fc.constantFrom(0 as const, 1 as const), ops: fc.array(opBody, { minLength: 1, maxLength: 16 }) }), { minLength: 1, maxLength: 12 })
  .map((runs) => runs.flatMap(({ who, ops }) => ops.map((o): Op => ({ ...o, who }))));

const GROUP = 'prod-nat';

/**
 * The store: items as DynamoDB attributes, each put applied atomically when
 * its condition (as items.ts builds it) holds. The evaluator knows the forms
 * cachenat writes, and refuses any other.
 */
function holds(condition: Condition, item: Attributes | undefined): boolean {
  const value = (ref: string) => {
    const v = condition.values?.[ref];
    if (!v) throw new Error(`no value ${ref}`);
    return v;
  };
  return condition.expression.split(' AND ').every((conjunct) => conjunct.replace(/^\((.*)\)$/, '$1').split(' OR ').some((term) => {
    const missing = /^attribute_not_exists\((#\w+)\)$/.exec(term);
    if (missing) return item?.[condition.names[missing[1]!]!] === undefined;
    const compare = /^(#\w+) (=|<=) (:\w+)$/.exec(term);
    if (!compare) throw new Error(`condition form not modelled: ${term}`);
    const attr = item?.[condition.names[compare[1]!]!];
    const want = value(compare[3]!);
    if (attr === undefined) return false;
    if (compare[2] === '=') return attr.S !== undefined ? attr.S === want.S : attr.N !== undefined && attr.N === want.N;
    return attr.N !== undefined && want.N !== undefined && Number(attr.N) <= Number(want.N);
  }));
}

type Phase =
  | { at: 'lease-read' }
  | { at: 'lease-write'; write: LeaseWrite }
  | { at: 'map-read' }
  /** plannedAt: the wall time the planner ran with, when the map freed what it freed. */
  | { at: 'map-write'; plan: Extract<MapWritePlan, { kind: 'write' }>; plannedAt: number };

interface Instance {
  id: string;
  /** This instance's monotonic clock reads offset + rate × global time. */
  offset: number;
  rate: number;
  memory: LeaseMemory;
  phase: Phase;
}

interface Stats {
  takeovers: number;
  staleMapWritesRefused: number;
  mapWrites: number;
  stepDowns: number;
  handovers: number;
  installs: number;
  delayedLandings: number;
}

function simulate(ops: readonly Op[], clocks: [{ offset: number; rate: number }, { offset: number; rate: number }], policy: ForwardPolicy, stats: Stats): void {
  const instances: Instance[] = IDS.map((id, i) => ({ id, ...clocks[i]!, memory: {}, phase: { at: 'lease-read' } }));
  const clockOf = (i: Instance) => i.offset + i.rate * now;
  /** Writes sent but not landed yet; a restart does not recall them. */
  const inFlight: (() => void)[] = [];
  const table = new Map<string, Attributes>();
  const put = (item: Attributes, condition: Condition): boolean => {
    const pk = item.pk!.S!;
    if (!holds(condition, table.get(pk))) return false;
    table.set(pk, item);
    return true;
  };
  const readLease = (): LeaseItem | null => {
    const read = readLeaseItem(GROUP, table.get(leaseKey(GROUP)));
    if (read.kind === 'invalid') throw new Error(read.problem);
    return read.kind === 'ok' ? read.item : null;
  };
  const readMap = (): MapItem | null => {
    const read = readMapHead(GROUP, table.get(mapKey(GROUP)));
    if (read.kind === 'invalid') throw new Error(read.problem);
    if (read.kind !== 'ok') return null;
    const parts = read.item.chunks.map((c) => {
      const chunk = readChunkItem(GROUP, read.item.term, c, table.get(chunkKey(GROUP, read.item.term, c)));
      if (chunk.kind !== 'ok') throw new Error(`the head lists chunk ${c.id}: ${chunk.kind === 'invalid' ? chunk.problem : 'gone'}`);
      return chunk.state;
    });
    const map = assembleMap(parts);
    if ('problem' in map) throw new Error(map.problem);
    return { ...read.item, state: map.state };
  };
  let now = 0;
  let tokens = 0;
  const token = () => `tok-${String(++tokens).padStart(8, '0')}`;
  const termHolder = new Map<number, string>();
  const accepted: MapItem[] = [];
  const portFreed = new Map<number, { key: string; at: number }>();
  const lastPortOf = new Map<string, number>();

  const acceptMap = (item: MapItem, wall: number) => {
    if (termHolder.get(item.term) !== item.writer) throw new Error(`map written under term ${item.term} by ${item.writer}, which never acquired it (holder ${termHolder.get(item.term)})`);
    const previous = accepted.at(-1);
    if (previous && item.term < previous.term) throw new Error(`term ${item.term} wrote after term ${previous.term}`);
    const clash = listenerClash(item.state.entries);
    if (clash) throw new Error(`${clash[0].key} and ${clash[1].key} share port ${clash[1].listenPort}`);
    if (parseState(serializeState(item.state)).status !== 'ok') throw new Error('an accepted map does not validate');
    const before = new Map((previous?.state.entries ?? []).map((e) => [e.key, e.listenPort]));
    for (const e of item.state.entries) {
      const had = before.get(e.key);
      if (had !== undefined && had !== e.listenPort) throw new Error(`${e.key} moved from ${had} to ${e.listenPort} (term ${previous?.term} → ${item.term})`);
      if (had === undefined) {
        const freed = portFreed.get(e.listenPort);
        if (freed && freed.key !== e.key && wall - freed.at < policy.reuseAfterMs) throw new Error(`port ${e.listenPort} freed by ${freed.key} ${wall - freed.at} ms ago went to ${e.key}`);
        const last = lastPortOf.get(e.key);
        const stillQuarantined = last !== undefined && portFreed.get(last)?.key === e.key && wall - portFreed.get(last)!.at < policy.reuseAfterMs;
        if (stillQuarantined && last !== e.listenPort) throw new Error(`${e.key} came back within reuseAfter to ${e.listenPort}, not its own ${last}`);
      }
      lastPortOf.set(e.key, e.listenPort);
    }
    const now_ = new Set(item.state.entries.map((e) => e.key));
    for (const [key, port] of before) if (!now_.has(key)) portFreed.set(port, { key, at: wall });
    accepted.push(item);
    stats.mapWrites++;
  };

  const landLease = (inst: Instance, write: LeaseWrite): boolean => {
    const before = readLease();
    if (!put(leaseAttributes(GROUP, write.item), leaseWriteCondition(write.expect))) return false;
    if (write.kind === 'acquire') {
      if (before && write.item.term <= before.term) throw new Error(`acquire of term ${write.item.term} over term ${before.term}`);
      if (termHolder.has(write.item.term)) throw new Error(`term ${write.item.term} acquired twice`);
      termHolder.set(write.item.term, inst.id);
      if (write.reason === 'expired') stats.takeovers++;
    } else if (before?.term !== write.item.term || before.holder !== inst.id) throw new Error('a renewal changed the term or the holder');
    return true;
  };
  const landMap = (plan: Extract<MapWritePlan, { kind: 'write' }>, plannedAt: number): void => {
    const current = readMap();
    for (const p of plan.puts) table.set(chunkKey(GROUP, plan.head.term, p), chunkAttributes(GROUP, plan.head.term, p, p.data));
    if (put(mapHeadAttributes(GROUP, plan.head), mapWriteCondition(plan.expect, plan.head.term))) {
      for (const d of plan.drops) table.delete(chunkKey(GROUP, d.term, d));
      acceptMap({ ...plan.head, state: plan.state }, plannedAt);
    } else if (current !== null && current.term > plan.head.term) stats.staleMapWritesRefused++;
  };

  for (const o of ops) {
    now += o.dtMs;
    if (o.deliver && inFlight.length > 0) {
      inFlight.shift()!();
      stats.delayedLandings++;
    }
    const inst = instances[o.who]!;
    const mono = clockOf(inst);
    const clocks: Clocks = { monotonic: mono, wall: WALL_EPOCH + now };

    if (o.kind === 'restart') {
      inst.memory = {};
      inst.phase = { at: 'lease-read' };
    } else if (o.kind === 'handover') {
      const releasing = beginRelease(inst.memory);
      const release = releasing && releaseWrite(releasing, LEASE, token());
      if (releasing && release) {
        const landed = !o.down && put(leaseAttributes(GROUP, release.item), leaseReleaseCondition(inst.id, release.expect));
        if (landed) stats.handovers++;
        const outcome: LeaseWriteOutcome = o.down || o.lostReply ? { kind: 'unavailable', error: 'no answer' } : landed ? { kind: 'accepted' } : { kind: 'conflict' };
        inst.memory = afterRelease(releasing, outcome, mono, LEASE);
        inst.phase = { at: 'lease-read' };
      }
    } else {
      const phase = inst.phase;
      if (phase.at === 'lease-read' && inst.memory.held) {
        // The holder does not read: it renews a third of a lease after its last accepted write.
        const write = mono - inst.memory.held.sentAt >= renewEveryMs(LEASE) ? renewal(inst.memory, inst.id, LEASE, token()) : undefined;
        inst.phase = write ? { at: 'lease-write', write } : { at: 'map-read' };
      } else if (phase.at === 'lease-read') {
        const lease = o.down ? undefined : readLease();
        const read = lease === undefined ? { kind: 'unavailable' as const, error: 'down' } : lease === null ? { kind: 'absent' as const } : { kind: 'item' as const, item: lease };
        const d = decideLease(inst.memory, read, clocks, { self: inst.id, leaseMs: LEASE }, token());
        if (d.steppedDown) stats.stepDowns++;
        inst.memory = d.memory;
        inst.phase = d.write ? { at: 'lease-write', write: d.write } : { at: 'map-read' };
      } else if (phase.at === 'lease-write') {
        const write = phase.write;
        let outcome: LeaseWriteOutcome;
        if (o.down) outcome = { kind: 'unavailable', error: 'down' };
        else if (o.delay) {
          inFlight.push(() => void landLease(inst, write));
          outcome = { kind: 'unavailable', error: 'no answer yet' };
        } else if (!landLease(inst, write)) outcome = { kind: 'conflict' };
        else outcome = o.lostReply ? { kind: 'unavailable', error: 'answer lost' } : { kind: 'accepted' };
        inst.memory = afterLeaseWrite(inst.memory, write, outcome, clocks);
        if (outcome.kind === 'conflict' && write.kind === 'renew') stats.stepDowns++;
        inst.phase = { at: 'map-read' };
      } else if (phase.at === 'map-read') {
        inst.phase = { at: 'lease-read' };
        if (!o.down) {
          const base = readMap();
          if (base) inst.memory = noteTerm(inst.memory, base.term);
          const held = inst.memory.held;
          if (held && holdConfirmed(inst.memory, clocks, LEASE)) {
            const plan = planForwards(base?.state ?? emptyPortState(), { topology: { targets: o.listed.map((i) => UNIVERSE[i]!), skipped: [] }, resolutions: new Map() }, policy, WALL_EPOCH + now);
            const w = planMapWrite(base, plan.state, held.term, inst.id, token());
            if (w.kind === 'superseded') {
              const { held: _gone, ...rest } = inst.memory;
              inst.memory = rest;
            } else if (w.kind === 'write') inst.phase = { at: 'map-write', plan: w, plannedAt: WALL_EPOCH + now };
          } else if (base) {
            // A standby installs exactly the leader's listeners.
            const follow = planFollower(base.state, new Map(), policy, WALL_EPOCH + now);
            const listeners = (entries: readonly { key: string; listenPort: number }[]) => entries.map((e) => `${e.key}@${e.listenPort}`).sort().join();
            if (listeners(follow.forwards) !== listeners(base.state.entries) || follow.misfits.length > 0) throw new Error('the standby would install other forwards than the map');
            stats.installs++;
          }
        }
      } else {
        inst.phase = { at: 'lease-read' };
        if (o.delay) inFlight.push(() => landMap(phase.plan, phase.plannedAt));
        else if (!o.down) landMap(phase.plan, phase.plannedAt);
      }
    }

    // Never two confirmed holders, each judged on its own clock.
    const confirmed = instances.filter((i) => holdConfirmed(i.memory, { monotonic: clockOf(i), wall: WALL_EPOCH + now }, LEASE));
    if (confirmed.length > 1) throw new Error(`two confirmed holders at ${now}: ${JSON.stringify(confirmed.map((i) => [i.id, i.memory.held]))}`);
  }
}

t.test(`two instances, any interleaving: one confirmed holder, fenced map writes, unique sticky quarantined ports (${RUNS} runs)`, async (t) => {
  let runs = 0;
  const stats: Stats = { takeovers: 0, staleMapWritesRefused: 0, mapWrites: 0, stepDowns: 0, handovers: 0, installs: 0, delayedLandings: 0 };
  const policyArb = fc.record({ removalGraceMs: fc.integer({ min: 0, max: 8000 }), reuseAfterMs: fc.integer({ min: 0, max: 60_000 }) }).map(
    ({ removalGraceMs, reuseAfterMs }): ForwardPolicy => ({ ranges: { redis: 6379, memcached: 11211 }, removalGraceMs, reuseAfterMs, staleAddressMs: 60_000 }),
  );
  // Clocks with any offset, ticking up to 4% faster or slower than global time.
  const clock = fc.record({ offset: fc.integer({ min: -1_000_000_000, max: 1_000_000_000 }), rate: fc.integer({ min: 96, max: 104 }).map((r) => r / 100) });
  fc.assert(
    fc.property(schedule, fc.tuple(clock, clock), policyArb, (ops, clocks, policy) => {
      runs++;
      simulate(ops, clocks, policy, stats);
    }),
    params,
  );
  t.equal(runs, RUNS, `${runs} runs: ${stats.mapWrites} accepted map writes, ${stats.takeovers} takeovers, ${stats.stepDowns} step-downs, ${stats.handovers} handovers, ${stats.staleMapWritesRefused} stale map writes refused, ${stats.installs} standby installs, ${stats.delayedLandings} delayed writes landed`);
  if (RUNS >= 200) {
    t.ok(stats.takeovers > 0 && stats.staleMapWritesRefused > 0 && stats.handovers > 0 && stats.stepDowns > 0 && stats.installs > 0 && stats.delayedLandings > 0, 'the runs reached takeovers, stale writers, handovers and step-downs');
  }
});
