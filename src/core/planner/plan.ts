// The one planner behind `plan`, `apply` and the daemon loop:
// (config, remembered state, what the API, DNS and kernel say, now) → what to do.
// Pure: all reading happens before, all writing after.

import type { Config } from '../config/schema.js';
import type { Forward, RuleForward, TargetKey } from '../model.js';
import { diffRules, type RuleChanges } from '../netfilter/diff.js';
import { digestRules } from '../netfilter/digest.js';
import type { SavedTable } from '../netfilter/parse-save.js';
import { renderRules, type DesiredRules } from '../netfilter/render.js';
import type { PortState } from '../ports/port-state.js';
import { planFollower, planForwards, type ForwardEvent, type ForwardObservations, type ForwardPolicy } from './plan-forwards.js';
import { plaintextExposures, type PlaintextExposure } from './plaintext-guard.js';

export interface PlanInput extends ForwardObservations {
  config: Config;
  state: PortState;
  installed: { nat: SavedTable; filter: SavedTable };
  now: number;
  /**
   * HA: install `state` exactly as the leader wrote it (planFollower): the
   * standby, and a leader that may not allocate (DynamoDB unreachable).
   */
  follow?: boolean;
}

export interface Plan {
  state: PortState;
  forwards: Forward[];
  rules: DesiredRules;
  rulesDigest: string;
  /** What to write to the kernel; `changes.restore` is null when it already matches. */
  changes: RuleChanges;
  /** Flows to forget because their target moved: clients must reconnect, not hang. */
  movedFlows: { listenAddress?: string; listenPort: number; oldIp: string }[];
  events: ForwardEvent[];
  /** Plaintext caches a public source range may reach (forward.plaintext). */
  plaintext: PlaintextExposure[];
  /** Following (HA): targets the API lists that the map has no listener for yet. */
  waiting?: TargetKey[];
  /** Following (HA): map entries whose listener does not fit this instance's forward config. */
  misfits?: TargetKey[];
}

export const forwardPolicyOf = (config: Config): ForwardPolicy => ({
  ranges: { redis: config.ports.redis, memcached: config.ports.memcached },
  ...(config.forward.listenAddresses ? { listenAddresses: config.forward.listenAddresses.map((l) => l.address) } : {}),
  removalGraceMs: config.discovery.removalGrace,
  reuseAfterMs: config.ports.reuseAfter,
  staleAddressMs: config.discovery.removalGrace,
});

export function planPass(input: PlanInput): Plan {
  const policy = forwardPolicyOf(input.config);
  const followed = input.follow ? planFollower(input.state, input.resolutions, policy, input.now) : undefined;
  const next = followed ?? planForwards(input.state, input, policy, input.now);
  const plaintext = plaintextExposures(next.forwards, input.config.forward.allowedSources, input.config.forward.plaintext);
  const refused = new Set(plaintext.filter((e) => e.action === 'refuse').map((e) => e.key));
  const forwards: Forward[] = next.forwards.map((f) => (refused.has(f.key) ? { ...f, state: 'refused' } : f));
  const ruleForwards: RuleForward[] = forwards.flatMap((f) =>
    f.targetIp === undefined || f.state === 'refused'
      ? []
      : [
          {
            key: f.key,
            engine: f.engine,
            ...(f.listenAddress ? { listenAddress: f.listenAddress } : {}),
            listenPort: f.listenPort,
            targetIp: f.targetIp,
            ...(f.targetIps ? { targetIps: f.targetIps } : {}),
            targetPort: f.targetPort,
          },
        ],
  );
  const rules = renderRules(ruleForwards, {
    inboundInterface: input.config.forward.inboundInterface,
    allowedSources: input.config.forward.allowedSources,
    snat: input.config.forward.snat,
    connmark: input.config.forward.connmark,
  });
  const listenAddressOf = new Map(forwards.flatMap((f) => (f.listenAddress === undefined ? [] : [[f.key, f.listenAddress] as const])));
  const movedFlows = next.events.flatMap((e) => {
    if (e.type !== 'ip-changed') return [];
    const listenAddress = listenAddressOf.get(e.key);
    return [{ ...(listenAddress === undefined ? {} : { listenAddress }), listenPort: e.listenPort, oldIp: e.from }];
  });
  const following = followed ? { misfits: followed.misfits, waiting: waitingTargets(input) } : {};
  return {
    ...following,
    state: next.state,
    forwards,
    rules,
    rulesDigest: digestRules(rules),
    changes: diffRules(rules, input.installed),
    movedFlows,
    events: next.events,
    plaintext,
  };
}

/** The targets the API lists that the followed map has no entry for: they wait for the leader. */
function waitingTargets(input: PlanInput): TargetKey[] {
  const mapped = new Set(input.state.entries.map((e) => e.key));
  return (input.topology?.targets ?? []).filter((t) => !mapped.has(t.key)).map((t) => t.key);
}
