// The leader's Elastic IP(s), on a loop of their own: associated on taking
// the lease, retried with backoff, checked now and then, and only ever under
// a confirmed hold. The schedule is pure (src/core/ha/address-schedule.ts);
// this class performs its steps against EC2. The hold is asked again right
// before each AssociateAddress, with nothing awaited in between, and the
// call's deadline is the end of that hold: a leader whose hold lapsed (cut
// off from DynamoDB, paused, suspended) asserts nothing.

import { afterAssociate, afterVerify, keeperFor, nextKeeperStep, retryInMs, type HoldView, type KeeperMemory, type KeeperStep } from '../core/ha/address-schedule.js';
import type { AddressPair } from '../core/ha/shared-map.js';
import { CONFIRMED_SHARE, EC2_TIMEOUT_MS, MIN_ASSOCIATE_BUDGET_MS } from '../core/ha/timing.js';
import type { HaStatus } from '../core/ha/ha-status.js';
import type { Logger } from '../log/logger.js';
import { Wakeup, type Sleep } from './wakeup.js';

/** This instance as IMDSv2 describes it. */
export interface Identity {
  instanceId: string;
  networkInterfaceId: string;
  privateIp: string;
  privateIps: string[];
}

/** The EC2 calls for the Elastic IP(s) (src/ha/elastic-ips.ts). */
export interface AddressMover {
  associate(request: { allocationId: string; networkInterfaceId: string; privateIp: string }, signal?: AbortSignal): Promise<void>;
  describe(allocationIds: readonly string[], signal?: AbortSignal): Promise<{ allocationId: string; networkInterfaceId?: string; privateIp?: string }[]>;
  close(): void;
}

export interface KeeperSettings {
  leaseMs: number;
  /** Port mode: the Elastic IP moved to this instance's primary private IP. */
  elasticIp?: string;
  /** Address mode: the listen addresses, each with its Elastic IP's allocation id. */
  listenAddresses?: readonly (AddressPair & { allocationId?: string })[];
}

export interface KeeperEdges {
  addresses: AddressMover;
  monotonic(): number;
  deadline(at: number): AbortSignal;
  sleep: Sleep;
  random(): number;
  logger: Logger;
}

/** How long the keeper sleeps when nothing is due and nothing pokes it. */
const IDLE_MS = 60_000;

export class ElasticIpKeeper {
  #memory: KeeperMemory | undefined;
  #wakeup: Wakeup | undefined;
  #associating: Promise<unknown> | undefined;
  /** Monotonic: when the last association that failed ended (EC2 may still apply one that got no answer). */
  #failedAt = -Infinity;

  constructor(
    private readonly settings: KeeperSettings,
    private readonly edges: KeeperEdges,
    /** This instance's confirmed hold now, or undefined (asked right before every association). */
    private readonly hold: () => HoldView | undefined,
  ) {}

  /** The hold changed (taken, renewed, lost, handed over): look again now. */
  poke(): void {
    this.#wakeup?.poke();
  }

  /** Until `stop` aborts. Never throws. */
  async run(identity: () => Identity | undefined, stop: AbortSignal): Promise<void> {
    const wakeup = (this.#wakeup = new Wakeup(this.edges.sleep, stop));
    while (!stop.aborted) {
      const self = identity();
      const now = this.edges.monotonic();
      const hold = this.hold();
      this.#memory = self ? keeperFor(this.#memory, hold, this.#wanted(self), now, this.settings.leaseMs) : this.#memory;
      const step: KeeperStep = self ? nextKeeperStep(this.#memory, hold, now) : { kind: 'wait' };
      if (step.kind === 'wait') {
        await wakeup.wait((step.until ?? now + IDLE_MS) - now);
        continue;
      }
      const call = step.kind === 'associate' ? this.#associate(self!, step.allocationId) : this.#verify(self!, step.deadline);
      // Only an association asserts anything: a handover waits for it, not for a check.
      if (step.kind === 'associate') this.#associating = call;
      await call.catch((err: Error) => this.edges.logger.error({ err: err.message }, 'ha: Elastic IP step failed; retrying'));
      this.#associating = undefined;
    }
  }

  /**
   * Resolves once the association in flight (if any) has ended and, after
   * one that failed, once EC2 has had as long to apply it anyway as a
   * takeover gives it (the rest of a lease past the confirmed share): a
   * handover waits for this before releasing the lease, since the peer
   * takes a released lease at its next look.
   */
  async settle(): Promise<void> {
    await this.#associating?.catch(() => undefined);
    const wait = this.#failedAt + (1 - CONFIRMED_SHARE) * this.settings.leaseMs - this.edges.monotonic();
    if (wait > 0) await this.edges.sleep(wait, new AbortController().signal);
  }

  /** The addresses of the hold this keeper works for (empty on a standby). */
  status(term: number | undefined, at: (monotonic: number) => string): HaStatus['elasticIps'] {
    if (this.#memory === undefined || this.#memory.term !== term) return [];
    return this.#memory.addresses.map((a) => ({
      allocationId: a.allocationId,
      privateIp: a.privateIp,
      state: a.state,
      ...(a.error === undefined ? {} : { error: a.error }),
      ...(a.heldAt === undefined ? {} : { heldSince: at(a.heldAt) }),
    }));
  }

  #wanted(identity: Identity): { allocationId: string; privateIp: string }[] {
    if (this.settings.listenAddresses) {
      return this.settings.listenAddresses.flatMap((l) => (l.allocationId === undefined ? [] : [{ allocationId: l.allocationId, privateIp: l.address }]));
    }
    return this.settings.elasticIp === undefined ? [] : [{ allocationId: this.settings.elasticIp, privateIp: identity.privateIp }];
  }

  async #associate(identity: Identity, allocationId: string): Promise<void> {
    const memory = this.#memory!;
    const address = memory.addresses.find((a) => a.allocationId === allocationId)!;
    const started = this.edges.monotonic();
    if (!identity.privateIps.includes(address.privateIp)) {
      return this.#failed(allocationId, `${address.privateIp} is not a private address of this instance's interface ${identity.networkInterfaceId} (it has ${identity.privateIps.join(', ')}); check forward.listenAddresses`);
    }
    // The hold, asked again now: nothing is awaited between this check and the call.
    const hold = this.hold();
    if (hold === undefined || hold.term !== memory.term || hold.until - started < MIN_ASSOCIATE_BUDGET_MS) return;
    try {
      await this.edges.addresses.associate({ allocationId, networkInterfaceId: identity.networkInterfaceId, privateIp: address.privateIp }, this.edges.deadline(Math.min(started + EC2_TIMEOUT_MS, hold.until)));
    } catch (err) {
      // Sent and failed: without an answer (a timeout, a reset) EC2 may still apply it.
      this.#failedAt = this.edges.monotonic();
      return this.#failed(allocationId, (err as Error).message);
    }
    const now = this.edges.monotonic();
    if (this.#memory?.term !== memory.term) return;
    this.#memory = afterAssociate(this.#memory, allocationId, { ok: true }, now, this.edges.random());
    this.edges.logger.warn({ allocationId, privateIp: address.privateIp, ms: Math.round(now - started), attempts: address.attempts + 1, term: memory.term }, `ha: Elastic IP ${allocationId} now points at this instance (${address.privateIp})`);
  }

  #failed(allocationId: string, error: string): void {
    const memory = this.#memory;
    if (memory === undefined) return;
    const now = this.edges.monotonic();
    this.#memory = afterAssociate(memory, allocationId, { error }, now, this.edges.random());
    const attempts = this.#memory.addresses.find((a) => a.allocationId === allocationId)?.attempts;
    this.edges.logger.error({ allocationId, attempts, retryInMs: retryInMs(this.#memory, allocationId, now), err: error }, `ha: cannot move Elastic IP ${allocationId} to this instance; retrying (clients cannot reach the pair until it holds)`);
  }

  async #verify(identity: Identity, deadline: number): Promise<void> {
    const memory = this.#memory!;
    let seen: Awaited<ReturnType<AddressMover['describe']>> | undefined;
    try {
      seen = await this.edges.addresses.describe(memory.addresses.map((a) => a.allocationId), this.edges.deadline(deadline));
    } catch (err) {
      this.edges.logger.warn({ err: (err as Error).message }, 'ha: cannot check the Elastic IP association (DescribeAddresses); trying again later');
    }
    if (this.#memory?.term !== memory.term) return;
    const checked = afterVerify(this.#memory, seen, identity.networkInterfaceId, this.edges.monotonic(), this.settings.leaseMs);
    this.#memory = checked.memory;
    for (const e of checked.elsewhere) {
      this.edges.logger.warn({ allocationId: e.allocationId, networkInterfaceId: e.networkInterfaceId, privateIp: e.privateIp }, `ha: Elastic IP ${e.allocationId} no longer points at this leader; associating it again`);
    }
  }
}
