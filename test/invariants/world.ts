// The world the invariant tests run cachenat in: a fixed universe of caches,
// DNS answers, the config of the moment, and honest in-memory stand-ins for
// every edge of the real Reconciler — a kernel that applies restore text the
// way iptables-restore --noflush does and evaluates new connections against
// its rules, a conntrack table with the real filter semantics, the port map
// store with the real codec, and an HA pair's shared map through the real
// DynamoDB item codec. Faults are armed here: a kernel write that fails, a
// crash between saving the map and the kernel write, a crash between the
// kernel write and forgetting the flows.

import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/core/config/schema.js';
import type { DiscoveredTarget, Engine, FlowFilter, Resolution, TargetKind } from '../../src/core/model.js';
import { cidrContains, parseCidr, parseIpv4, type Cidr } from '../../src/core/ipv4.js';
import type { Conntrack, Netfilter } from '../../src/core/netfilter/types.js';
import type { InstalledRules } from '../../src/core/netfilter/diff.js';
import { parseState, serializeState, type LoadedState } from '../../src/core/ports/port-map-codec.js';
import type { PortState } from '../../src/core/ports/port-state.js';
import type { PortMapStore } from '../../src/ports/state-store.js';
import { chunkAttributes, mapHeadAttributes, planMapWrite, readChunkItem, readMapHead, type MapItem } from '../../src/core/ha/items.js';
import { assembleMap } from '../../src/core/ha/map-chunks.js';
import type { CommitOutcome, MapAccess } from '../../src/ha/ha-node.js';
import { applyRestore, emptyKernel, saveText } from '../support/kernel-sim.js';

// ── the universe ───────────────────────────────────────────────────────────

export interface Cache extends DiscoveredTarget {
  /** Index into NAMES. */
  name: number;
}

/** DNS names; the Serverless pair shares one. */
export const NAMES = ['alpha-1.cache.example', 'bravo-1.cache.example', 'grp-primary.cache.example', 'mc-1.cache.example', 'sls.serverless.cache.example'];

const cache = (key: string, kind: TargetKind, engine: Engine, name: number, targetPort: number, ids: Partial<DiscoveredTarget>): Cache => ({
  key, kind, engine, name, address: NAMES[name]!, targetPort, ...ids,
});

/**
 * Six targets, more than the three listen addresses: nodes of three engines,
 * a replication group's primary, a Serverless cache's two endpoints (one name,
 * two ports).
 */
export const UNIVERSE: readonly Cache[] = [
  cache('node/alpha/0001', 'node', 'redis', 0, 6379, { cacheClusterId: 'alpha', cacheNodeId: '0001' }),
  cache('node/bravo/0001', 'node', 'valkey', 1, 6379, { cacheClusterId: 'bravo', cacheNodeId: '0001' }),
  cache('primary/grp', 'primary', 'redis', 2, 6379, { replicationGroupId: 'grp' }),
  cache('node/mc/0001', 'node', 'memcached', 3, 11211, { cacheClusterId: 'mc', cacheNodeId: '0001' }),
  cache('serverless/sls', 'serverless', 'valkey', 4, 6379, { serverlessCacheName: 'sls' }),
  cache('serverless-reader/sls', 'serverless-reader', 'valkey', 4, 6380, { serverlessCacheName: 'sls' }),
];

/** Each name's possible addresses. The group's primary can move onto the alpha node's first address: two names, one address. */
export const ipOf = (name: number, i: number): string => (name === 2 && i === 2 ? ipOf(0, 0) : `10.50.${name}.${i + 1}`);

/** The listen addresses address mode can use (all on the host, in or out of the config). */
export const POOL = ['10.0.9.21', '10.0.9.22', '10.0.9.23'];
/** The address port-mode clients dial (forward.publicAddress's private side). */
export const HOST = '198.18.0.1';
export const LOCAL = new Set([HOST, ...POOL]);

/** allowedSources candidates: two private ranges and one public (the plaintext guard judges it). */
export const SOURCES = ['10.1.0.0/16', '10.2.0.0/16', '203.0.113.0/24'];
/** Clients: one in each range, and one that is never allowed. */
export const CLIENTS = ['10.1.0.5', '10.2.0.5', '203.0.113.5', '198.51.100.5'];

export type DnsAnswer = { ips: number[] } | 'fail' | 'ipv6';

// ── the config of the moment ───────────────────────────────────────────────

export interface Setup {
  removalGraceMs: number;
  reuseAfterMs: number;
  /** First Redis port: 6379, or near the top so the range runs out. */
  redisFrom: number;
  /** Two instances sharing a map (HA), or one. */
  pair: boolean;
}

export interface Settings {
  /** null: port mode; else the pool, in config order (indexes into POOL). */
  pool: number[] | null;
  /** Indexes into SOURCES. */
  sources: number[];
  plaintext: 'allow' | 'warn' | 'refuse';
}

export const INITIAL_SETTINGS: Settings = { pool: null, sources: [0], plaintext: 'warn' };

const base = validateConfig({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['10.1.0.0/16'] }, persist: { rulesFile: 'none' } }, 'invariants').config;

export function configOf(setup: Setup, s: Settings): Config {
  const listenAddresses = s.pool?.map((i) => ({ address: POOL[i]!, public: POOL[i]! }));
  return {
    ...base,
    discovery: { ...base.discovery, removalGrace: setup.removalGraceMs },
    dns: { ...base.dns, interval: 500 },
    forward: {
      ...base.forward,
      allowedSources: s.sources.map((i) => SOURCES[i]!),
      plaintext: s.plaintext,
      ...(listenAddresses ? { listenAddresses } : {}),
    },
    ports: { ...base.ports, redis: setup.redisFrom, memcached: 11211, reuseAfter: setup.reuseAfterMs },
  };
}

// ── edges ──────────────────────────────────────────────────────────────────

/** A kernel write fails (exit 1), or the process dies just before or just after it. */
export type KernelFault = 'fail' | 'crash-before' | 'crash-after';

export class Crash extends Error {}

/** iptables-save/-restore on a simulated kernel, with one armed fault at a time. */
export class FaultyNetfilter implements Netfilter {
  kernel: InstalledRules = emptyKernel();
  fault: KernelFault | undefined;
  /** What the last pass did: no write, a write, or a write the fault stopped. */
  lastWrite: 'none' | 'written' | KernelFault = 'none';

  async save(table: 'nat' | 'filter'): Promise<string> {
    return saveText(this.kernel, table);
  }

  async saveAll(options?: { counters?: boolean }): Promise<string> {
    return saveText(this.kernel, undefined, options?.counters ? new Map() : undefined);
  }

  async restore(text: string): Promise<void> {
    const fault = this.fault;
    this.fault = undefined;
    if (fault === 'fail') {
      this.lastWrite = 'fail';
      throw new Error('iptables-restore --noflush failed with exit code 1 (simulated)');
    }
    if (fault === 'crash-before') {
      this.lastWrite = 'crash-before';
      throw new Crash('killed before the kernel write (simulated)');
    }
    this.kernel = applyRestore(this.kernel, text);
    this.lastWrite = fault ?? 'written';
    if (fault === 'crash-after') throw new Crash('killed after the kernel write (simulated)');
  }
}

/** A TCP connection as conntrack keeps it. */
export interface Flow {
  src: string;
  /** What the client dialled. */
  dst: string;
  dport: number;
  /** Where the DNAT rule sent it. */
  targetIp: string;
  /** It went through cachenat's rules (connmark set). */
  marked: boolean;
  /** The key whose rule sent it (for messages). */
  key?: string;
}

/** conntrack -D with the real filter semantics: -p tcp, --orig-dst, --orig-port-dst, --reply-src, --orig-src (CIDR), --mark. */
export class ConntrackTable implements Conntrack {
  flows: Flow[] = [];
  readonly available = true;
  /** Conntrack entries deleted since the last take(). */
  deleted = 0;

  async forgetFlows(filter: FlowFilter): Promise<number> {
    const cidr = filter.kind === 'source' ? (parseCidr(filter.source) as Cidr) : undefined;
    const matches = (f: Flow): boolean =>
      f.marked &&
      (filter.kind === 'source'
        ? cidrContains(cidr!, parseIpv4(f.src)!)
        : (filter.listenAddress === undefined || f.dst === filter.listenAddress) && f.dport === filter.listenPort && f.targetIp === filter.targetIp);
    const before = this.flows.length;
    this.flows = this.flows.filter((f) => !matches(f));
    this.deleted += before - this.flows.length;
    return before - this.flows.length;
  }
}

/** The state file, through the real codec; every save is read back at once (I5). */
export class MemoryStore implements PortMapStore {
  readonly path = '(memory)/ports.json';
  text: string | undefined;
  private lastWritten: string | undefined;
  /** Set when something the writer wrote did not read back identically. */
  problem: string | undefined;

  async load(): Promise<LoadedState> {
    if (this.text === undefined) return { status: 'missing', state: { version: 1, entries: [], released: [] } };
    const loaded = parseState(this.text);
    if (loaded.status === 'ok') this.lastWritten = this.text;
    return loaded;
  }

  async save(state: PortState): Promise<boolean> {
    const text = serializeState(state);
    if (text === this.lastWritten) return false;
    const back = parseState(text);
    if (back.status !== 'ok') this.problem ??= `the map the daemon wrote does not read back: ${back.status === 'corrupt' ? back.problem : back.status}`;
    else if (serializeState(back.state) !== text) this.problem ??= 'the map the daemon wrote reads back as another map';
    this.text = text;
    this.lastWritten = text;
    return true;
  }

  lose(): void {
    this.text = undefined;
    this.lastWritten = undefined;
  }
}

/** The pair's shared map (DynamoDB), through the real item codec; the lease is the world's to move. */
export class SharedMap {
  item: MapItem | null = null;
  term = 1;
  leader = 0;
  problem: string | undefined;
  private writes = 0;
  /** Chunks read back so far, by content (a chunk never changes). */
  private readonly chunkStates = new Map<string, PortState>();

  nodeFor(host: number) {
    return {
      mapForPass: async (local: PortState): Promise<MapAccess> =>
        host === this.leader ? { mode: 'lead', base: this.item, state: this.item?.state ?? local } : { mode: 'follow', state: this.item?.state ?? local },
      commit: async (base: MapItem | null, planned: PortState): Promise<CommitOutcome> => {
        if (host !== this.leader || base !== this.item) return 'refused';
        const writer = host === 0 ? 'i-0aaaaaaaaaaaaaaaa' : 'i-0bbbbbbbbbbbbbbbb';
        const plan = planMapWrite(base, planned, this.term, writer, `map-${String(++this.writes).padStart(8, '0')}`);
        if (plan.kind === 'unchanged') return 'unchanged';
        if (plan.kind !== 'write' || plan.waiting.length > 0) {
          this.problem ??= `the map cannot be written: ${plan.kind === 'write' ? `no room for ${plan.waiting.join(', ')}` : plan.kind}`;
          return 'refused';
        }
        // Through the real item codec: the head and every chunk as DynamoDB attributes, read back and assembled as a reader does.
        const head = readMapHead('pair', mapHeadAttributes('pair', plan.head));
        if (head.kind !== 'ok') {
          this.problem ??= `the map head the leader wrote does not read back: ${head.kind === 'invalid' ? head.problem : head.kind}`;
          return 'refused';
        }
        const stored = new Map(plan.puts.map((p) => [p.id, chunkAttributes('pair', plan.head.term, p, p.data)]));
        const parts = [];
        for (const ref of head.item.chunks) {
          const known = base?.chunks.some((c) => c.id === ref.id && c.put === ref.put) ? { kind: 'ok' as const, state: this.chunkStates.get(ref.id)! } : readChunkItem('pair', plan.head.term, ref, stored.get(ref.id));
          if (known.kind !== 'ok') {
            this.problem ??= `a chunk the leader wrote does not read back: ${known.kind === 'invalid' ? known.problem : known.kind}`;
            return 'refused';
          }
          this.chunkStates.set(ref.id, known.state);
          parts.push(known.state);
        }
        const map = assembleMap(parts);
        if ('problem' in map) {
          this.problem ??= `the map the leader wrote does not read back: ${map.problem}`;
          return 'refused';
        }
        this.item = { ...head.item, state: map.state };
        return 'written';
      },
      noteFollowed: () => undefined,
    };
  }

  handOver(): void {
    this.leader = 1 - this.leader;
    this.term++;
  }
}

// ── the kernel as a client sees it ────────────────────────────────────────

const PREROUTING = /^-A CACHENAT-PREROUTING (?:-s (\S+) )?-i \S+ -m addrtype --dst-type LOCAL -j CACHENAT-DNAT$/;
const DNAT = /^-A CACHENAT-DNAT (?:-d (\S+)\/32 )?-p tcp -m tcp --dport (\d+) -m comment --comment "cachenat \S+ (\S+)"(?: -m statistic .*?)? -j DNAT --to-destination (\S+):\d+$/;

export interface DnatRule {
  listenAddress?: string;
  listenPort: number;
  key: string;
  targetIp: string;
}

/** The DNAT rules as a packet meets them (this test's own reading of the rule text). */
export function dnatRules(kernel: InstalledRules): DnatRule[] {
  return (kernel.nat.chains.get('CACHENAT-DNAT')?.rules ?? []).flatMap((line) => {
    const m = DNAT.exec(line);
    return m ? [{ ...(m[1] === undefined ? {} : { listenAddress: m[1] }), listenPort: Number(m[2]), key: m[3]!, targetIp: m[4]! }] : [];
  });
}

/** Whether a rule catches a connection to dst:dport. */
export const catches = (r: { listenAddress?: string; listenPort: number }, dst: string, dport: number): boolean =>
  r.listenPort === dport && (r.listenAddress === undefined ? LOCAL.has(dst) : r.listenAddress === dst);

/** Whether the source rules let src in. */
export function sourceAdmitted(kernel: InstalledRules, src: string): boolean {
  return (kernel.nat.chains.get('CACHENAT-PREROUTING')?.rules ?? []).some((line) => {
    const m = PREROUTING.exec(line);
    if (!m) return false;
    const cidr = parseCidr(m[1] ?? '0.0.0.0/0');
    return !('error' in cidr) && cidrContains(cidr, parseIpv4(src)!);
  });
}

/** A new connection from src to dst:dport: the flow the kernel makes of it, or undefined when no forward takes it. */
export function connect(kernel: InstalledRules, src: string, dst: string, dport: number): (Flow & { key: string }) | undefined {
  if (!LOCAL.has(dst) || !sourceAdmitted(kernel, src)) return undefined;
  const rule = dnatRules(kernel).find((r) => catches(r, dst, dport));
  return rule ? { src, dst, dport, targetIp: rule.targetIp, marked: true, key: rule.key } : undefined;
}

/** The config's allowedSources let src in. */
export const allowedBy = (sources: readonly string[], src: string): boolean =>
  sources.some((s) => cidrContains(parseCidr(s) as Cidr, parseIpv4(src)!));

// ── DNS ────────────────────────────────────────────────────────────────────

export function resolutionOf(name: number, answer: DnsAnswer): Resolution {
  if (answer === 'fail') return { ok: false, error: `cannot resolve ${NAMES[name]}: ENOTFOUND` };
  if (answer === 'ipv6') return { ok: false, error: `${NAMES[name]} has only IPv6 addresses`, ipv6Only: true };
  // Sorted by address, as the resolver gives them.
  const ips = [...new Set(answer.ips.map((i) => ipOf(name, i)))].sort((a, b) => parseIpv4(a)! - parseIpv4(b)!);
  return ips.length > 1 ? { ok: true, ip: ips[0]!, ips } : { ok: true, ip: ips[0]! };
}
