// The simulated world of one HA pair: two hosts, each with its own clocks
// and its own real HA node (src/ha/), talking through fake SDK clients to a
// DynamoDB model and an EC2 model, on one virtual clock. Every call can be
// slow, lost before it is applied, applied with its answer lost, or (opt-in,
// `appliedLate`) applied after its caller gave up; links can be cut one way
// or both per host and per service; a host can pause or suspend at whatever
// await for a timer or an answer it is in (never between two statements
// with no such await between them, e.g. a hold check and the SDK send: a
// late-applied call stands for that pause). After every event the invariants are
// checked; the first broken one ends the run with its story.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from '../../../src/log/logger.js';
import type { Topology, DiscoveredTarget, Resolution } from '../../../src/core/model.js';
import { emptyPortState, type PortState } from '../../../src/core/ports/port-state.js';
import { planFollower, planForwards, type ForwardPolicy } from '../../../src/core/planner/plan-forwards.js';
import { haCheck, OK, STATE_NAMES } from '../../../src/core/health/evaluate.js';
import type { HaStatus } from '../../../src/core/ha/ha-status.js';
import { DynamoModel, type AppliedWrite, type Item } from './dynamo-model.js';
import { Ec2Model, type AppliedAssociation } from './ec2-model.js';
import { Random, Scheduler } from './scheduler.js';
import type { Scenario, Service } from './scenario.js';
import { buildSimNode, decodeMap, type SimNode } from './node.js';

export const GROUP = 'sim';
export const TABLE = 'cachenat';
export const ALLOCATION_ID = 'eipalloc-0000000000000e1f0';
const EPOCH = Date.parse('2026-11-30T00:00:00Z');
/** Each host runs a reconcile pass this often (dns.interval's default). */
const PASS_EVERY_MS = 5000;

export class InvariantBroken extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
    readonly at: number,
  ) {
    super(`${invariant} at t=${at} ms: ${detail}`);
  }
}

export interface LogLine {
  at: number;
  host: number;
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** A Logger that keeps the lines in the world's story, stamped with virtual time. */
function storyLogger(world: World, host: number): Logger {
  const log =
    (level: string) =>
    (a: unknown, b?: unknown): void => {
      const [fields, msg] = typeof a === 'string' ? [undefined, a] : [a as Record<string, unknown>, String(b ?? '')];
      world.story.push({ at: world.sched.now, host, level, msg, ...(fields ? { fields } : {}) });
    };
  const logger = { trace: () => {}, debug: () => {}, info: log('info'), warn: log('warn'), error: log('error'), fatal: log('fatal'), child: () => logger, level: 'info' };
  return logger as unknown as Logger;
}

export interface Identity {
  instanceId: string;
  networkInterfaceId: string;
  privateIp: string;
  privateIps: string[];
}

/** One instance: its clocks (which may tick at another rate, stop while suspended, or be set off), and whether its process runs. */
export class Host {
  readonly identity: Identity;
  readonly #monoBase: number;
  #suspendedMs = 0;
  #suspendedSince: number | undefined;
  #frozenUntil = -1;
  #pending: (() => void)[] = [];
  node: SimNode | undefined;
  /** When its daemon stopped (after a handover test, never restarted). */
  readonly logger: Logger;
  /** The last time (virtual) this host was frozen: its health is not judged for a lease after. */
  lastFrozenAt = -Infinity;

  constructor(
    readonly world: World,
    readonly index: number,
    readonly rate: number,
    readonly wallSkew: number,
  ) {
    const n = index + 1;
    const extra = world.scenario.hosts[index]?.node?.privateIps ?? [];
    this.identity = { instanceId: `i-0${String(n).repeat(16)}`, networkInterfaceId: `eni-0${String(n).repeat(16)}`, privateIp: `10.0.${n}.10`, privateIps: [`10.0.${n}.10`, ...extra] };
    this.#monoBase = 1_000_000 * n;
    this.logger = storyLogger(world, index);
  }

  get #now(): number {
    return this.world.sched.now;
  }

  /** This host's CLOCK_MONOTONIC: its own rate, standing still while suspended. */
  monotonic(): number {
    const suspended = this.#suspendedMs + (this.#suspendedSince === undefined ? 0 : this.#now - this.#suspendedSince);
    return this.#monoBase + this.rate * (this.#now - suspended);
  }

  /** This host's wall clock: set off by its skew, running through suspends. */
  wall(): number {
    return Math.floor(EPOCH + this.wallSkew + this.#now);
  }

  /** The virtual time at which the monotonic clock will read `mono`, if nothing suspends it before. */
  globalAt(mono: number): number {
    const from = this.#suspendedSince === undefined ? this.#now : Math.max(this.#now, this.#frozenUntil);
    return from + Math.max(0, mono - this.monotonic()) / this.rate;
  }

  get frozen(): boolean {
    return this.#now < this.#frozenUntil;
  }

  /** Runs `fn` in this host's process: now, or when it thaws. */
  deliver(fn: () => void): void {
    if (this.frozen) this.#pending.push(fn);
    else fn();
  }

  /** Runs `fn` in this host's process once its monotonic clock reads `mono` (a timer). Returns a function that cancels it. */
  wakeAt(mono: number, fn: () => void): () => void {
    let cancelled = false;
    let cancelEvent = (): void => {};
    const fire = (): void => {
      if (cancelled) return;
      if (this.frozen) return void this.#pending.push(fire);
      if (this.monotonic() < mono) return void (cancelEvent = this.world.sched.at(this.globalAt(mono), fire));
      fn();
    };
    cancelEvent = this.world.sched.at(this.globalAt(mono), fire);
    return () => {
      cancelled = true;
      cancelEvent();
    };
  }

  /** An abortable sleep on this host's monotonic clock (the daemon's `sleep`). */
  sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const abort = (): void => resolve();
      signal.addEventListener('abort', abort, { once: true });
      this.wakeAt(this.monotonic() + ms, () => {
        signal.removeEventListener('abort', abort);
        resolve();
      });
    });

  /**
   * An AbortSignal that fires when this host's monotonic clock reads `mono`.
   * Registered with the world, which arms its timer only while a call uses
   * it (an AbortSignal.timeout nobody listens to changes nothing), so a call
   * that is answered costs no extra event.
   */
  deadline(mono: number): AbortSignal {
    const controller = new AbortController();
    this.world.deadlines.set(controller.signal, { host: this, mono, at: this.globalAt(mono), controller, inFlight: 0 });
    return controller.signal;
  }

  /** A process pause (both clocks run) or a suspend (the monotonic clock stops) for `ms`. */
  freeze(ms: number, suspend: boolean): void {
    const until = this.#now + ms;
    if (until <= this.#frozenUntil) return;
    this.#frozenUntil = until;
    this.lastFrozenAt = until;
    if (suspend && this.#suspendedSince === undefined) this.#suspendedSince = this.#now;
    this.world.sched.at(until, () => this.#thaw());
  }

  #thaw(): void {
    if (this.frozen) return;
    if (this.#suspendedSince !== undefined) {
      this.#suspendedMs += this.#now - this.#suspendedSince;
      this.#suspendedSince = undefined;
    }
    const pending = this.#pending;
    this.#pending = [];
    for (const fn of pending) this.world.sched.at(this.#now, () => this.deliver(fn));
  }
}

/** A call deadline (Host.deadline), its timer armed while calls use it. */
interface Deadline {
  host: Host;
  mono: number;
  /** Virtual time it fires at, as reckoned when it was made (what the services see as the caller's deadline). */
  at: number;
  controller: AbortController;
  inFlight: number;
  disarm?: () => void;
}

const TIMED_OUT = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });

/** The SDK's error for a call the caller gave up on. */
const gaveUp = (name: string): Error => Object.assign(new Error(`${name}: Request aborted (deadline)`), { name: 'TimeoutError' });

export interface RunResult {
  events: number;
  virtualMs: number;
  moves: number;
  terms: number;
  mapWrites: number;
}

export class World {
  readonly sched = new Scheduler();
  readonly rng: Random;
  readonly #calls: Random;
  readonly dynamo = new DynamoModel(TABLE);
  readonly ec2: Ec2Model;
  readonly hosts: Host[];
  readonly deadlines = new WeakMap<AbortSignal, Deadline>();
  readonly story: LogLine[] = [];
  readonly #stop = new AbortController();
  #caller: Host | undefined;
  #targets: DiscoveredTarget[] = [];
  #nextTarget = 0;
  #lastMap: { term: number; state: PortState } | undefined;
  /** Chunks decoded so far (they never change), for the map invariants. */
  readonly #chunks = new Map<string, PortState>();
  #movesByTerm = new Map<string, number>();
  #moves = 0;
  #mapWrites = 0;
  #terms = new Set<number>();
  /** The last time (virtual) each host gave up on a call that got no answer. */
  #trouble: number[] = [];
  /** Since when (virtual) each host has been unable to reach DynamoDB, continuously. */
  #cutOffSince: (number | undefined)[] = [];

  constructor(readonly scenario: Scenario) {
    this.rng = new Random(scenario.seed);
    this.#calls = this.rng.fork();
    this.hosts = scenario.hosts.map((h, i) => new Host(this, i, h.rate, h.wallSkew));
    const listed = scenario.hosts.flatMap((h) => h.node?.listenAddresses ?? []).flatMap((l) => (l.allocationId === undefined ? [] : [{ allocationId: l.allocationId, publicIp: l.public }]));
    const addresses = [{ allocationId: ALLOCATION_ID, publicIp: '203.0.113.10' }, ...listed.filter((a, i) => listed.findIndex((b) => b.allocationId === a.allocationId) === i)];
    this.ec2 = new Ec2Model(addresses, this.hosts.map((h) => ({ networkInterfaceId: h.identity.networkInterfaceId, instanceId: h.identity.instanceId, privateIps: h.identity.privateIps })));
    this.dynamo.onWrite = (write) => this.#onDynamoWrite(write);
    this.ec2.onAssociate = (applied) => this.#onAssociate(applied);
    for (let i = 0; i < scenario.targets; i++) this.#addTarget();
  }

  get leaseMs(): number {
    return this.scenario.leaseMs;
  }

  token = (): string => `t${Math.floor(this.rng.next() * 2 ** 48).toString(16).padStart(12, '0')}`;

  // ── the services ─────────────────────────────────────────────────────────

  dynamoClient(host: Host, timeoutMs: number): DynamoDBClient {
    return { send: (command: { input: unknown }, options?: { abortSignal?: AbortSignal }) => this.#call(host, 'dynamodb', command, options, timeoutMs), destroy() {} } as unknown as DynamoDBClient;
  }

  ec2Client(host: Host, timeoutMs: number): EC2Client {
    return { send: (command: { input: unknown }, options?: { abortSignal?: AbortSignal }) => this.#call(host, 'ec2', command, options, timeoutMs), destroy() {} } as unknown as EC2Client;
  }

  #partitioned(host: Host, service: Service, side: 'requests' | 'answers', at: number): boolean {
    if (at >= this.scenario.healAt) return false;
    return this.scenario.partitions.some((p) => p.host === host.index && p.service === service && (p.direction === side || p.direction === 'both') && at >= p.from && at < p.to);
  }

  #call(host: Host, service: Service, command: { input: unknown }, options: { abortSignal?: AbortSignal } | undefined, timeoutMs: number): Promise<unknown> {
    const name = command.constructor.name;
    // The model keeps its own copies of what it stores and hands out: nothing here is shared with the caller's objects.
    const input = command.input;
    const sentAt = this.sched.now;
    const signal = options?.abortSignal;
    const registered = signal === undefined ? undefined : this.deadlines.get(signal);
    const deadline = registered?.at ?? host.globalAt(host.monotonic() + timeoutMs);
    if (service === 'ec2' && name === 'AssociateAddressCommand') this.#onAssociateSent(host);
    // The DynamoDB model answers every read from the latest write: true only of a strongly consistent read.
    if (service === 'dynamodb' && name === 'GetItemCommand' && (input as { ConsistentRead?: boolean }).ConsistentRead !== true) {
      this.#broken('every DynamoDB read is strongly consistent', `${host.identity.instanceId} sent a GetItem without ConsistentRead (the model would answer it fresher than DynamoDB does)`);
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
      };
      if (signal !== undefined) {
        if (signal.aborted || (registered !== undefined && host.monotonic() >= registered.mono)) return reject(gaveUp(name));
        const abort = (): void => settle(() => reject(gaveUp(name)));
        signal.addEventListener('abort', abort, { once: true });
        if (registered !== undefined && registered.inFlight++ === 0) registered.disarm = host.wakeAt(registered.mono, () => registered.controller.abort(TIMED_OUT));
        const done = settle;
        settle = (fn) => {
          signal.removeEventListener('abort', abort);
          if (registered !== undefined && --registered.inFlight === 0) registered.disarm?.();
          done(fn);
        };
      } else {
        const disarm = host.wakeAt(host.monotonic() + timeoutMs, () => settle(() => reject(gaveUp(name))));
        const done = settle;
        settle = (fn) => {
          disarm();
          done(fn);
        };
      }
      // A call that will get no answer: its caller is in trouble until its deadline (a slow call that is answered is not trouble).
      const trouble = (): void => void (this.#trouble[host.index] = Math.max(this.#trouble[host.index] ?? -Infinity, deadline));
      if (this.#partitioned(host, service, 'requests', sentAt)) return trouble();
      const faults = sentAt >= this.scenario.healAt ? { slow: 0, appliedLost: 0, lost: 0 } : this.scenario.hosts[host.index]!.calls[service];
      const r = this.#calls;
      const u = r.next();
      const span = Math.max(1, deadline - sentAt);
      let appliedAt: number;
      let answerAt: number | undefined;
      if (u < faults.lost) return trouble();
      if (u < faults.lost + faults.appliedLost) {
        trouble();
        appliedAt = sentAt + r.between(0, 0.98) * span;
      } else if (u < faults.lost + faults.appliedLost + faults.slow) {
        const [lo, hi] = faults.slowShare ?? [0.3, 0.99];
        answerAt = sentAt + r.between(lo, hi) * span;
        appliedAt = sentAt + r.between(0.5, 1) * (answerAt - sentAt);
      } else if (u < faults.lost + faults.appliedLost + faults.slow + (faults.appliedLate ?? 0)) {
        trouble();
        const [lo, hi] = faults.lateMs ?? [0, 1000];
        appliedAt = deadline + r.between(lo, hi);
      } else {
        // Applied and answered in one go (one event): the answer's own latency adds nothing the slow fate does not cover.
        appliedAt = Math.min(sentAt + r.between(1, 30), sentAt + 0.98 * span);
        answerAt = appliedAt;
      }
      this.sched.at(appliedAt, () => {
        let outcome: { ok: unknown } | { err: unknown };
        this.#caller = host;
        try {
          outcome = { ok: service === 'dynamodb' ? this.dynamo.apply(name, input) : this.ec2.apply(name, input) };
        } catch (err) {
          outcome = { err };
        } finally {
          this.#caller = undefined;
        }
        if (answerAt === undefined) return;
        const at = answerAt;
        const answer = (): void => {
          if (this.#partitioned(host, service, 'answers', at)) return trouble();
          host.deliver(() => settle(() => ('ok' in outcome ? resolve(outcome.ok) : reject(outcome.err))));
        };
        if (at === appliedAt) answer();
        else this.sched.at(at, answer);
      });
    });
  }

  // ── the invariants ───────────────────────────────────────────────────────

  /** Invariants not checked in this run (exploring what else breaks once one is known to). */
  readonly ignored = new Set<string>();

  /** The first invariant broken: kept here too, since one broken inside a call (at its send) may be caught by the code that made the call. */
  #violation: InvariantBroken | undefined;

  #broken(invariant: string, detail: string): void {
    if (this.ignored.has(invariant)) return;
    const broken = new InvariantBroken(invariant, detail, this.sched.now);
    this.#violation ??= broken;
    throw broken;
  }

  /** The lease item as the table has it now. */
  lease(): { holder: string | null; term: number; version: string } | undefined {
    const item = this.dynamo.items.get(`${GROUP}#lease`);
    if (!item) return undefined;
    return { holder: item.holder?.S ?? null, term: Number(item.term?.N), version: item.version?.S ?? '' };
  }

  #onAssociateSent(host: Host): void {
    if (!host.node?.confirmed()) this.#broken('AssociateAddress only under a confirmed hold', `${host.identity.instanceId} sent AssociateAddress without a confirmed hold (role ${host.node?.role()})`);
  }

  #onAssociate(applied: AppliedAssociation): void {
    const caller = this.#caller;
    const lease = this.lease();
    if (!caller || lease?.holder !== caller.identity.instanceId) {
      this.#broken('AssociateAddress only under a confirmed hold', `an association to ${applied.to.instanceId} was applied while the lease is held by ${lease?.holder ?? 'nobody'} (term ${lease?.term ?? '-'})`);
    }
    if (!applied.moved || !lease) return;
    this.#moves++;
    const key = `${applied.allocationId}@${lease.term}`;
    const moves = (this.#movesByTerm.get(key) ?? 0) + 1;
    this.#movesByTerm.set(key, moves);
    if (moves > 1) this.#broken('the address moves at most once per term', `${applied.allocationId}: move ${moves} in term ${lease.term}, to ${applied.to.instanceId}`);
  }

  #onDynamoWrite(write: AppliedWrite): void {
    if (write.pk === `${GROUP}#lease` && write.after?.term?.N !== undefined) {
      this.#terms.add(Number(write.after.term.N));
      // A takeover of a lease its holder did not give up: the holder must have been in trouble lately (a call unanswered, a pause), never merely slow.
      const from = write.before?.holder?.S;
      const to = write.after.holder?.S;
      const holder = this.hosts.find((h) => h.identity.instanceId === from);
      if (holder && to !== undefined && to !== from) {
        const lastTrouble = Math.max(this.#trouble[holder.index] ?? -Infinity, holder.lastFrozenAt);
        if (this.sched.now - lastTrouble > 2 * this.leaseMs) this.#broken('slow calls alone never cause a takeover', `${to} took the lease from ${from}, every call of which in the last two leases was answered (last trouble at t=${lastTrouble})`);
      }
    }
    const map = decodeMap(GROUP, this.dynamo.items, write, this.#chunks);
    if (map === undefined) return;
    this.#mapWrites++;
    const lease = this.lease();
    if (lease !== undefined && map.term < lease.term) this.#broken('no map write from a stale term', `a map of term ${map.term} was accepted while the lease is in term ${lease.term}`);
    const before = this.#lastMap;
    this.#lastMap = map;
    if (!before) return;
    const was = new Map(before.state.entries.map((e) => [e.key, e]));
    for (const entry of map.state.entries) {
      const old = was.get(entry.key);
      if (old && (old.listenPort !== entry.listenPort || old.listenAddress !== entry.listenAddress)) {
        this.#broken('a present target keeps its port', `${entry.key} moved from ${old.listenPort} to ${entry.listenPort} (map term ${before.term} → ${map.term})`);
      }
    }
  }

  /** After every event: who says what, against what the table says. */
  #check = (): void => {
    if (this.#violation) throw this.#violation;
    const now = this.sched.now;
    const lease = this.lease();
    const confirmed = this.hosts.filter((h) => h.node?.confirmed());
    if (confirmed.length > 1) this.#broken('never two confirmed leaders', `${confirmed.map((h) => h.identity.instanceId).join(' and ')} both hold a confirmed lease`);
    for (const host of this.hosts) {
      const node = host.node;
      if (!node) continue;
      const role = node.role();
      if (role === 'leader' && !node.confirmed()) this.#broken('only a confirmed leader says leader', `${host.identity.instanceId} says leader without a confirmed hold`);
      // What status, health and cachenat_ha_elastic_ip_held say: an address reported held points at this instance.
      if (role === 'leader' || role === 'leader-unconfirmed') {
        for (const e of node.status().elasticIps) {
          const at = this.ec2.locations.get(e.allocationId);
          if (e.state === 'held' && at?.instanceId !== host.identity.instanceId) {
            this.#broken('an Elastic IP reported held points at its reporter', `${host.identity.instanceId} (${role}) reports ${e.allocationId} held, EC2 has it on ${at?.instanceId ?? 'nothing'} (the table names ${lease?.holder ?? 'nobody'}, term ${lease?.term ?? '-'})`);
          }
        }
      }
      if (node.confirmed() && lease?.holder !== host.identity.instanceId) {
        this.#broken('never two confirmed leaders', `${host.identity.instanceId} counts its hold as confirmed but the table names ${lease?.holder ?? 'nobody'} (term ${lease?.term ?? '-'})`);
      }
      // Cut off from DynamoDB for a whole lease: its health must not say OK.
      const cut = this.#partitioned(host, 'dynamodb', 'requests', now) || this.#partitioned(host, 'dynamodb', 'answers', now);
      if (!cut) this.#cutOffSince[host.index] = undefined;
      else this.#cutOffSince[host.index] ??= now;
      const since = this.#cutOffSince[host.index];
      if (since !== undefined && now - since >= this.leaseMs && now - host.lastFrozenAt >= this.leaseMs && role !== 'starting') {
        const health = haCheck(host.wall(), node.status());
        if (health.state === OK) this.#broken('a cut-off instance is not OK within one lease', `${host.identity.instanceId} cut off from DynamoDB since t=${since} says ${STATE_NAMES[health.state]}: ${health.message}`);
      }
    }
  };

  /** Once the faults have healed and settled: one leader, the address on it, every target in its map. */
  #checkLiveness(): void {
    const leaders = this.hosts.filter((h) => h.node?.role() === 'leader');
    if (leaders.length !== 1) this.#broken('one leader after the faults heal', `${leaders.length} leaders ${this.hosts.map((h) => `${h.identity.instanceId}: ${h.node?.role()}`).join(', ')}`);
    const leader = leaders[0];
    if (!leader) return;
    const at = this.ec2.locations.get(ALLOCATION_ID);
    if (at?.instanceId !== leader.identity.instanceId) this.#broken('the address on the leader after the faults heal', `the address is on ${at?.instanceId ?? 'nothing'}, the leader is ${leader.identity.instanceId}`);
    const mapped = new Set(this.#lastMap?.state.entries.map((e) => e.key));
    const missing = this.#targets.filter((t) => !mapped.has(t.key));
    if (missing.length > 0) this.#broken('every target mapped after the faults heal', `${missing.map((t) => t.key).join(', ')} not in the map`);
    for (const host of this.hosts) {
      if (host !== leader && host.node?.role() !== 'standby') this.#broken('one leader after the faults heal', `${host.identity.instanceId} is ${host.node?.role()}`);
    }
  }

  // ── the pair at work ─────────────────────────────────────────────────────

  #addTarget(): void {
    const i = this.#nextTarget++;
    this.#targets.push({ key: `node/c${i}/0001`, kind: 'node', engine: 'redis', cacheClusterId: `c${i}`, cacheNodeId: '0001', address: `c${i}.sim.cache.example`, targetPort: 6379 });
  }

  topology(): { topology: Topology; resolutions: Map<string, Resolution> } {
    const targets = this.#targets.map((t) => ({ ...t }));
    return { topology: { targets, skipped: [] }, resolutions: new Map(targets.map((t, i) => [t.address, { ok: true, ip: `10.1.0.${(i % 250) + 1}` }])) };
  }

  readonly policy: ForwardPolicy = { ranges: { redis: 6379, memcached: 11211 }, removalGraceMs: 4000, reuseAfterMs: 15_000, staleAddressMs: 4000 };

  /** One reconcile pass's HA part, as src/daemon/reconciler.ts does it. */
  async #pass(host: Host, local: PortState): Promise<PortState> {
    const node = host.node!;
    const access = await node.mapForPass(local);
    const { topology, resolutions } = this.topology();
    const now = host.wall();
    if (access.mode === 'lead') {
      const planned = planForwards(access.state, { topology, resolutions }, this.policy, now).state;
      const outcome = await node.commit(access.base, planned);
      if (outcome === 'written' || outcome === 'unchanged') return planned;
    }
    const followed = planFollower(access.state, resolutions, this.policy, now);
    node.noteFollowed(topology.targets.filter((t) => !followed.state.entries.some((e) => e.key === t.key)).length, followed.misfits);
    return followed.state;
  }

  #start(host: Host): void {
    host.node = buildSimNode(this, host);
    void host.node.run(this.#stop.signal);
    const loop = async (): Promise<void> => {
      let local = emptyPortState();
      while (!this.#stop.signal.aborted) {
        local = await this.#pass(host, local);
        await host.sleep(PASS_EVERY_MS, this.#stop.signal);
      }
    };
    void loop();
  }

  /** Schedules the scenario: starts, freezes, handovers, and (unless `churn` is false) targets coming and going until the faults heal. */
  start(options: { churn?: boolean } = {}): void {
    const s = this.scenario;
    s.hosts.forEach((h, i) => this.sched.at(h.startAt, () => this.#start(this.hosts[i]!)));
    for (const f of s.freezes) this.sched.at(f.from, () => this.hosts[f.host]!.freeze(f.ms, f.suspend));
    for (const at of s.handovers) {
      this.sched.at(at, () => {
        const leader = this.hosts.find((h) => h.node?.role() === 'leader');
        if (leader) leader.deliver(() => void leader.node!.release('handover'));
      });
    }
    if (options.churn === false) return;
    const churn = (): void => {
      if (this.sched.now >= s.healAt) return;
      if (this.rng.chance(0.5) || this.#targets.length === 0) this.#addTarget();
      else this.#targets.splice(this.rng.int(0, this.#targets.length - 1), 1);
      this.sched.after(this.rng.int(2000, 6000), churn);
    };
    this.sched.after(this.rng.int(2000, 6000), churn);
  }

  /** Runs every event up to virtual time `until`, checking the invariants after each. */
  async runUntil(until: number): Promise<void> {
    await this.sched.run(until, this.#check);
    if (this.#violation) throw this.#violation;
  }

  /** Stops both daemons' loops (what is pending is dropped). */
  stop(): void {
    this.#stop.abort();
  }

  get result(): RunResult {
    return { events: this.sched.events, virtualMs: this.sched.now, moves: this.#moves, terms: this.#terms.size, mapWrites: this.#mapWrites };
  }

  /** The whole scenario: faults, then the heal, then the liveness checks. */
  async run(): Promise<RunResult> {
    this.start();
    await this.runUntil(this.scenario.durationMs);
    this.#checkLiveness();
    this.stop();
    return this.result;
  }

  /** Adds `n` targets (a test's own topology change). */
  addTargets(n: number): void {
    for (let i = 0; i < n; i++) this.#addTarget();
  }

  /** The map as the table's last accepted head says. */
  get map(): { term: number; state: PortState } | undefined {
    return this.#lastMap;
  }

  /** The story of the run so far (log lines stamped with virtual time), for a failure's report. */
  storyText(last = 80): string {
    return this.story
      .slice(-last)
      .map((l) => `${l.at.toFixed(1).padStart(9)} ms  host ${l.host}  ${l.level.padEnd(5)} ${l.msg}${l.fields ? ` ${JSON.stringify(l.fields)}` : ''}`)
      .join('\n');
  }
}

export type { Item };
export type { HaStatus };
