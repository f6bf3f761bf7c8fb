// One instance's view of its HA pair, as the status snapshot, `status`,
// `health` and the metrics show it.

/**
 * leader: holds the lease, confirmed on its own clock (it may allocate, write
 * the map and move the Elastic IP). leader-unconfirmed: holds it as far as it
 * knows, but its last renewal is too old (DynamoDB does not answer, or the
 * host was suspended): it asserts nothing until a renewal is accepted, and
 * the standby may have taken over. standby, or starting (no identity or no
 * first look at the lease yet).
 */
export type HaRole = 'leader' | 'leader-unconfirmed' | 'standby' | 'starting';

export interface HaStatus {
  role: HaRole;
  /** When this instance took its present role (ISO 8601). */
  roleSince: string;
  group: string;
  leaseMs: number;
  /** Leader with a confirmed hold: it may allocate and write the map. */
  mayAllocate: boolean;
  instanceId?: string;
  /** IMDSv2 could not be read: the instance stands by until it can. */
  identityError?: string;
  /** Leader (confirmed or not): when its hold was last confirmed (the send of its last accepted renewal), and until when it stays confirmed without another. */
  hold?: { confirmedAt: string; confirmedUntil: string };
  /** The lease as last read: its holder (null: released), its term, and when its version last changed (on this instance's clock). */
  lease?: { holder: string | null; term?: number; changedAt: string };
  /** The shared map as last read or written; room: how full its fullest chunk is (a share of the most it may hold). */
  map?: { version: string; term: number; writer: string; entries: number; chunks?: number; room?: number };
  /** Other instances of the group, and when their heartbeat last changed. */
  peers: { instanceId: string; role: 'leader' | 'standby' | 'stopped'; lastSeenAt: string }[];
  /** The config keys whose values differ from a running peer's: while they do, a free lease goes only to the instance the shared map was written under (else the lower instance id). */
  configDiffers?: { peer: string; keys: string[] };
  /** The confirmed leader's Elastic IPs (none while its lease is not confirmed: the standby may have moved them). */
  elasticIps: { allocationId: string; privateIp: string; state: 'held' | 'associating' | 'failed'; error?: string; heldSince?: string }[];
  /** DynamoDB does not answer (since when): forwarding goes on with the last map. */
  storeError?: { error: string; since: string };
  /** Targets the API lists that have no port yet while this instance follows the map. */
  waiting: number;
  /** Leader: new targets the map had no room for (named, the first few). */
  noRoom?: string[];
  /** Map entries that do not fit this instance's forward config. */
  misfits: string[];
}
