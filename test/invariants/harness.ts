// Runs one sequence of events through the real Reconciler (planner, port map
// store, recovery, kernel write path and flow flushes together) on one host
// or an HA pair, and checks the invariants after every step:
//
//   I1  no listener serves any target but its owner until reuseAfter after
//       the owner's release; a returning owner gets its listener back when
//       no other owner holds it;
//   I2  a present target's listener never changes unless that listener left
//       the config (or the target leaves a fallback for its own address);
//   I3  every flow flush a move or a revocation needs happens once a kernel
//       write succeeds, across failed writes and restarts;
//   I4  after recovery from kernel rules alone, I1 and I2 still hold;
//   I5  what the writer writes the reader reads back identically, and
//       anything the reader accepts the renderer can render;
//   I6  after a change that no longer admits a flow, that flow is forgotten
//       in the same pass, and the log says how many.

import { Reconciler, type ReconcilerEdges } from '../../src/daemon/reconciler.js';
import { DiscoveryError } from '../../src/core/discovery/types.js';
import type { Logger } from '../../src/log/logger.js';
import type { Resolution } from '../../src/core/model.js';
import { publicSources } from '../../src/core/planner/plaintext-guard.js';
import { recoverState } from '../../src/core/netfilter/recover.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import { OwnershipModel, listenerId, type Listener } from './model.js';
import type { Step } from './steps.js';
import {
  CLIENTS,
  ConntrackTable,
  FaultyNetfilter,
  HOST,
  INITIAL_SETTINGS,
  LOCAL,
  MemoryStore,
  NAMES,
  SOURCES,
  SharedMap,
  UNIVERSE,
  allowedBy,
  catches,
  configOf,
  connect,
  dnatRules,
  resolutionOf,
  type DnsAnswer,
  type Settings,
  type Setup,
} from './world.js';

export class InvariantViolation extends Error {}

export interface RunStats {
  sequences: number;
  steps: number;
  passes: number;
  faults: number;
  /** Restarts with the port map lost: rebuilt from the kernel. */
  recoveries: number;
  flowsOpened: number;
  flowsForgotten: number;
  /** Connections dialled to a released listener (I1 through the kernel). */
  releasedDials: number;
  /** Steps in the longest sequence run. */
  longest: number;
}

export const emptyStats = (): RunStats => ({ sequences: 0, steps: 0, passes: 0, faults: 0, recoveries: 0, flowsOpened: 0, flowsForgotten: 0, releasedDials: 0, longest: 0 });

const START = 1_700_000_000_000;
// Plaintext at first: the alpha node, the group and Memcached.
const INITIAL_TLS = [false, true, false, false, true, true];
const FOREIGN_FLOW = { src: '10.1.0.9', dst: HOST, dport: 6380, targetIp: ipOfName(0), marked: false };

function ipOfName(name: number): string {
  return `10.50.${name}.1`;
}

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** The daemon's log lines, kept as objects (a JSON logger per host costs more than the passes). */
function captureLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (fields: Record<string, unknown> | string, msg?: string): void =>
      void lines.push(typeof fields === 'string' ? { level, msg: fields, fields: {} } : { level, msg: msg ?? '', fields });
  const logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), child: () => logger };
  return logger as unknown as Logger;
}

class Host {
  readonly netfilter = new FaultyNetfilter();
  readonly store = new MemoryStore();
  readonly conntrack = new ConntrackTable();
  reconciler: Reconciler | undefined;
  /** The last answer this host's resolver gave for each name (what its planner saw). */
  readonly dnsSeen = new Map<string, Resolution>();
  /** Each key's addresses its open flows may still go to (its rules', or an unresolved key's last ones). */
  readonly lastServed = new Map<string, string[]>();
  readonly logs: LogLine[] = [];
  readonly logger = captureLogger(this.logs);
  /** The last pass wrote the kernel (or needed not) and forgot what it had to. */
  clean = false;
  /** The map of the last pass whose write reached the kernel: what the kernel must be able to rebuild. */
  kernelState: PortState | undefined;

  constructor(readonly index: number) {
    this.conntrack.flows.push({ ...FOREIGN_FLOW });
  }
}

export class World {
  readonly hosts: Host[];
  readonly shared: SharedMap | undefined;
  model: OwnershipModel;
  /** The model as of the last pass whose map the kernel holds (single host): what a lost map is rebuilt to. */
  private kernelModel: OwnershipModel;
  now = START;
  settings: Settings = INITIAL_SETTINGS;
  listed = new Set(UNIVERSE.map((_, i) => i));
  tls = [...INITIAL_TLS];
  /** TLS as the last complete API answer said (what the plaintext guard judges). */
  tlsSeen = new Map<string, boolean>();
  dns = new Map<number, DnsAnswer>(NAMES.map((_, i) => [i, { ips: [0] }]));
  apiDown = false;
  /** An answer of the test's own for a name (else the name's DnsAnswer). */
  resolveOverride: ((name: string) => Resolution | undefined) | undefined;
  readonly trail: string[] = [];

  constructor(
    readonly setup: Setup,
    readonly stats: RunStats,
    initial: Start = {},
  ) {
    if (initial.settings) this.settings = initial.settings;
    if (initial.listed) this.listed = new Set(initial.listed);
    if (initial.tls) this.tls = [...initial.tls];
    this.hosts = setup.pair ? [new Host(0), new Host(1)] : [new Host(0)];
    this.shared = setup.pair ? new SharedMap() : undefined;
    this.model = new OwnershipModel(setup.reuseAfterMs);
    this.kernelModel = this.model.clone();
  }

  private get leader(): number {
    return this.shared?.leader ?? 0;
  }

  private fail(message: string): never {
    throw new InvariantViolation(`${message}\n  after: ${this.trail.slice(-6).join(' | ')}`);
  }

  private edgesOf(host: Host): ReconcilerEdges {
    const edges: ReconcilerEdges = {
      netfilter: host.netfilter,
      conntrack: host.conntrack,
      source: {
        describe: async () => {
          if (this.apiDown) throw new DiscoveryError('InternalFailure (simulated)', 'InternalFailure', true);
          const targets = [...this.listed].sort((a, b) => a - b).map((i) => {
            const { name: _name, ...target } = UNIVERSE[i]!;
            this.tlsSeen.set(target.key, this.tls[i]!);
            return { ...target, tls: this.tls[i]! };
          });
          return { targets, skipped: [] };
        },
      },
      resolver: {
        resolve: async (name) => {
          const index = NAMES.indexOf(name);
          const answer: Resolution = this.resolveOverride?.(name) ?? (index < 0 ? { ok: true, ip: name } : resolutionOf(index, this.dns.get(index)!));
          host.dnsSeen.set(name, answer);
          return answer;
        },
      },
      store: host.store,
      clock: { now: () => this.now },
      logger: host.logger,
    };
    if (this.shared) edges.ha = this.shared.nodeFor(host.index);
    return edges;
  }

  /**
   * One pass on every host, the leader first. `discover: false` is a pass
   * between API passes, as the daemon makes every dns.interval: it plans
   * from the last kernel read unless it has something to write.
   */
  async passAll(discover = true): Promise<void> {
    const order = this.hosts.map((_, i) => (i + this.leader) % this.hosts.length);
    for (const i of order) await this.pass(this.hosts[i]!, discover);
  }

  private async pass(host: Host, discover: boolean): Promise<void> {
    const config = configOf(this.setup, this.settings);
    host.reconciler ??= new Reconciler(config, this.edgesOf(host));
    host.netfilter.lastWrite = 'none';
    host.conntrack.deleted = 0;
    host.logs.length = 0;
    const unmarkedBefore = host.conntrack.flows.filter((f) => !f.marked).length;
    let report;
    try {
      report = await host.reconciler.pass({ discover, write: true });
    } catch (err) {
      this.fail(`I5: a pass on host ${host.index} threw: ${(err as Error).message}`);
    }
    this.stats.passes++;
    const storeProblem = host.store.problem ?? this.shared?.problem;
    if (storeProblem) this.fail(`I5: host ${host.index}: ${storeProblem}`);
    const write = host.netfilter.lastWrite as FaultyNetfilter['lastWrite']; // the pass set it
    if (write === 'crash-before' || write === 'crash-after') host.reconciler = undefined; // the process died
    else if (report.kernelError && write !== 'fail') this.fail(`a kernel write failed without a fault: ${report.kernelError.message}`);
    host.clean = report.kernelError === undefined;
    const kernelHasIt = host.clean || write === 'crash-after';

    for (const problem of this.model.observe({ state: report.plan.state, settings: this.settings, now: this.now })) this.fail(`host ${host.index}: ${problem}`);
    if (kernelHasIt && !this.shared) this.kernelModel = this.model.clone();
    if (kernelHasIt) host.kernelState = report.plan.state;

    if (host.clean) {
      this.checkFlows(host);
      const logged = host.logs.filter((l) => l.msg.startsWith('forgot ')).reduce((n, l) => n + Number(l.fields.flows), 0);
      if (logged !== host.conntrack.deleted) this.fail(`I6: host ${host.index} deleted ${host.conntrack.deleted} conntrack entries but its log says ${logged}`);
      this.stats.flowsForgotten += host.conntrack.deleted;
    }
    if (host.conntrack.flows.filter((f) => !f.marked).length !== unmarkedBefore) this.fail(`host ${host.index} deleted a flow that is not cachenat's (no connmark)`);
    if (kernelHasIt) this.noteServed(host);
  }

  /** I4: the kernel alone rebuilds the map it was last written with: every listener, fallbacks and quarantines included. */
  private checkRecovery(host: Host): void {
    if (host.kernelState === undefined) return;
    const essence = (state: PortState) => ({
      entries: state.entries.map((e) => [e.key, e.engine, e.listenAddress ?? '', e.listenPort, e.targetPort, e.fallback ?? false, e.tls ?? null].join(' ')),
      released: state.released.map((r) => `${r.port} ${r.key} ${r.releasedAt} ${r.address ?? ''}`),
      releasedAddresses: (state.releasedAddresses ?? []).map((r) => `${r.address}:${r.port ?? '*'} ${r.key} ${r.releasedAt}`),
    });
    const want = JSON.stringify(essence(host.kernelState));
    const got = JSON.stringify(essence(recoverState(host.netfilter.kernel.nat, this.now).state));
    if (want !== got) this.fail(`I4: host ${host.index}: the kernel rebuilds another map than it was written with\n  written: ${want}\n  rebuilt: ${got}`);
  }

  private refused(key: string): boolean {
    const sources = this.settings.sources.map((i) => SOURCES[i]!);
    return this.tlsSeen.get(key) === false && this.settings.plaintext === 'refuse' && publicSources(sources).length > 0;
  }

  private dnsFailing(host: Host, key: string): boolean {
    const name = UNIVERSE.find((u) => u.key === key)!.address;
    return host.dnsSeen.get(name)?.ok === false;
  }

  /** I3, I6: after a clean pass every open flow is one the rules of now admit. */
  private checkFlows(host: Host): void {
    const kernel = host.netfilter.kernel;
    const rules = dnatRules(kernel);
    const sources = this.settings.sources.map((i) => SOURCES[i]!);
    for (const f of host.conntrack.flows) {
      if (!f.marked) continue;
      // conntrack knows no keys: a flow a rule of now still admits (its listener
      // handed on, with no quarantine, to a target at the same address) is that
      // rule's target's flow from here on, and is judged as that target's.
      const admittedBy = rules.find((r) => catches(r, f.dst, f.dport) && r.targetIp === f.targetIp);
      if (admittedBy) f.key = admittedBy.key;
      const key = f.key!;
      const listener = this.model.current.get(key);
      const byRule = admittedBy !== undefined;
      const suspended =
        !rules.some((r) => r.key === key) &&
        this.dnsFailing(host, key) &&
        listener !== undefined &&
        catches({ ...(listener.address === undefined ? {} : { listenAddress: listener.address }), listenPort: listener.port }, f.dst, f.dport) &&
        !this.refused(key) &&
        (host.lastServed.get(key) ?? []).includes(f.targetIp);
      if (!allowedBy(sources, f.src) || !(byRule || suspended)) {
        const why = !allowedBy(sources, f.src) ? `${f.src} is no longer in allowedSources` : `no rule sends ${f.dst}:${f.dport} to ${f.targetIp} now`;
        this.fail(`I3/I6: host ${host.index}: the connection ${f.src} → ${f.dst}:${f.dport} → ${f.targetIp} (${key}) is still open after a clean pass, but ${why}`);
      }
    }
  }

  private noteServed(host: Host): void {
    const rules = dnatRules(host.netfilter.kernel);
    for (const { key } of UNIVERSE) {
      const ips = rules.filter((r) => r.key === key).map((r) => r.targetIp);
      if (ips.length > 0) host.lastServed.set(key, ips);
      else if (!(this.dnsFailing(host, key) && this.model.current.has(key) && !this.refused(key))) host.lastServed.delete(key);
    }
  }

  /** A client dials a listener it was given. */
  private dial(client: number, target: number, released: boolean): void {
    const host = this.hosts[this.leader]!;
    const key = UNIVERSE[target]!.key;
    let listener: Listener | undefined;
    let releasedAt: number | undefined;
    if (!released) listener = this.model.current.get(key);
    else {
      const holding = [...this.model.held.values()].find((h) => h.key === key && h.releasedAt !== undefined && this.now - h.releasedAt < this.setup.reuseAfterMs);
      listener = holding?.listener;
      releasedAt = holding?.releasedAt;
    }
    if (!listener) return;
    const dst = listener.address ?? HOST;
    if (!LOCAL.has(dst)) return;
    const flow = connect(host.netfilter.kernel, CLIENTS[client]!, dst, listener.port);
    if (released) this.stats.releasedDials++;
    if (!flow) return;
    // I1 through the kernel: a client of a released listener never reaches another target within reuseAfter.
    if (released && host.clean && flow.key !== key) {
      if (this.model.held.get(listenerId(listener))?.key === key) {
        this.fail(`I1: a client of ${key} dialled ${listenerId(listener)}, released ${this.now - releasedAt!} ms ago, and reached ${flow.key} (${flow.targetIp})`);
      }
    }
    host.conntrack.flows.push(flow);
    this.stats.flowsOpened++;
  }

  async step(step: Step): Promise<void> {
    this.stats.steps++;
    this.trail.push(JSON.stringify(step));
    const dt = 'dt' in step ? [0, 1000, this.setup.removalGraceMs, this.setup.reuseAfterMs][step.dt]! : 0;
    this.now += dt;
    this.apiDown = false;
    switch (step.t) {
      case 'api':
        this.listed = new Set(step.listed);
        break;
      case 'api-down':
        this.apiDown = true;
        break;
      case 'dns':
        this.dns.set(step.name, step.answer);
        break;
      case 'tls':
        this.tls[step.target] = !this.tls[step.target];
        break;
      case 'config': {
        this.settings = step.settings;
        const config = configOf(this.setup, this.settings);
        for (const host of this.hosts) host.reconciler?.reconfigure(config, this.edgesOf(host)); // SIGHUP
        break;
      }
      case 'connect':
        for (const client of CLIENTS.keys()) this.dial(client, step.target, step.released);
        return;
      case 'fault':
        this.hosts[step.host]!.netfilter.fault = step.fault;
        this.stats.faults++;
        break;
      case 'restart': {
        const host = this.hosts[step.host]!;
        host.reconciler = undefined;
        if (step.loseMap) {
          this.checkRecovery(host);
          host.store.lose();
          this.stats.recoveries++;
          // A lost map is rebuilt from the kernel: what was promised is what the kernel holds.
          if (!this.shared) this.model = this.kernelModel.clone();
        }
        break;
      }
      case 'hand-over':
        this.shared!.handOver();
        break;
      case 'tick':
        break;
    }
    // What does not come from the API is followed by the passes between API passes too.
    await this.passAll(!(step.t === 'dns' || step.t === 'tick' || step.t === 'fault'));
  }
}

/** How a world starts, when not as usual (every target listed, port mode, the first source, plaintext warn). */
export interface Start {
  settings?: Settings;
  /** Indexes into UNIVERSE. */
  listed?: number[];
  /** Each target's in-transit encryption, by UNIVERSE index. */
  tls?: boolean[];
}

/** Runs a sequence from a fresh world (a first pass, then every step); throws InvariantViolation at the first broken invariant. */
export async function runSequence(setup: Setup, steps: readonly Step[], stats: RunStats = emptyStats(), start: Start = {}): Promise<World> {
  const world = new World(setup, stats, start);
  stats.sequences++;
  stats.longest = Math.max(stats.longest, steps.length);
  world.trail.push('(first pass)');
  await world.passAll();
  for (const step of steps) await world.step(step);
  return world;
}
