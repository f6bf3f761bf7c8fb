// One instance of an HA pair (docs/design/ha.md): the lease and the shared
// map as the reconciler sees them. The lease runs on a deadline-driven loop
// of its own (a renewal lease/3 after the last accepted one, whatever else
// is slow); the peer heartbeat (peer-heartbeat.ts) and the Elastic IP keeper
// (elastic-ip-keeper.ts) run beside it, each on its own loop. The decisions
// are pure (src/core/ha/); this class performs them against DynamoDB and
// remembers what happened, for the status snapshot.

import { afterLeaseWrite, afterRelease, beginRelease, confirmedUntil, decideLease, initialLeaseMemory, nextLeaseStepAt, noteLeaseRead, noteTerm, releaseWrite, renewal, type Clocks, type LeaseItem, type LeaseMemory, type LeaseRead, type LeaseWrite } from '../core/ha/lease.js';
import { planMapWrite, type MapItem, type MapWritePlan, type MemberItem } from '../core/ha/items.js';
import { roomUsed } from '../core/ha/map-chunks.js';
import { fromSharedMap, toSharedMap } from '../core/ha/shared-map.js';
import type { Fingerprint } from '../core/ha/fingerprint.js';
import type { HoldView } from '../core/ha/address-schedule.js';
import { CONFIRMED_SHARE, IDENTITY_RETRY_MS, storeTimeoutMs } from '../core/ha/timing.js';
import type { HaRole, HaStatus } from '../core/ha/ha-status.js';
import type { PortState } from '../core/ports/port-state.js';
import type { Logger } from '../log/logger.js';
import type { StoreRead, WriteOutcome } from './dynamo-store.js';
import { ElasticIpKeeper, type AddressMover, type Identity, type KeeperSettings } from './elastic-ip-keeper.js';
import { PeerHeartbeat, type MembersStore } from './peer-heartbeat.js';
import { StoreOutage } from './store-outage.js';
import { Wakeup, type Sleep } from './wakeup.js';

export type { AddressMover, Identity } from './elastic-ip-keeper.js';

/** The DynamoDB calls this node makes (src/ha/dynamo-store.ts). Each takes the caller's deadline. */
export interface HaStore extends MembersStore {
  readLease(signal?: AbortSignal): Promise<LeaseRead>;
  writeLease(write: LeaseWrite, signal?: AbortSignal): Promise<WriteOutcome>;
  releaseLease(self: string, expect: readonly string[], item: LeaseItem, signal?: AbortSignal): Promise<WriteOutcome>;
  readMap(signal?: AbortSignal): Promise<StoreRead<MapItem>>;
  writeMap(plan: Extract<MapWritePlan, { kind: 'write' }>, signal: AbortSignal | undefined, fence: () => AbortSignal | undefined): Promise<WriteOutcome | { kind: 'not-sent' }>;
  close(): void;
}

export interface HaNodeEdges {
  store: HaStore;
  addresses: AddressMover;
  identity(): Promise<Identity>;
  /** Monotonic ms: the only clock the lease uses. */
  monotonic(): number;
  /** Epoch ms: the snapshot's dates, and noticing a suspend. */
  wallClock(): number;
  /** An AbortSignal that fires when the monotonic clock reads `at`: every call's deadline. */
  deadline(at: number): AbortSignal;
  /** Sleeps `ms` on the monotonic clock, or until `signal` aborts. */
  sleep: Sleep;
  /** A fresh random token (lease and map versions, heartbeats). */
  token(): string;
  /** In [0, 1): jitter of the retry backoff. */
  random(): number;
  logger: Logger;
}

export interface HaNodeSettings extends KeeperSettings {
  group: string;
  /** The HA-relevant config keys' digests (src/core/ha/fingerprint.ts), published for the peer. */
  fingerprint: Fingerprint;
}

/** How the reconciler plans this pass: as the map's writer, or following the map as it is. */
export type MapAccess =
  | { mode: 'lead'; base: MapItem | null; state: PortState }
  | { mode: 'follow'; state: PortState };

/**
 * How a map write ended. Only a written (or unchanged) map may be installed;
 * `trimmed`: written without the new targets it had no room for, so the
 * pass installs `state` (what was written) instead of its plan.
 */
export type CommitOutcome = 'written' | 'unchanged' | 'refused' | 'unavailable' | { trimmed: PortState };

/** The daemon's names for the roles, in log lines. */
const ROLE_WORDS: Record<HaRole, string> = { leader: 'leader', 'leader-unconfirmed': 'leader without a confirmed lease', standby: 'standby', starting: 'starting' };

export class HaNode {
  #memory: LeaseMemory = initialLeaseMemory();
  #role: HaRole = 'starting';
  #roleSince: number;
  #identity: Identity | undefined;
  #identityError: string | undefined;
  #looked = false;
  readonly #store: StoreOutage;
  #lease: { item: LeaseItem | null; seenSince: number } | undefined;
  #map: MapItem | undefined;
  #waiting = 0;
  #misfits: string[] = [];
  #noRoom: string[] = [];
  /** Map writes in flight: a handover waits for them before it releases the lease. */
  readonly #writing = new Set<Promise<unknown>>();
  #handover: { why: string; done: (released: boolean) => void }[] = [];
  #wakeup: Wakeup | undefined;
  #running = false;
  readonly #heartbeat: PeerHeartbeat;
  readonly #keeper: ElasticIpKeeper;
  /** Called after a change of role (the daemon runs a pass at once) or of the lease's holder (it republishes its status). */
  onChange: (roleChanged: boolean) => void = () => {};

  constructor(
    private readonly settings: HaNodeSettings,
    private readonly edges: HaNodeEdges,
  ) {
    this.#roleSince = edges.wallClock();
    this.#heartbeat = new PeerHeartbeat(settings.leaseMs, settings.fingerprint, edges);
    this.#keeper = new ElasticIpKeeper(settings, edges, () => this.hold());
    this.#store = new StoreOutage(edges.logger, edges.monotonic, () => (this.#memory.held ? '; this leader asserts nothing once its lease is no longer confirmed' : ''));
  }

  /** The role now (it changes with the clock: a hold lapses without any call). */
  get role(): HaRole {
    if (!this.#identity || !this.#looked) return 'starting';
    if (this.#memory.held === undefined) return 'standby';
    return this.hold() ? 'leader' : 'leader-unconfirmed';
  }

  get instanceId(): string | undefined {
    return this.#identity?.instanceId;
  }

  #clocks(): Clocks {
    return { monotonic: this.edges.monotonic(), wall: this.edges.wallClock() };
  }

  /** This instance's confirmed hold (its term, and until when it stays confirmed), or undefined. */
  hold(): HoldView | undefined {
    const until = confirmedUntil(this.#memory, this.#clocks(), this.settings.leaseMs);
    return until === undefined ? undefined : { term: this.#memory.held!.term, until };
  }

  /** Whether this instance may allocate and write the map now. */
  get mayWriteMap(): boolean {
    return this.hold() !== undefined;
  }

  /** A reloaded config's fingerprint, for the next heartbeat. */
  set fingerprint(fingerprint: Fingerprint) {
    this.#heartbeat.fingerprint = fingerprint;
  }

  /** The lease loop, the heartbeat and the Elastic IP keeper: until `stop` aborts. Never throws. */
  async run(stop: AbortSignal): Promise<void> {
    this.#running = true;
    const wakeup = (this.#wakeup = new Wakeup(this.edges.sleep, stop));
    const self = (): { instanceId: string; role: 'leader' | 'standby' } | undefined =>
      this.#identity ? { instanceId: this.#identity.instanceId, role: this.#memory.held ? 'leader' : 'standby' } : undefined;
    const loops = [
      this.#leaseLoop(wakeup, stop),
      this.#heartbeat.run(self, stop).catch((err: Error) => this.edges.logger.error({ err: err.message }, 'ha: heartbeat failed')),
      this.#keeper.run(() => this.#identity, stop),
    ];
    await Promise.all(loops);
    this.#running = false;
    // A handover asked for as the loop ended is done here, by whoever awaits it.
  }

  async #leaseLoop(wakeup: Wakeup, stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      try {
        if (!(await this.#ensureIdentity())) {
          await wakeup.wait(IDENTITY_RETRY_MS);
          continue;
        }
        const handover = this.#handover.shift();
        if (handover) {
          handover.done(await this.#release(handover.why));
          continue;
        }
        const now = this.edges.monotonic();
        const due = nextLeaseStepAt(this.#memory, this.settings.leaseMs);
        if (now < due) {
          // Wake at the step, or when the hold lapses (the role changes with no call made).
          const lapse = this.hold()?.until ?? Infinity;
          await wakeup.wait(Math.min(due, lapse + 1) - now);
          this.#publishRole();
          continue;
        }
        await this.#leaseStep();
      } catch (err) {
        this.edges.logger.error({ err: (err as Error).message }, 'ha: lease step failed; retrying');
        await wakeup.wait(1000);
      }
      this.#publishRole();
    }
    // Handovers asked for while the loop stopped are the caller's (release() runs them directly).
    for (const h of this.#handover.splice(0)) h.done(false);
  }

  /** One step of the lease: the holder renews without reading; anyone else reads and decides. One time budget for the whole step. */
  async #leaseStep(): Promise<void> {
    const self = this.#identity!.instanceId;
    const leaseMs = this.settings.leaseMs;
    const sent = this.#clocks();
    const signal = this.edges.deadline(sent.monotonic + storeTimeoutMs(leaseMs));
    const write = renewal(this.#memory, self, leaseMs, this.edges.token());
    if (write) {
      const outcome = await this.edges.store.writeLease(write, signal);
      this.#memory = afterLeaseWrite(this.#memory, write, outcome, sent);
      this.#store.note(outcome.kind === 'unavailable' ? outcome.error : undefined, sent.monotonic);
      if (outcome.kind === 'accepted') this.#lease = { item: write.item, seenSince: sent.monotonic };
      if (outcome.kind === 'conflict') this.edges.logger.warn('ha: renewal refused (another instance holds the lease); stepping down to standby');
      this.#keeper.poke();
      return;
    }
    const read = await this.edges.store.readLease(signal);
    this.#looked = true;
    this.#memory = noteLeaseRead(this.#memory, sent.monotonic);
    this.#store.note(read.kind === 'unavailable' ? read.error : undefined, sent.monotonic);
    // With configs that differ, one of the two still takes a free lease (both refusing would leave no leader): the one whose
    // config the shared map was written under, or, when neither wrote it (no map yet, or a writer since replaced), the lower instance id.
    const differs = this.#heartbeat.differs();
    const writer = this.#map?.writer;
    const mayTakeFree = differs === undefined || writer === self || (writer !== differs.peer && self < differs.peer);
    const decision = decideLease(this.#memory, read, this.#clocks(), { self, leaseMs, mayTakeFree }, this.edges.token());
    this.#memory = decision.memory;
    if (decision.memory.seen) {
      const item = decision.memory.seen.item;
      const holderChanged = this.#lease !== undefined && (this.#lease.item?.holder ?? null) !== (item?.holder ?? null);
      this.#lease = { item, seenSince: decision.memory.seen.since };
      if (holderChanged) this.onChange(false);
    }
    if (decision.steppedDown) this.edges.logger.warn({ holder: this.#lease?.item?.holder ?? null, term: this.#lease?.item?.term }, 'ha: lost the lease to another instance; stepping down to standby');
    if (!decision.write) return;
    const acquire = decision.write;
    const acquireSent = this.#clocks();
    const outcome = await this.edges.store.writeLease(acquire, signal);
    this.#memory = afterLeaseWrite(this.#memory, acquire, outcome, acquireSent);
    this.#store.note(outcome.kind === 'unavailable' ? outcome.error : undefined, acquireSent.monotonic);
    if (acquire.kind === 'acquire' && outcome.kind === 'accepted') {
      const previous = this.#lease?.item?.holder ?? null;
      this.#lease = { item: acquire.item, seenSince: acquireSent.monotonic };
      const why = acquire.reason === 'free' ? 'free' : acquire.reason === 'expired' ? `expired: ${previous} did not renew for a whole lease` : 'held by this instance before a restart';
      this.edges.logger.warn({ term: acquire.item.term, reason: acquire.reason, previousHolder: previous }, `ha: became leader (term ${acquire.item.term}, lease ${why})`);
      this.#keeper.poke();
    }
  }

  /** Republishes the role when it changed (a new leader claims the map at once; a lapsed one stops allocating). */
  #publishRole(): void {
    const role = this.role;
    if (role === this.#role) return;
    const before = this.#role;
    this.#role = role;
    this.#roleSince = this.edges.wallClock();
    if (role === 'leader-unconfirmed') {
      this.edges.logger.error({ storeError: this.#store.current?.error }, 'ha: this leader\'s lease is no longer confirmed (no renewal accepted in time); it stops allocating and asserts no Elastic IP until a renewal is accepted; the standby may take over');
    } else if (before === 'leader-unconfirmed' && role === 'leader') {
      this.edges.logger.warn('ha: lease confirmed again');
    } else if (role === 'standby' && before === 'starting') {
      this.edges.logger.info({ holder: this.#lease?.item?.holder ?? null }, 'ha: standby: following the leader\'s port map');
    } else if (role === 'standby' && before !== 'starting') {
      this.edges.logger.warn(`ha: now ${ROLE_WORDS[role]} (was ${ROLE_WORDS[before]})`);
    }
    this.onChange(true);
  }

  /**
   * Before a pass: the map to plan from. The confirmed leader plans from the
   * shared map (or, when there is none yet, from this instance's own map, so
   * a single instance that turns HA on keeps its ports). Everyone else, and
   * the leader while its hold is not confirmed, follows the last map known.
   */
  async mapForPass(local: PortState): Promise<MapAccess> {
    const sentAt = this.edges.monotonic();
    const read = await this.edges.store.readMap(this.edges.deadline(sentAt + storeTimeoutMs(this.settings.leaseMs)));
    if (read.kind === 'unavailable' || read.kind === 'invalid') {
      this.#store.note(read.kind === 'unavailable' ? read.error : read.problem, sentAt);
      return { mode: 'follow', state: this.#map ? this.#fromShared(this.#map.state) : local };
    }
    this.#store.note(undefined, sentAt);
    if (read.kind === 'ok') {
      this.#map = read.item;
      this.#memory = noteTerm(this.#memory, read.item.term);
    }
    const base = read.kind === 'ok' ? read.item : null;
    const held = this.#memory.held;
    if (held && base !== null && base.term > held.term) {
      this.#stepDown(`a later term (${base.term}) wrote the map`);
      return { mode: 'follow', state: this.#fromShared(base.state) };
    }
    if (!this.mayWriteMap) return { mode: 'follow', state: base ? this.#fromShared(base.state) : local };
    return { mode: 'lead', base, state: base ? this.#fromShared(base.state) : local };
  }

  /**
   * After planning as the writer: the map write, fenced by the term, sent
   * only under a confirmed hold (asked again right before the head is sent)
   * with a deadline no later than the end of that hold.
   */
  async commit(base: MapItem | null, planned: PortState): Promise<CommitOutcome> {
    const held = this.#memory.held;
    const self = this.#identity?.instanceId;
    if (!held || !self || !this.mayWriteMap) return 'refused';
    const shared = toSharedMap(planned, this.settings.listenAddresses);
    const plan = planMapWrite(base, shared, held.term, self, this.edges.token());
    if (plan.kind === 'superseded') {
      this.#stepDown(`a later term (${plan.term}) wrote the map`);
      return 'refused';
    }
    if (plan.kind === 'unchanged') {
      this.#noRoom = plan.waiting;
      return plan.waiting.length === 0 ? 'unchanged' : { trimmed: this.#fromShared(plan.state) };
    }
    const sentAt = this.edges.monotonic();
    const fence = (): AbortSignal | undefined => {
      const hold = this.hold();
      return hold && hold.term === held.term ? this.edges.deadline(Math.min(this.edges.monotonic() + storeTimeoutMs(this.settings.leaseMs), hold.until)) : undefined;
    };
    const writing = this.edges.store.writeMap(plan, this.edges.deadline(sentAt + storeTimeoutMs(this.settings.leaseMs)), fence);
    this.#writing.add(writing);
    const outcome = await writing.finally(() => this.#writing.delete(writing));
    if (outcome.kind === 'accepted') {
      if (base === null || base.term !== held.term) this.edges.logger.info({ term: held.term, entries: plan.state.entries.length, chunks: plan.head.chunks.length }, 'ha: claimed the shared port map for this term');
      this.#map = { ...plan.head, state: plan.state };
      this.#noRoom = plan.waiting;
      if (plan.waiting.length > 0) this.edges.logger.error({ waiting: plan.waiting.length, first: plan.waiting.slice(0, 5) }, 'ha: the shared map has no room for these new targets; they wait (see health)');
      return plan.waiting.length === 0 ? 'written' : { trimmed: this.#fromShared(plan.state) };
    }
    if (outcome.kind === 'not-sent') return 'refused';
    if (outcome.kind === 'unavailable') {
      this.#store.note(outcome.error, sentAt);
      return 'unavailable';
    }
    // Refused: the map moved under this leader. The next pass reads it again; a later term means it is no longer leader.
    this.edges.logger.warn('ha: the shared map changed while this leader planned; planning again on the next pass');
    return 'refused';
  }

  /** What the follower plan found, for the snapshot. */
  noteFollowed(waiting: number, misfits: readonly string[]): void {
    this.#waiting = waiting;
    this.#misfits = [...misfits];
  }

  /**
   * A planned handover (`cachenat ha handover`, `systemctl stop`): give up
   * the lease so the peer takes over at once. While the lease loop runs, the
   * release is one of its steps (it never races a renewal); after the loop
   * has stopped, it runs here. Resolves to whether this instance held a
   * lease to give up.
   */
  release(why: string): Promise<boolean> {
    if (!this.#running) return this.#release(why);
    return new Promise((done) => {
      this.#handover.push({ why, done });
      this.#wakeup?.poke();
    });
  }

  async #release(why: string): Promise<boolean> {
    const releasing = beginRelease(this.#memory);
    const self = this.#identity?.instanceId;
    if (!releasing || !self) return false;
    // From here on nothing is asserted: no association, no map write is sent. Those in flight end first (each within its deadline).
    this.#memory = releasing;
    this.#keeper.poke();
    await Promise.all([this.#keeper.settle(), ...[...this.#writing].map((w) => w.catch(() => undefined))]);
    const write = releaseWrite(this.#memory, this.settings.leaseMs, this.edges.token());
    if (!write) return false;
    const sentAt = this.edges.monotonic();
    const outcome = await this.edges.store.releaseLease(self, write.expect, write.item, this.edges.deadline(sentAt + storeTimeoutMs(this.settings.leaseMs)));
    this.#memory = afterRelease(this.#memory, outcome, this.edges.monotonic(), this.settings.leaseMs);
    if (outcome.kind === 'accepted') {
      this.#lease = { item: write.item, seenSince: sentAt };
      this.edges.logger.warn({ term: write.item.term }, `ha: released the lease (${why}); the standby takes over now`);
    } else if (outcome.kind === 'unavailable') {
      this.#store.note(outcome.error, sentAt);
      this.edges.logger.warn({ err: outcome.error }, `ha: the release of the lease (${why}) got no answer; it may have landed: this instance leaves the lease to the standby for one lease either way`);
    } else {
      this.edges.logger.warn(`ha: could not release the lease (${why}): another instance holds it already`);
    }
    this.#publishRole();
    return true;
  }

  /** A daemon that stops: after the release, its heartbeat says so (best effort). */
  async stopped(): Promise<void> {
    if (this.#identity) await this.#heartbeat.stopped(this.#identity.instanceId).catch(() => undefined);
  }

  close(): void {
    this.edges.store.close();
    this.edges.addresses.close();
  }

  status(): HaStatus {
    const clocks = this.#clocks();
    const now = clocks.monotonic;
    const at = (monotonic: number): string => new Date(clocks.wall - (now - monotonic)).toISOString();
    const role = this.role;
    const held = this.#memory.held;
    const map = this.#map;
    const differs = this.#heartbeat.differs(now);
    const status: HaStatus = {
      role,
      roleSince: new Date(role === this.#role ? this.#roleSince : clocks.wall).toISOString(),
      group: this.settings.group,
      leaseMs: this.settings.leaseMs,
      mayAllocate: role === 'leader',
      // Only a confirmed leader knows where its addresses point: once the hold lapses the standby may have moved them.
      elasticIps: this.#keeper.status(role === 'leader' ? held?.term : undefined, at),
      waiting: this.#waiting,
      misfits: this.#misfits,
      peers: this.#heartbeat.peers().map((p) => ({ instanceId: p.instanceId, role: p.role, lastSeenAt: at(p.seenAt) })),
    };
    if (this.#identity) status.instanceId = this.#identity.instanceId;
    if (this.#identityError) status.identityError = this.#identityError;
    if (held) status.hold = { confirmedAt: at(held.sentAt), confirmedUntil: at(confirmedUntil(this.#memory, clocks, this.settings.leaseMs) ?? Math.min(now, held.sentAt + this.settings.leaseMs * CONFIRMED_SHARE)) };
    if (this.#lease) status.lease = { holder: this.#lease.item?.holder ?? null, changedAt: at(this.#lease.seenSince), ...(this.#lease.item ? { term: this.#lease.item.term } : {}) };
    if (map) status.map = { version: map.version, term: map.term, writer: map.writer, entries: map.state.entries.length, chunks: map.chunks.length, room: Math.round(roomUsed(map.chunks) * 1000) / 1000 };
    const outage = this.#store.current;
    if (outage) status.storeError = { error: outage.error, since: at(outage.since) };
    if (differs) status.configDiffers = differs;
    if (this.#noRoom.length > 0 && role !== 'standby') status.noRoom = this.#noRoom.slice(0, 20);
    return status;
  }

  #fromShared(state: PortState): PortState {
    return fromSharedMap(state, this.settings.listenAddresses);
  }

  #stepDown(why: string): void {
    if (!this.#memory.held) return;
    const { held: _held, releasing: _releasing, ...rest } = this.#memory;
    this.#memory = rest;
    this.edges.logger.warn(`ha: stepping down to standby: ${why}`);
    this.#keeper.poke();
    this.#publishRole();
  }

  async #ensureIdentity(): Promise<Identity | undefined> {
    if (this.#identity) return this.#identity;
    try {
      this.#identity = await this.edges.identity();
      this.#identityError = undefined;
      this.edges.logger.info({ instanceId: this.#identity.instanceId, networkInterfaceId: this.#identity.networkInterfaceId, privateIp: this.#identity.privateIp }, 'ha: this instance');
      return this.#identity;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.#identityError) this.edges.logger.error({ err: message }, 'ha: cannot read this instance\'s identity from the instance metadata (IMDSv2); standing by');
      this.#identityError = message;
      return undefined;
    }
  }
}

export type { MemberItem };
