// One reconcile pass: read everything (API, DNS, kernel), plan, then write
// (state first, kernel second, then the side effects that follow a change).
// A pass between API passes with nothing written since the last kernel read
// plans from that read, and reads again only before it writes (needsRead).
//
// The write path, in order (each step is safe to die after):
//   1. flows the kernel records as still to forget (an earlier pass died or
//      conntrack failed after its write) are forgotten;
//   2. the port map is saved (a crash before the kernel write re-applies the
//      same ports on restart);
//   3. one `iptables-restore --noflush` writes the rules together with the
//      kernel's copy of the map and a record of each flow the change takes
//      away (CACHENAT-MAP);
//   4. only then are those flows forgotten (forgetFlows, the one place that
//      deletes conntrack entries); the next write clears their records.
// A failed or missing write leaves the kernel as it was: the next pass
// compares it with what it wants again and finds the same flows to forget.

import type { Config } from '../core/config/schema.js';
import { formatDuration } from '../core/config/duration.js';
import type { Resolution, TargetKind, Topology } from '../core/model.js';
import { DiscoveryError, type CacheSource, type Resolver } from '../core/discovery/types.js';
import { DNS_PASS_BUDGET_MS, resolveWithin } from '../discovery/resolver.js';
import type { Logger } from '../log/logger.js';
import type { InstalledRules } from '../core/netfilter/diff.js';
import { recoverState } from '../core/netfilter/recover.js';
import { flowFilterId, pendingForgets } from '../core/netfilter/map-chain.js';
import { pendingToForget } from '../core/flows/forget.js';
import { flowReasonOf, type FlowFilter, type FlowReason } from '../core/model.js';
import { readInstalledRulesCounted, type CountedRead } from '../netfilter/owned-rules.js';
import { sameInstalledRules } from '../core/netfilter/installed.js';
import type { Conntrack, Netfilter } from '../core/netfilter/types.js';
import { planHoldsUntil, planPass, type Plan, type PlanInput } from '../core/planner/plan.js';
import { sameJson } from '../core/same-json.js';
import type { PortState } from '../core/ports/port-state.js';
import type { PortMapStore } from '../ports/state-store.js';
import { describeEvent, describeFlows } from '../core/daemon/events.js';
import { noteSourceFailures, notePlaintext } from './source-warnings.js';
import type { DnatPackets } from '../core/metrics/rule-counters.js';
import type { HaNode } from '../ha/ha-node.js';

/** Passes on the daemon's beat start a few ms more or less than one interval apart. */
const ANSWER_SLACK_MS = 50;

export interface Clock {
  now(): number;
}

export interface ReconcilerEdges {
  netfilter: Netfilter;
  conntrack: Conntrack;
  source: CacheSource;
  resolver: Resolver;
  store: PortMapStore;
  clock: Clock;
  logger: Logger;
  /** Saves the full ruleset for reboot; absent when persistence is off. */
  persistRules?: () => Promise<void>;
  /** HA pair: the shared map decides what is planned from, and only its leader allocates. */
  ha?: Pick<HaNode, 'mapForPass' | 'commit' | 'noteFollowed'>;
}

export interface PassOptions {
  /** Ask the API this pass (otherwise the last complete answer is reused). */
  discover: boolean;
  /** false for `cachenat plan`: compute everything, change nothing. */
  write: boolean;
}

export interface PassReport {
  plan: Plan;
  discovery: { status: 'ok' } | { status: 'skipped' } | { status: 'failed'; error: DiscoveryError };
  /** The kernel was written this pass. */
  applied: boolean;
  kernelError?: Error;
  durationMs: number;
  /** The DNAT rules' packet counters (new connections per forward), from this pass's kernel read. */
  dnatPackets?: DnatPackets;
  /** Conntrack entries deleted this pass, by reason. */
  flowsForgotten: Record<FlowReason, number>;
}

export class Reconciler {
  private state: PortState | undefined;
  private topology: Topology | undefined;
  lastSyncAt: number | undefined;
  lastSyncError: DiscoveryError | undefined;
  private warnedNoConntrack = false;
  private warnedEmptyAnswer = false;
  /** Writes that are failing now (port map, rules file), for the status snapshot and health. */
  readonly diskErrors = new Map<'state' | 'rules', string>();
  /** Standing warnings for the status snapshot and health (a missing permission, plaintext exposure), by topic. */
  readonly warnings = new Map<string, string>();
  /** The persisted ruleset may differ from the kernel: true at start and after a change, until a save succeeds. */
  private persistPending = true;
  /** Each name's last answer, so a name is looked up at most once per its period (refreshPeriods) however often passes run. */
  private answers = new Map<string, { at: number; answer: Resolution }>();
  /**
   * The kernel as the last read showed it, when, and whether it recorded flows
   * still to forget; undefined until the first read and after anything that
   * may have changed it (a write, a reload). See needsRead.
   */
  private view: { installed: InstalledRules; at: number; quiet: boolean } | undefined;
  /** The state the port map was last saved from (states are never changed once planned). */
  private saved: PortState | undefined;
  /** The last kernel read: its rules without counters, and what they parsed to. */
  private lastRead: CountedRead | undefined;
  /** The last plan, while it holds (heldPlan), with what it was made from. */
  private held: { plan: Plan; until: number; topology: Topology | undefined; installed: InstalledRules; config: Config; resolutions: ReadonlyMap<string, Resolution> } | undefined;
  /** The targets without a port as last logged: said when the set changes, not every pass (health and metrics show it meanwhile). */
  private withoutPort: readonly string[] = [];
  /** Flows forgotten (by flowFilterId) whose records the kernel still holds: the next write clears them. */
  private flushed = new Set<string>();

  constructor(
    private config: Config,
    private edges: ReconcilerEdges,
  ) {}

  /** A new config (SIGHUP) and the edges built from it; memory of ports and topology stays. */
  reconfigure(config: Config, edges: ReconcilerEdges): void {
    this.config = config;
    this.edges = edges;
    this.topology = undefined; // filters may have changed: wait for a fresh answer before removing anything
    this.view = undefined;
  }

  get forwardsKnown(): number {
    return this.state?.entries.length ?? 0;
  }

  async pass(options: PassOptions): Promise<PassReport> {
    const { clock, logger } = this.edges;
    const started = performance.now();
    const startedAt = clock.now();
    const local = this.state ?? (await this.loadState());
    // The last read, if nothing was written since and it recorded nothing to forget.
    const last = this.view?.quiet && this.flushed.size === 0 ? this.view.installed : undefined;
    // The kernel read, when this pass makes one, starts now and runs beside the API call and the lookups.
    const reading = options.discover || this.needsRead(startedAt) ? this.readKernel(startedAt) : undefined;
    reading?.catch(() => undefined); // awaited below, where a failure is thrown
    // HA: the shared map is what everyone plans from; the standby follows it as it is.
    const access = this.edges.ha ? await this.edges.ha.mapForPass(local) : undefined;
    const state = access?.state ?? local;

    let discovery: PassReport['discovery'] = { status: 'skipped' };
    let answered = true;
    if (options.discover) {
      try {
        const answer = await this.edges.source.describe();
        // An answer equal to the last keeps the last one's object, so a plan made from it is recognised as still holding (heldPlan).
        this.topology = this.topology !== undefined && sameJson(answer, this.topology) ? this.topology : answer;
        // Sources whose call failed are held as they were (the planner sees `held`); a
        // failure other than a missing optional permission still counts as a failed sync.
        const failed = noteSourceFailures(answer.failures ?? [], this.warnings, logger);
        if (failed === undefined) {
          this.lastSyncAt = clock.now();
          this.lastSyncError = undefined;
          discovery = { status: 'ok' };
        } else {
          this.lastSyncError = failed;
          discovery = { status: 'failed', error: failed };
        }
        for (const skipped of answer.skipped) logger.debug({ where: skipped.where }, `skipped: ${skipped.reason}`);
        if (answer.held === undefined) this.warnIfEverythingVanished(answer, state);
      } catch (err) {
        const error = err instanceof DiscoveryError ? err : new DiscoveryError(String(err), 'Internal', true, { cause: err });
        this.lastSyncError = error;
        discovery = { status: 'failed', error };
        answered = false;
      }
    }
    // Fail-static: without an answer this pass, membership does not change.
    const topology = answered ? this.topology : undefined;

    const resolutions = await this.resolve(this.refreshPeriods(state, topology), startedAt);

    const flowsForgotten = { moved: 0, revoked: 0 };
    let planned: PlanInput | undefined; // the input of the last plan made
    const planFrom = (installed: InstalledRules, overrides: { state?: PortState; follow?: boolean } = {}) => {
      planned = { config: this.config, state, topology, resolutions, installed, now: clock.now(), flushed: this.flushed, follow: access?.mode === 'follow', ...overrides };
      return planPass(planned);
    };
    // The last plan, if it still holds for a plan from these rules (heldPlan).
    const reuse = (installed: InstalledRules) => this.heldPlan({ state, topology, installed, resolutions, now: clock.now(), ha: access !== undefined });
    let counted: DnatPackets | undefined;
    const fresh = async (read: Promise<CountedRead>) => {
      const { installed, dnatPackets } = await read;
      counted = dnatPackets;
      if (options.write) await this.forgetPending(installed, flowsForgotten);
      return installed;
    };
    let installed: InstalledRules;
    let plan: Plan;
    if (reading) {
      // While the read is in flight, plan from the last one: when the kernel
      // turns out unchanged, that plan is the plan of this read too, as the
      // planner is pure.
      const early = last && (reuse(last) ?? planFrom(last));
      installed = await fresh(reading);
      plan = early && sameInstalledRules(installed, last) ? early : planFrom(installed);
    } else {
      // Between the passes that read, nothing was written since the last read:
      // plan from it, and read the kernel again before anything is written.
      installed = last!;
      plan = reuse(installed) ?? planFrom(installed);
      if (plan.changes.restore !== null || plan.forget.length > 0) {
        installed = await fresh(this.readKernel(clock.now()));
        plan = planFrom(installed);
      }
    }
    // The leader installs only a map DynamoDB accepted: otherwise it follows the map it read.
    if (options.write && access?.mode === 'lead') {
      const committed = await this.edges.ha!.commit(access.base, plan.state);
      // Written without the new targets the map had no room for: install what was written, naming the rest as waiting.
      if (typeof committed === 'object') plan = planFrom(installed, { state: committed.trimmed, follow: true });
      else if (committed === 'refused' || committed === 'unavailable') plan = planFrom(installed, { follow: true });
    }
    const until = planned && !access ? planHoldsUntil(planned, plan) : undefined;
    if (planned) this.held = until === undefined ? undefined : { plan, until, topology, installed, config: this.config, resolutions };
    if (plan.misfits) this.edges.ha?.noteFollowed(plan.waiting?.length ?? 0, plan.misfits);
    else this.edges.ha?.noteFollowed(0, []);
    notePlaintext(plan.plaintext, this.warnings, logger);
    this.noteWithoutPort(plan.withoutPort);

    const report: PassReport = { plan, discovery, applied: false, durationMs: 0, flowsForgotten };
    if (counted) report.dnatPackets = counted;
    if (options.write) await this.write(plan, report);
    report.durationMs = performance.now() - started;
    return report;
  }

  private async write(plan: Plan, report: PassReport): Promise<void> {
    const { logger } = this.edges;
    // State first: if we die between the two writes, the next start re-applies
    // the same ports instead of handing them out again.
    try {
      // A plan reused from an earlier pass (heldPlan) carries the very state already saved: nothing to compare.
      if (plan.state !== this.saved) await this.edges.store.save(plan.state);
      this.saved = plan.state;
      this.diskErrors.delete('state');
    } catch (err) {
      this.diskErrors.set('state', `cannot save the port map ${this.edges.store.path}: ${(err as Error).message}`);
      logger.error({ err: (err as Error).message, path: this.edges.store.path }, 'cannot save the port map; forwarding continues, ports stay in memory. Check that state.dir is writable and the disk has space');
    }
    this.state = plan.state;
    for (const event of plan.events) {
      const { level, message, fields } = describeEvent(event);
      logger[level](fields, message);
    }
    if (plan.changes.restore !== null) {
      this.view = undefined; // written or not, the next pass reads the kernel again
      try {
        await this.edges.netfilter.restore(plan.changes.restore);
        report.applied = true;
      } catch (err) {
        report.kernelError = err as Error;
        return; // the next pass re-reads the kernel and diffs from scratch: a full resync, the same flows to forget
      }
    }
    // The rules that no longer admit these flows are in the kernel now (or were already).
    for (const filter of plan.forget) await this.forgetFlows(filter, report.flowsForgotten);
    if (plan.forget.length > 0 && !this.edges.conntrack.available && !this.warnedNoConntrack) {
      this.warnedNoConntrack = true;
      logger.warn('the conntrack tool is missing: connections to a moved target, or whose access was taken away, keep going until they close. Install conntrack (conntrack-tools on Amazon Linux)');
    }
    if (!report.applied) return this.persist();
    for (const chain of plan.changes.leftoversKept) {
      logger.warn({ chain }, `left the old chain ${chain} in place because a rule cachenat does not own still jumps to it; remove that jump and cachenat deletes the chain`);
    }
    this.persistPending = true;
    await this.persist();
  }

  private noteWithoutPort(keys: readonly string[]): void {
    if (keys.join() === this.withoutPort.join()) return;
    if (keys.length > 0) {
      this.edges.logger.warn({ targets: keys }, `${keys.length} target${keys.length === 1 ? '' : 's'} found no free port and ${keys.length === 1 ? 'is' : 'are'} not forwarded (${keys.join(', ')}); lower ports.redis / ports.memcached or exclude clusters`);
    } else {
      this.edges.logger.info('every target has a port again');
    }
    this.withoutPort = keys;
  }

  /** Flows an earlier write took away whose forgetting the kernel still records as pending (that pass died, or conntrack failed). */
  private async forgetPending(installed: InstalledRules, counts: Record<FlowReason, number>): Promise<void> {
    const recorded = pendingForgets(installed.nat);
    if (recorded.length === 0 && this.flushed.size === 0) return; // the usual pass: nothing recorded, nothing to tidy
    const ids = new Set(recorded.map(flowFilterId));
    for (const id of this.flushed) if (!ids.has(id)) this.flushed.delete(id); // the kernel no longer records it
    for (const filter of pendingToForget(installed.nat, this.flushed)) await this.forgetFlows(filter, counts);
  }

  /**
   * The one place that deletes conntrack entries: one set of flows, with why
   * (filter.cause; its reason is moved or revoked). Counted in the report and
   * logged with how many; a failure leaves the flows recorded in the kernel
   * for the next pass.
   */
  private async forgetFlows(filter: FlowFilter, counts: Record<FlowReason, number>): Promise<void> {
    const { logger } = this.edges;
    const reason = flowReasonOf(filter.cause);
    const what = describeFlows(filter);
    const fields =
      filter.kind === 'source'
        ? { reason, cause: filter.cause, source: filter.source }
        : { reason, cause: filter.cause, ...(filter.listenAddress === undefined ? {} : { listenAddress: filter.listenAddress }), listenPort: filter.listenPort, targetIp: filter.targetIp };
    try {
      const flows = await this.edges.conntrack.forgetFlows(filter);
      this.flushed.add(flowFilterId(filter));
      counts[reason] += flows;
      logger[flows > 0 ? 'info' : 'debug']({ ...fields, flows }, `forgot ${flows} ${flows === 1 ? 'connection' : 'connections'} ${what}`);
    } catch (err) {
      logger.warn({ ...fields, err: (err as Error).message }, `could not forget the connections ${what}; retrying next pass. Until then their clients stay on them`);
    }
  }

  /**
   * An answer that suddenly lists nothing while forwards exist is legal (it
   * only starts the removal grace) but is more often a wrong aws.region or
   * include filter than a fleet deleted at once: say so, once per episode.
   */
  private warnIfEverythingVanished(topology: Topology, state: PortState): void {
    const vanished = topology.targets.length === 0 && state.entries.some((e) => e.goneSince === undefined);
    if (vanished && !this.warnedEmptyAnswer) {
      this.edges.logger.warn(
        { region: this.config.aws.region, include: this.config.discovery.include, forwards: state.entries.length },
        `the ElastiCache API lists no caches at all; every forward starts its removal grace (${formatDuration(this.config.discovery.removalGrace)}). If the caches still exist, check aws.region and discovery.include`,
      );
    }
    this.warnedEmptyAnswer = topology.targets.length === 0;
  }

  /** Saves the ruleset for reboot; a failed save is retried on the following passes, not only after the next change. */
  private async persist(): Promise<void> {
    if (!this.persistPending || !this.edges.persistRules) return;
    try {
      await this.edges.persistRules();
      this.persistPending = false;
      this.diskErrors.delete('rules');
    } catch (err) {
      this.diskErrors.set('rules', `cannot save the ruleset for reboot (persist.rulesFile): ${(err as Error).message}`);
      this.edges.logger.error({ err: (err as Error).message }, 'cannot save the ruleset for reboot (persist.rulesFile); forwarding continues, but a reboot would lose the rules until cachenat starts');
    }
  }

  /**
   * Every name to resolve, and how long its answer holds. A failover repoints
   * primary, reader, configuration and Serverless names without any node
   * changing: they are asked every dns.interval. A node's own name changes
   * address only when the node is replaced, which takes minutes: it is asked
   * every discovery.interval (or dns.interval, if that is longer). At 1000
   * nodes that is most of the names, and lookups were most of the daemon's
   * CPU (BENCHMARKS.md §4). A name that failed to resolve is asked every
   * dns.interval until it answers.
   */
  private refreshPeriods(state: PortState, topology: Topology | undefined): Map<string, number> {
    const { dns, discovery } = this.config;
    const periods = new Map<string, number>();
    const add = (address: string, kind: TargetKind) => {
      const period = kind === 'node' ? Math.max(dns.interval, discovery.interval) : dns.interval;
      periods.set(address, Math.min(period, periods.get(address) ?? Infinity));
    };
    for (const e of state.entries) add(e.address, e.kind);
    for (const t of topology?.targets ?? []) add(t.address, t.kind);
    return periods;
  }

  /**
   * This pass's DNS answers. A pass can come sooner than a name's period
   * after the last one (a reload, a retry); reusing a younger answer then keeps a name
   * that flaps between two addresses from moving its rule more than once per
   * period. Answers are dated from the start of their pass, not from the
   * lookup, which a discovery pass delays by the API call: the daemon's beat
   * runs from pass starts, and an answer that looked a few ms too young on the
   * next beat would be kept for a whole extra interval.
   */
  private async resolve(periods: Map<string, number>, now: number): Promise<Map<string, Resolution>> {
    const names = [...periods.keys()];
    const age = (name: string) => this.answers.get(name)?.at ?? -Infinity;
    const stale = names.filter((name) => {
      const last = this.answers.get(name);
      const period = last?.answer.ok === false ? this.config.dns.interval : periods.get(name)!;
      return !(now - age(name) < period - ANSWER_SLACK_MS);
    });
    // Oldest answers first: when the budget runs out, the names left over are the ones asked most recently.
    stale.sort((a, b) => age(a) - age(b));
    const { answers: fresh, unasked } = await resolveWithin(stale, this.edges.resolver, { budgetMs: DNS_PASS_BUDGET_MS });
    const due = new Set(stale);
    const answers = new Map<string, { at: number; answer: Resolution }>();
    let silent = 0;
    for (const name of names) {
      const previous = this.answers.get(name);
      const answer = fresh.get(name);
      const noAnswer = due.has(name) && (answer === undefined || (!answer.ok && answer.noAnswer === true));
      if (noAnswer) silent++;
      // Silence is no news: the last answer stands (fail-static), dated as it was, so the name is asked again next pass.
      if (noAnswer && previous) answers.set(name, previous);
      else if (answer) answers.set(name, { at: now, answer });
      else if (previous) answers.set(name, previous);
    }
    this.answers = answers; // names no longer asked for are forgotten
    this.noteDnsSilence(silent, stale.length, unasked.length);
    return new Map([...answers].map(([name, { answer }]) => [name, answer]));
  }

  /**
   * The last plan again, when it changed nothing and nothing it was made from
   * has changed since but the clock, before the state's next deadline
   * (planHoldsUntil): planning it again would give the same plan. At 1000
   * forwards this spares a quiet pass the planner's rendering and diffing.
   */
  private heldPlan(inputs: { state: PortState; topology: Topology | undefined; installed: InstalledRules; resolutions: ReadonlyMap<string, Resolution>; now: number; ha: boolean }): Plan | undefined {
    const held = this.held;
    if (held === undefined || inputs.ha || this.flushed.size > 0 || inputs.now >= held.until) return undefined;
    if (held.plan.state !== inputs.state || held.topology !== inputs.topology || held.installed !== inputs.installed || held.config !== this.config) return undefined;
    if (held.resolutions.size !== inputs.resolutions.size) return undefined;
    for (const [name, answer] of inputs.resolutions) if (!sameJson(answer, held.resolutions.get(name))) return undefined;
    return held.plan;
  }

  /**
   * Whether a pass that does not ask the API must read the kernel before it
   * plans. It need not when nothing was written since the last read, that read
   * is younger than discovery.interval and recorded no flows still to forget:
   * the pass then plans from that read and reads again only if the plan has
   * something to write (kube-proxy's partial syncs). At 1000 forwards this
   * spares most passes an iptables-save of both tables and its parsing, most
   * of a quiet daemon's CPU. Rules removed by someone else are then put back
   * by the next pass that reads: the next API pass, or one discovery.interval
   * after the last read however the API fares.
   */
  private needsRead(now: number): boolean {
    if (this.view === undefined || !this.view.quiet || this.flushed.size > 0) return true;
    return now - this.view.at >= Math.max(this.config.dns.interval, this.config.discovery.interval) - ANSWER_SLACK_MS;
  }

  /**
   * One read of both tables, with the DNAT rules' counters (they feed the
   * metrics); `at` dates it. A read whose rules are those of the last read
   * (counters aside) is not parsed again: it returns the last read's object,
   * which also tells the planner's callers that nothing changed.
   */
  private async readKernel(at: number): Promise<CountedRead> {
    const read = await readInstalledRulesCounted(this.edges.netfilter, this.lastRead);
    this.lastRead = read;
    this.view = { installed: read.installed, at, quiet: pendingForgets(read.installed.nat).length === 0 };
    return read;
  }

  /** A resolver that does not answer is a standing warning (health WARNING) while it lasts, logged once per episode. */
  private noteDnsSilence(silent: number, asked: number, unasked: number): void {
    const { logger } = this.edges;
    if (silent === 0) {
      if (this.warnings.delete('dns')) logger.info('DNS answers again: every endpoint name due for a lookup was answered');
      return;
    }
    const budget = unasked > 0 ? ` (${unasked} of them not asked before the pass's ${DNS_PASS_BUDGET_MS / 1000} s DNS budget ran out)` : '';
    const message = `DNS: ${silent} of ${asked} endpoint names due for a lookup got no answer${budget}; their forwards keep their last addresses and the names are asked again next pass. Check the resolver in /etc/resolv.conf (in a VPC, the base address +2)`;
    if (!this.warnings.has('dns')) logger.warn({ silent, asked, unasked }, message);
    this.warnings.set('dns', message);
  }

  private async loadState(): Promise<PortState> {
    const { store, logger, clock } = this.edges;
    const loaded = await store.load();
    if (loaded.status === 'ok') {
      this.state = loaded.state;
      return loaded.state;
    }
    const { installed } = await this.readKernel(clock.now());
    const { state, from } = recoverState(installed.nat, clock.now());
    const rebuilt = `rebuilt ${state.entries.length} ports${state.released.length + (state.releasedAddresses?.length ?? 0) > 0 ? ` and ${state.released.length + (state.releasedAddresses?.length ?? 0)} quarantined listeners` : ''} from ${from === 'map' ? "the kernel's copy of the map" : 'the installed rules'}`;
    if (loaded.status === 'corrupt') {
      logger.warn({ path: store.path, problem: loaded.problem }, `the port map is unreadable; ${rebuilt}`);
    } else if (state.entries.length > 0 || from === 'map') {
      logger.warn({ path: store.path }, `no port map on disk; ${rebuilt}`);
    }
    this.state = state;
    return state;
  }
}
