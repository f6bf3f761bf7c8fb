// The one planner behind `plan`, `apply` and the daemon loop:
// (config, remembered state, what the API, DNS and kernel say, now) → what to do.
// Pure: all reading happens before, all writing after.

import type { Config } from '../config/schema.js';
import type { FlowFilter, Forward, RuleForward, TargetKey } from '../model.js';
import { desiredAdmissions, flowsToForget, installedAdmissions } from '../flows/forget.js';
import { pendingForgets, renderMapChain } from '../netfilter/map-chain.js';
import { MAP_CHAIN } from '../grammar.js';
import { diffRules, type RuleChanges } from '../netfilter/diff.js';
import { digestRules } from '../netfilter/digest.js';
import type { SavedTable } from '../netfilter/parse-save.js';
import { renderRules, type DesiredRules } from '../netfilter/render.js';
import type { PortState } from '../ports/port-state.js';
import { nextChangeAt, planFollower, planForwards, type ForwardEvent, type ForwardObservations, type ForwardPolicy } from './plan-forwards.js';
import { sameJson } from '../same-json.js';
import { plaintextExposures, type PlaintextExposure } from './plaintext-guard.js';
import { parseCidr, type Cidr } from '../ipv4.js';

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
  /** Flows to forget (by flowFilterId) that this process already forgot since the kernel recorded them. */
  flushed?: ReadonlySet<string>;
}

export interface Plan {
  state: PortState;
  forwards: Forward[];
  rules: DesiredRules;
  rulesDigest: string;
  /** What to write to the kernel; `changes.restore` is null when it already matches. */
  changes: RuleChanges;
  /**
   * Flows to forget once these rules are in the kernel: their target moved
   * (clients must reconnect, not hang) or access to it was taken away. The
   * kernel records them in the same write until they are forgotten.
   */
  forget: FlowFilter[];
  events: ForwardEvent[];
  /** Plaintext caches a public source range may reach (forward.plaintext). */
  plaintext: PlaintextExposure[];
  /** Targets the API lists that found no free port: ports.redis / ports.memcached up to 65535 are all taken. */
  withoutPort: TargetKey[];
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

/**
 * Whether `plan` (made from `input`) changed nothing, and until when planning
 * the same inputs again gives the same plan: a plan that writes nothing,
 * forgets nothing, logs nothing and leaves the state as it was holds until
 * the state's next deadline (nextChangeAt). Undefined: it must be made again.
 */
export function planHoldsUntil(input: PlanInput, plan: Plan): number | undefined {
  if (input.follow || plan.changes.restore !== null || plan.forget.length > 0 || plan.events.length > 0 || !sameJson(plan.state, input.state)) return undefined;
  return nextChangeAt(plan.state, forwardPolicyOf(input.config));
}

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
  const forget = flowsToForget({
    installed: installedAdmissions(input.installed.nat, rules.nat['CACHENAT-DNAT']),
    desired: desiredAdmissions(forwards, canonicalSources(input.config.forward.allowedSources)),
    forwards,
    moves: next.events.flatMap((e) => (e.type === 'ip-changed' ? [{ key: e.key, from: e.from }] : [])),
    pending: pendingForgets(input.installed.nat),
    flushed: input.flushed ?? new Set(),
  });
  // The kernel carries the whole map, and the flows still to forget, in the same write as the rules.
  rules.nat[MAP_CHAIN] = renderMapChain(next.state, forget);
  const following = followed ? { misfits: followed.misfits, waiting: waitingTargets(input) } : {};
  return {
    ...following,
    state: next.state,
    forwards,
    rules,
    rulesDigest: digestRules(rules),
    changes: diffRules(rules, input.installed),
    forget,
    withoutPort: next.events.flatMap((e) => (e.type === 'ports-exhausted' ? [e.key] : [])).sort(),
    events: next.events,
    plaintext,
  };
}

/** allowedSources as the source rules hold them (renderRules has validated them). */
const canonicalSources = (sources: readonly string[]): string[] => sources.map((s) => (parseCidr(s) as Cidr).text);

/** The targets the API lists that the followed map has no entry for: they wait for the leader. */
function waitingTargets(input: PlanInput): TargetKey[] {
  const mapped = new Set(input.state.entries.map((e) => e.key));
  return (input.topology?.targets ?? []).filter((t) => !mapped.has(t.key)).map((t) => t.key);
}
