// One instance's view of its HA pair, as the status snapshot, `status`,
// `health` and the metrics show it.

export interface HaStatus {
  role: 'leader' | 'standby' | 'starting';
  /** When this instance took its present role (ISO 8601). */
  roleSince: string;
  group: string;
  leaseMs: number;
  /** Leader with a confirmed hold: it may allocate and write the map. */
  mayAllocate: boolean;
  instanceId?: string;
  /** IMDSv2 could not be read: the instance stands by until it can. */
  identityError?: string;
  /** The lease as last read: its holder (null: released), its term, and when its version last changed (on this instance's clock). */
  lease?: { holder: string | null; term?: number; changedAt: string };
  /** The shared map as last read or written. */
  map?: { version: string; term: number; writer: string; entries: number };
  /** Other instances of the group, and when their heartbeat last changed. */
  peers: { instanceId: string; role: 'leader' | 'standby'; lastSeenAt: string }[];
  /** The leader's Elastic IPs. */
  elasticIps: { allocationId: string; privateIp: string; state: 'held' | 'associating' | 'failed'; error?: string; heldSince?: string }[];
  /** DynamoDB does not answer (since when): forwarding goes on with the last map. */
  storeError?: { error: string; since: string };
  /** Targets the API lists that have no port yet while this instance follows the map. */
  waiting: number;
  /** Map entries that do not fit this instance's forward config. */
  misfits: string[];
}
