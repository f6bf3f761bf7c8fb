// Every counterexample the simulation found, kept as a named scenario that
// runs on every CI run. Each names the invariant it broke and the code it
// broke (the HA node before issue 19's changes, unless said otherwise). The
// scenarios are written out whole, not as seeds, so they keep their meaning
// when the scenario generator changes.

import type { CallFaults, Scenario } from './scenario.js';

const quiet = (): Record<'dynamodb' | 'ec2', CallFaults> => ({ dynamodb: { slow: 0, appliedLost: 0, lost: 0 }, ec2: { slow: 0, appliedLost: 0, lost: 0 } });
const host = (over: Partial<Scenario['hosts'][number]> = {}): Scenario['hosts'][number] => ({ rate: 1, wallSkew: 0, startAt: 0, calls: quiet(), ...over });

export interface Counterexample {
  name: string;
  /** What it broke, and where it came from. */
  broke: string;
  scenario: Scenario;
}

export const COUNTEREXAMPLES: Counterexample[] = [
  {
    name: 'partial partition: the leader loses DynamoDB and keeps EC2 (issue 19, finding 1)',
    broke: 'only a confirmed leader says leader; with it ignored, the address moves at most once per term (ping-pong by verify)',
    scenario: {
      seed: 1901,
      leaseMs: 6000,
      healAt: 60_000,
      durationMs: 100_000,
      hosts: [host(), host({ startAt: 500 })],
      partitions: [{ host: 0, service: 'dynamodb', direction: 'both', from: 5000, to: 60_000 }],
      freezes: [],
      handovers: [],
      targets: 3,
    },
  },
  {
    name: 'a leader paused inside a beat resumes after the takeover (issue 19, finding 2)',
    broke: 'AssociateAddress only under a confirmed hold',
    scenario: {
      seed: 1902,
      leaseMs: 4000,
      healAt: 30_000,
      durationMs: 60_000,
      hosts: [host(), host({ startAt: 500 })],
      // Host 0 leads; its first association fails (the EC2 call is lost), so it is retrying when it pauses past the lease.
      partitions: [{ host: 0, service: 'ec2', direction: 'requests', from: 0, to: 3000 }],
      freezes: [{ host: 0, from: 3000, ms: 12_000, suspend: false }],
      handovers: [],
      targets: 2,
    },
  },
  {
    name: 'a suspended leader wakes with its monotonic clock stopped (issue 19, finding 8)',
    broke: 'never two confirmed leaders',
    scenario: {
      seed: 1903,
      leaseMs: 3000,
      healAt: 30_000,
      durationMs: 60_000,
      hosts: [host(), host({ startAt: 500 })],
      freezes: [{ host: 0, from: 4000, ms: 9000, suspend: true }],
      partitions: [],
      handovers: [],
      targets: 2,
    },
  },
  {
    name: 'every DynamoDB call of the leader answered just before its timeout (issue 19, finding 5)',
    broke: 'slow calls alone never cause a takeover',
    scenario: {
      seed: 1904,
      leaseMs: 3000,
      healAt: 30_000,
      durationMs: 60_000,
      // The standby starts once the slow one leads.
      hosts: [host({ calls: { dynamodb: { slow: 1, slowShare: [0.9, 0.99], appliedLost: 0, lost: 0 }, ec2: { slow: 0, appliedLost: 0, lost: 0 } } }), host({ startAt: 4000 })],
      partitions: [],
      freezes: [],
      handovers: [],
      targets: 2,
    },
  },
  {
    name: 'a handover whose release lands but whose answer is lost (issue 19, finding 6)',
    broke: 'never two confirmed leaders',
    scenario: {
      seed: 1905,
      leaseMs: 4000,
      healAt: 30_000,
      durationMs: 60_000,
      hosts: [host(), host({ startAt: 500 })],
      partitions: [{ host: 0, service: 'dynamodb', direction: 'answers', from: 9000, to: 12_000 }],
      freezes: [],
      handovers: [10_000],
      targets: 2,
    },
  },
];
