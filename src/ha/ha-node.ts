// One instance of an HA pair (docs/design/ha.md): the lease beat, the
// heartbeat, the Elastic IP, and the shared map as the reconciler sees it.
// The decisions are pure (src/core/ha/); this class performs them against
// DynamoDB and EC2 and remembers what happened, for the status snapshot.

import { afterLeaseWrite, decideLease, holdConfirmed, initialLeaseMemory, noteTerm, releaseLease, renewEveryMs, type LeaseItem, type LeaseMemory, type LeaseRead, type LeaseWrite, type Role } from '../core/ha/lease.js';
import { planMapWrite, type MapItem, type MemberItem } from '../core/ha/items.js';
import { fromSharedMap, toSharedMap, type AddressPair } from '../core/ha/shared-map.js';
import type { HaStatus } from '../core/daemon/status-snapshot.js';
import type { PortState } from '../core/ports/port-state.js';
import type { Logger } from '../log/logger.js';
import type { StoreRead, WriteOutcome } from './dynamo-store.js';

/** The DynamoDB calls this node makes (src/ha/dynamo-store.ts). */
export interface HaStore {
  readLease(): Promise<LeaseRead>;
  writeLease(write: LeaseWrite): Promise<WriteOutcome>;
  releaseLease(self: string, expect: string, item: LeaseItem): Promise<WriteOutcome>;
  readMap(): Promise<StoreRead<MapItem>>;
  writeMap(expect: string | null, item: MapItem): Promise<WriteOutcome | { kind: 'too-large'; problem: string }>;
  writeMember(item: MemberItem): Promise<WriteOutcome>;
  readMembers(): Promise<{ kind: 'ok'; members: MemberItem[]; invalid: string[] } | { kind: 'unavailable'; error: string }>;
  close(): void;
}

/** This instance as IMDSv2 describes it. */
export interface Identity {
  instanceId: string;
  networkInterfaceId: string;
  privateIp: string;
  privateIps: string[];
}

/** The EC2 calls for the Elastic IP(s). */
export interface AddressMover {
  associate(request: { allocationId: string; networkInterfaceId: string; privateIp: string }): Promise<void>;
  describe(allocationIds: readonly string[]): Promise<{ allocationId: string; networkInterfaceId?: string; privateIp?: string }[]>;
  close(): void;
}

export interface HaNodeEdges {
  store: HaStore;
  addresses: AddressMover;
  identity(): Promise<Identity>;
  /** Monotonic ms: the only clock the lease uses. */
  monotonic(): number;
  /** Epoch ms, for the snapshot's dates only. */
  wallClock(): number;
  /** A fresh random token (lease and map versions, heartbeats). */
  token(): string;
  logger: Logger;
}

export interface HaNodeSettings {
  group: string;
  leaseMs: number;
  /** Port mode: the Elastic IP moved to this instance's primary private IP. */
  elasticIp?: string;
  /** Address mode: the listen addresses, each with its Elastic IP's allocation id. */
  listenAddresses?: readonly (AddressPair & { allocationId?: string })[];
}

/** How the reconciler plans this pass: as the map's writer, or following the map as it is. */
export type MapAccess =
  | { mode: 'lead'; base: MapItem | null; state: PortState }
  | { mode: 'follow'; state: PortState };

export type CommitOutcome = 'written' | 'unchanged' | 'refused' | 'unavailable';

interface Association {
  allocationId: string;
  privateIp: string;
  state: 'held' | 'associating' | 'failed';
  error?: string;
  attempts: number;
  /** Monotonic: no new attempt before this. */
  retryAt: number;
  heldAt?: number;
}

/** The standby looks at the lease this often at most, so a takeover comes within this much of the lease running out. */
const WATCH_EVERY_MS = 500;
/** Retries of a failed association: 0.5 s doubling up to 30 s. */
const ASSOCIATE_RETRY_MS = [500, 30_000] as const;
/** The leader checks that each Elastic IP still points at it this often (in leases). */
const VERIFY_EVERY_LEASES = 3;

export const beatEveryMs = (leaseMs: number): number => Math.min(WATCH_EVERY_MS, renewEveryMs(leaseMs));

export class HaNode {
  #memory: LeaseMemory = initialLeaseMemory();
  #role: Role | 'starting' = 'starting';
  #roleSince: number;
  #identity: Identity | undefined;
  #identityError: string | undefined;
  #storeError: { error: string; since: number } | undefined;
  /** When the latest call that DynamoDB answered was sent (monotonic). */
  #lastAnswerSentAt = -Infinity;
  #lease: { item: LeaseItem | null; seenSince: number } | undefined;
  #map: MapItem | undefined;
  #peers = new Map<string, { role: MemberItem['role']; beat: string; seenAt: number }>();
  #nextHeartbeatAt = 0;
  #associations: Association[] = [];
  #associating: Promise<void> | undefined;
  #verifyAt = 0;
  #waiting = 0;
  #misfits: string[] = [];
  /** Called after a change of role (the daemon runs a pass at once) or of the lease's holder (it republishes its status). */
  onChange: (roleChanged: boolean) => void = () => {};

  constructor(
    private readonly settings: HaNodeSettings,
    private readonly edges: HaNodeEdges,
  ) {
    this.#roleSince = edges.wallClock();
  }

  get role(): Role | 'starting' {
    return this.#role;
  }

  get instanceId(): string | undefined {
    return this.#identity?.instanceId;
  }

  /** The beat loop: until `signal` aborts. Never throws. */
  async run(signal: AbortSignal, sleep: (ms: number, signal: AbortSignal) => Promise<void>): Promise<void> {
    while (!signal.aborted) {
      await this.beat().catch((err: Error) => this.edges.logger.error({ err: err.message }, 'ha: beat failed; retrying'));
      if (signal.aborted) break;
      await sleep(beatEveryMs(this.settings.leaseMs), signal);
    }
    await this.#associating;
  }

  /** One beat: read the lease, decide, write, heartbeat, and keep the Elastic IP(s) on the leader. */
  async beat(): Promise<void> {
    const identity = await this.#ensureIdentity();
    if (!identity) return;
    const self = identity.instanceId;
    const readSentAt = this.edges.monotonic();
    const read = await this.edges.store.readLease();
    const now = this.edges.monotonic();
    this.#noteStore(read.kind === 'unavailable' ? read.error : undefined, readSentAt, now);
    const decision = decideLease(this.#memory, read, now, { self, leaseMs: this.settings.leaseMs }, this.edges.token());
    this.#memory = decision.memory;
    if (decision.memory.seen) {
      const item = decision.memory.seen.item;
      const holderChanged = this.#lease !== undefined && (this.#lease.item?.holder ?? null) !== (item?.holder ?? null);
      this.#lease = { item, seenSince: decision.memory.seen.since };
      if (holderChanged) this.onChange(false);
    }
    if (decision.steppedDown) this.edges.logger.warn({ holder: this.#lease?.item?.holder ?? null, term: this.#lease?.item?.term }, 'ha: lost the lease to another instance; stepping down to standby');
    if (decision.write) {
      const write = decision.write;
      const sentAt = this.edges.monotonic();
      const outcome = await this.edges.store.writeLease(write);
      this.#memory = afterLeaseWrite(this.#memory, write, outcome, sentAt);
      if (outcome.kind === 'unavailable') this.#noteStore(outcome.error, sentAt, this.edges.monotonic());
      if (write.kind === 'acquire' && outcome.kind === 'accepted') {
        const previous = this.#lease?.item?.holder ?? null;
        this.edges.logger.warn({ term: write.item.term, reason: write.reason, previousHolder: previous }, `ha: became leader (term ${write.item.term}, lease ${write.reason === 'free' ? 'free' : write.reason === 'expired' ? `expired: ${previous} did not renew for a whole lease` : 'held by this instance before a restart'})`);
      }
      if (write.kind === 'renew' && outcome.kind === 'conflict') this.edges.logger.warn('ha: renewal refused (another instance holds the lease); stepping down to standby');
    }
    this.#setRole(this.#memory.held ? 'leader' : 'standby');
    await this.#heartbeat(identity, now);
    this.#keepAddresses(identity);
  }

  /** Whether this instance may allocate and write the map now. */
  get mayWriteMap(): boolean {
    return this.#role === 'leader' && holdConfirmed(this.#memory, this.edges.monotonic(), this.settings.leaseMs);
  }

  /**
   * Before a pass: the map to plan from. The confirmed leader plans from the
   * shared map (or, when there is none yet, from this instance's own map, so
   * a single instance that turns HA on keeps its ports). Everyone else, and
   * the leader while DynamoDB does not answer, follows the last map known.
   */
  async mapForPass(local: PortState): Promise<MapAccess> {
    const sentAt = this.edges.monotonic();
    const read = await this.edges.store.readMap();
    const now = this.edges.monotonic();
    if (read.kind === 'unavailable' || read.kind === 'invalid') {
      const error = read.kind === 'unavailable' ? read.error : read.problem;
      this.#noteStore(error, sentAt, now);
      return { mode: 'follow', state: this.#map ? this.#fromShared(this.#map.state) : local };
    }
    this.#noteStore(undefined, sentAt, now);
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

  /** After planning as the writer: the map write, fenced by the term. Only a written (or unchanged) map may be installed. */
  async commit(base: MapItem | null, planned: PortState): Promise<CommitOutcome> {
    const held = this.#memory.held;
    const self = this.#identity?.instanceId;
    if (!held || !self || !this.mayWriteMap) return 'refused';
    const plan = planMapWrite(base, toSharedMap(planned, this.settings.listenAddresses), held.term, self, this.edges.token());
    if (plan.kind === 'superseded') {
      this.#stepDown(`a later term (${plan.term}) wrote the map`);
      return 'refused';
    }
    if (plan.kind === 'unchanged') return 'unchanged';
    const sentAt = this.edges.monotonic();
    const outcome = await this.edges.store.writeMap(plan.expect, plan.item);
    if (outcome.kind === 'accepted') {
      if (base === null || base.term !== held.term) this.edges.logger.info({ term: held.term, entries: planned.entries.length }, 'ha: claimed the shared port map for this term');
      this.#map = plan.item;
      return 'written';
    }
    if (outcome.kind === 'too-large') {
      this.edges.logger.error({ problem: outcome.problem }, 'ha: the port map does not fit in one DynamoDB item; new targets wait');
      return 'refused';
    }
    if (outcome.kind === 'unavailable') {
      this.#noteStore(outcome.error, sentAt, this.edges.monotonic());
      return 'unavailable';
    }
    // Refused: the map moved under this leader. The next pass reads it again; a later term means it is no longer leader.
    const now = await this.edges.store.readMap();
    if (now.kind === 'ok' && now.item.term > held.term) this.#stepDown(`a later term (${now.item.term}) wrote the map`);
    else this.edges.logger.warn('ha: the shared map changed while this leader planned; planning again on the next pass');
    return 'refused';
  }

  /** What the follower plan found, for the snapshot. */
  noteFollowed(waiting: number, misfits: readonly string[]): void {
    this.#waiting = waiting;
    this.#misfits = [...misfits];
  }

  /** A planned handover (`cachenat ha handover`, `systemctl stop`): give up the lease so the peer takes over at once. */
  async release(why: string): Promise<boolean> {
    const released = releaseLease(this.#memory, this.edges.monotonic(), this.settings.leaseMs, this.edges.token());
    const self = this.#identity?.instanceId;
    if (!released || !self) return false;
    const outcome = await this.edges.store.releaseLease(self, released.expect, released.item);
    if (outcome.kind !== 'accepted') {
      this.edges.logger.warn({ outcome: outcome.kind }, `ha: could not release the lease (${why}); the standby takes over once it runs out`);
      return false;
    }
    this.#memory = released.memory;
    this.edges.logger.warn({ term: released.item.term }, `ha: released the lease (${why}); the standby takes over now`);
    this.#setRole('standby');
    return true;
  }

  close(): void {
    this.edges.store.close();
    this.edges.addresses.close();
  }

  status(): HaStatus {
    const now = this.edges.monotonic();
    const wall = this.edges.wallClock();
    const at = (monotonic: number): string => new Date(wall - (now - monotonic)).toISOString();
    const status: HaStatus = {
      role: this.#role,
      roleSince: new Date(this.#roleSince).toISOString(),
      group: this.settings.group,
      leaseMs: this.settings.leaseMs,
      mayAllocate: this.mayWriteMap,
      elasticIps: this.#associations.map((a) => ({ allocationId: a.allocationId, privateIp: a.privateIp, state: a.state, ...(a.error === undefined ? {} : { error: a.error }), ...(a.heldAt === undefined ? {} : { heldSince: at(a.heldAt) }) })),
      waiting: this.#waiting,
      misfits: this.#misfits,
      peers: [...this.#peers].map(([instanceId, p]) => ({ instanceId, role: p.role, lastSeenAt: at(p.seenAt) })),
    };
    if (this.#identity) status.instanceId = this.#identity.instanceId;
    if (this.#identityError) status.identityError = this.#identityError;
    if (this.#lease) {
      status.lease = { holder: this.#lease.item?.holder ?? null, changedAt: at(this.#lease.seenSince), ...(this.#lease.item ? { term: this.#lease.item.term } : {}) };
    }
    if (this.#map) status.map = { version: this.#map.version, term: this.#map.term, writer: this.#map.writer, entries: this.#map.state.entries.length };
    if (this.#storeError) status.storeError = { error: this.#storeError.error, since: at(this.#storeError.since) };
    return status;
  }

  #fromShared(state: PortState): PortState {
    return fromSharedMap(state, this.settings.listenAddresses);
  }

  #stepDown(why: string): void {
    if (!this.#memory.held) return;
    const { held: _held, ...rest } = this.#memory;
    this.#memory = rest;
    this.edges.logger.warn(`ha: stepping down to standby: ${why}`);
    this.#setRole('standby');
  }

  #setRole(role: Role): void {
    if (role === this.#role) return;
    const before = this.#role;
    this.#role = role;
    this.#roleSince = this.edges.wallClock();
    if (role === 'standby') {
      this.#associations = [];
      if (before === 'starting') this.edges.logger.info({ holder: this.#lease?.item?.holder ?? null }, 'ha: standby: following the leader\'s port map');
    }
    this.onChange(true);
  }

  /**
   * What a call sent at `sentAt` says of DynamoDB. Calls overlap (the beat and
   * the passes): a call that was sent before the last answer and fails only
   * now (a timeout from the outage) is old news, not a new outage.
   */
  #noteStore(error: string | undefined, sentAt: number, now: number): void {
    if (error === undefined) {
      this.#lastAnswerSentAt = Math.max(this.#lastAnswerSentAt, sentAt);
      if (this.#storeError) this.edges.logger.info({ downMs: Math.round(now - this.#storeError.since) }, 'ha: DynamoDB answers again');
      this.#storeError = undefined;
      return;
    }
    if (sentAt < this.#lastAnswerSentAt) return;
    if (!this.#storeError) {
      this.edges.logger.error({ err: error }, `ha: DynamoDB does not answer; forwarding goes on with the last map, no new allocations${this.#role === 'leader' ? '; this leader keeps the Elastic IP' : ''}`);
      this.#storeError = { error, since: now };
    } else {
      this.#storeError.error = error;
    }
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

  /** Every third of a lease: this instance's member item, and the peers' (their heartbeats seen change on this clock). */
  async #heartbeat(identity: Identity, now: number): Promise<void> {
    if (now < this.#nextHeartbeatAt) return;
    this.#nextHeartbeatAt = now + renewEveryMs(this.settings.leaseMs);
    const role = this.#role === 'leader' ? 'leader' : 'standby';
    await this.edges.store.writeMember({ instanceId: identity.instanceId, role, beat: this.edges.token(), leaseMs: this.settings.leaseMs });
    const read = await this.edges.store.readMembers();
    if (read.kind !== 'ok') return;
    for (const member of read.members) {
      if (member.instanceId === identity.instanceId) continue;
      const known = this.#peers.get(member.instanceId);
      if (!known) this.edges.logger.info({ peer: member.instanceId, role: member.role }, 'ha: peer seen');
      const changed = known === undefined || known.beat !== member.beat;
      this.#peers.set(member.instanceId, { role: member.role, beat: member.beat, seenAt: changed ? now : known.seenAt });
    }
  }

  /** The leader's Elastic IP(s): associated on taking over, retried with backoff, checked now and then. */
  #keepAddresses(identity: Identity): void {
    if (this.#role !== 'leader' || this.#associating) return;
    const now = this.edges.monotonic();
    if (this.#associations.length === 0) {
      this.#associations = this.#wanted(identity).map((w) => ({ ...w, state: 'associating', attempts: 0, retryAt: now }));
      this.#verifyAt = now + VERIFY_EVERY_LEASES * this.settings.leaseMs;
    }
    const due = this.#associations.filter((a) => a.state !== 'held' && now >= a.retryAt);
    if (due.length > 0) {
      this.#associating = this.#associate(identity, due).finally(() => (this.#associating = undefined));
    } else if (now >= this.#verifyAt && this.#associations.length > 0) {
      this.#verifyAt = now + VERIFY_EVERY_LEASES * this.settings.leaseMs;
      this.#associating = this.#verify(identity).finally(() => (this.#associating = undefined));
    }
  }

  #wanted(identity: Identity): { allocationId: string; privateIp: string; error?: string }[] {
    if (this.settings.listenAddresses) {
      return this.settings.listenAddresses.flatMap((l) => (l.allocationId === undefined ? [] : [{ allocationId: l.allocationId, privateIp: l.address }]));
    }
    return this.settings.elasticIp === undefined ? [] : [{ allocationId: this.settings.elasticIp, privateIp: identity.privateIp }];
  }

  async #associate(identity: Identity, due: Association[]): Promise<void> {
    for (const a of due) {
      const started = this.edges.monotonic();
      if (!identity.privateIps.includes(a.privateIp)) {
        this.#failed(a, `${a.privateIp} is not a private address of this instance's interface ${identity.networkInterfaceId} (it has ${identity.privateIps.join(', ')}); check forward.listenAddresses`);
        continue;
      }
      try {
        await this.edges.addresses.associate({ allocationId: a.allocationId, networkInterfaceId: identity.networkInterfaceId, privateIp: a.privateIp });
        a.state = 'held';
        delete a.error;
        a.heldAt = this.edges.monotonic();
        this.edges.logger.warn({ allocationId: a.allocationId, privateIp: a.privateIp, ms: Math.round(a.heldAt - started), attempts: a.attempts + 1 }, `ha: Elastic IP ${a.allocationId} now points at this instance (${a.privateIp})`);
      } catch (err) {
        this.#failed(a, (err as Error).message);
      }
    }
  }

  #failed(a: Association, error: string): void {
    a.attempts++;
    a.state = 'failed';
    a.error = error;
    const delay = Math.min(ASSOCIATE_RETRY_MS[1], ASSOCIATE_RETRY_MS[0] * 2 ** (a.attempts - 1));
    a.retryAt = this.edges.monotonic() + delay;
    this.edges.logger.error({ allocationId: a.allocationId, attempts: a.attempts, retryInMs: delay, err: error }, `ha: cannot move Elastic IP ${a.allocationId} to this instance; retrying (clients cannot reach the pair until it holds)`);
  }

  async #verify(identity: Identity): Promise<void> {
    let seen: Awaited<ReturnType<AddressMover['describe']>>;
    try {
      seen = await this.edges.addresses.describe(this.#associations.map((a) => a.allocationId));
    } catch (err) {
      this.edges.logger.warn({ err: (err as Error).message }, 'ha: cannot check the Elastic IP association (DescribeAddresses); trying again later');
      return;
    }
    for (const a of this.#associations) {
      const now = seen.find((s) => s.allocationId === a.allocationId);
      if (now?.networkInterfaceId === identity.networkInterfaceId && now.privateIp === a.privateIp) continue;
      this.edges.logger.warn({ allocationId: a.allocationId, networkInterfaceId: now?.networkInterfaceId, privateIp: now?.privateIp }, `ha: Elastic IP ${a.allocationId} no longer points at this leader; associating it again`);
      a.state = 'associating';
      a.retryAt = this.edges.monotonic();
    }
  }
}
