// The peer heartbeat of one HA instance, on a loop of its own (never in
// the lease's path): every third of a lease it writes its own attribute of
// the members item (role, a fresh token, the fingerprint of its HA-relevant
// config) and reads everyone's. A peer's token changing, seen on this
// instance's own clock, says the peer runs; its fingerprint says whether the
// two configs agree.

import { fingerprintDiff, type Fingerprint } from '../core/ha/fingerprint.js';
import type { MemberItem } from '../core/ha/items.js';
import { heartbeatEveryMs, peerLiveMs, storeTimeoutMs } from '../core/ha/timing.js';
import type { Logger } from '../log/logger.js';
import type { WriteOutcome } from './dynamo-store.js';
import type { Sleep } from './wakeup.js';

export interface MembersStore {
  writeMember(item: MemberItem, signal?: AbortSignal): Promise<WriteOutcome>;
  readMembers(signal?: AbortSignal): Promise<{ kind: 'ok'; members: MemberItem[]; invalid: string[] } | { kind: 'unavailable'; error: string }>;
}

export interface HeartbeatEdges {
  store: MembersStore;
  monotonic(): number;
  deadline(at: number): AbortSignal;
  sleep: Sleep;
  token(): string;
  logger: Logger;
}

interface Peer {
  role: MemberItem['role'];
  beat: string;
  /** Monotonic: when its token was last seen to change. */
  seenAt: number;
  config: Fingerprint;
}

export class PeerHeartbeat {
  readonly #peers = new Map<string, Peer>();
  #fingerprint: Fingerprint;
  #warnedDiff = '';

  constructor(
    private readonly leaseMs: number,
    fingerprint: Fingerprint,
    private readonly edges: HeartbeatEdges,
  ) {
    this.#fingerprint = fingerprint;
  }

  /** A reloaded config's fingerprint: published at the next heartbeat. */
  set fingerprint(fingerprint: Fingerprint) {
    this.#fingerprint = fingerprint;
  }

  /** Until `stop` aborts: a heartbeat every third of a lease, once `self()` knows who this instance is. */
  async run(self: () => { instanceId: string; role: 'leader' | 'standby' } | undefined, stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      const me = self();
      if (me) await this.beat(me.instanceId, me.role);
      await this.edges.sleep(heartbeatEveryMs(this.leaseMs), stop);
    }
  }

  /** One heartbeat: this instance's entry written, everyone's read, within one store timeout. */
  async beat(instanceId: string, role: MemberItem['role']): Promise<void> {
    const signal = this.edges.deadline(this.edges.monotonic() + storeTimeoutMs(this.leaseMs));
    await this.edges.store.writeMember({ instanceId, role, beat: this.edges.token(), leaseMs: this.leaseMs, config: this.#fingerprint }, signal);
    const read = await this.edges.store.readMembers(signal);
    if (read.kind !== 'ok') return;
    const now = this.edges.monotonic();
    for (const member of read.members) {
      if (member.instanceId === instanceId) continue;
      const known = this.#peers.get(member.instanceId);
      if (!known) this.edges.logger.info({ peer: member.instanceId, role: member.role }, 'ha: peer seen');
      const changed = known === undefined || known.beat !== member.beat;
      this.#peers.set(member.instanceId, { role: member.role, beat: member.beat, seenAt: changed ? now : known.seenAt, config: member.config });
    }
    const differs = this.differs();
    const text = differs ? `${differs.peer}:${differs.keys.join(',')}` : '';
    if (text !== this.#warnedDiff && differs) {
      this.edges.logger.warn({ peer: differs.peer, keys: differs.keys }, `ha: this instance's config differs from its peer's (${differs.keys.join(', ')}); a free lease goes only to the instance the shared map was written under (else the lower instance id) until the two agree`);
    }
    this.#warnedDiff = text;
  }

  /** The daemon stops: its entry says so, so the peer does not wait for this heartbeat to go stale (best effort). */
  async stopped(instanceId: string): Promise<void> {
    const signal = this.edges.deadline(this.edges.monotonic() + storeTimeoutMs(this.leaseMs));
    await this.edges.store.writeMember({ instanceId, role: 'stopped', beat: this.edges.token(), leaseMs: this.leaseMs, config: this.#fingerprint }, signal);
  }

  /** A peer that runs: its heartbeat changed within peerLiveMs on this clock, and it has not said it stopped. */
  #running(peer: Peer, now: number): boolean {
    return peer.role !== 'stopped' && now - peer.seenAt < peerLiveMs(this.leaseMs);
  }

  /** A running peer whose config differs from this instance's, and the keys that do. */
  differs(now = this.edges.monotonic()): { peer: string; keys: string[] } | undefined {
    for (const [peer, p] of this.#peers) {
      if (!this.#running(p, now)) continue;
      const keys = fingerprintDiff(this.#fingerprint, p.config);
      if (keys.length > 0) return { peer, keys };
    }
    return undefined;
  }

  /** Every peer seen, and when (monotonic) its heartbeat last changed. */
  peers(): { instanceId: string; role: MemberItem['role']; seenAt: number }[] {
    return [...this.#peers].map(([instanceId, p]) => ({ instanceId, role: p.role, seenAt: p.seenAt }));
  }
}
