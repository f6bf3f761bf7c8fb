// Where a daemon's main thread spent its time, from a V8 CPU profile
// (.cpuprofile, as `node --cpu-prof` writes it at exit): self time by package
// and by function, and the share of garbage collection and of the runtime's
// own work ("(program)"). Idle time is left out of the shares.

import { packageOf } from './heap-snapshot.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface CpuBreakdown {
  /** Wall time the profile covers. */
  wallMs: number;
  /** Main-thread time not idle. */
  busyMs: number;
  byPackage: { pkg: string; ms: number }[];
  topFunctions: { fn: string; where: string; ms: number }[];
  /** Time under each of these callers (inclusive), to tell the pass's parts apart. */
  spans: { name: string; ms: number }[];
}

/** Functions whose inclusive time says what part of a pass the thread was in. */
const SPANS: readonly [label: string, match: (fn: string, url: string) => boolean][] = [
  ['DNS lookups (resolveAll)', (fn) => fn === 'resolveAll'],
  ['ElastiCache API (describe)', (fn, url) => fn === 'describe' && url.includes('elasticache-source')],
  ['kernel read: parse iptables-save', (fn) => fn === 'installedFromSave' || fn === 'dnatPacketCounts'],
  ['planner (planPass)', (fn) => fn === 'planPass'],
  ['spawning programs (runCommand)', (fn) => fn === 'runCommand'],
  ['conntrack -L (metrics/status)', (fn) => fn === 'activeByDestination' || fn === 'activeConnectionsByDestination'],
  ['port map save', (fn, url) => fn === 'save' && url.includes('state-store')],
  ['status snapshot', (fn) => fn === 'writeSnapshotFile' || fn === 'snapshotOf'],
];

/**
 * `window`: only samples taken between these instants (CLOCK_MONOTONIC in µs,
 * the clock of the profile's timestamps and of process.hrtime), to leave out
 * start-up and the heap snapshot.
 */
export function analyseCpuProfile(profile: CpuProfile, window?: { fromUs: number; toUs: number }, ownRoots: readonly string[] = ['/dist/src/', '/src/']): CpuBreakdown {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // A sample's time is the delta to the next sample.
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  let idleUs = 0;
  const pkgUs = new Map<string, number>();
  const fnUs = new Map<string, { fn: string; where: string; us: number }>();
  const spanUs = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const pkg = functionName.startsWith('(') ? functionName : url === '' ? 'V8/Node.js native' : packageOf(url, ownRoots);
    pkgUs.set(pkg, (pkgUs.get(pkg) ?? 0) + us);
    const where = url === '' ? '' : `${url.slice(url.lastIndexOf('/') + 1)}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'} ${where}`;
    const entry = fnUs.get(key) ?? { fn: functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    fnUs.set(key, entry);
    // Inclusive spans: count this sample once for each span that is on its stack.
    const hit = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      for (const [label, match] of SPANS) if (match(frame.functionName, frame.url)) hit.add(label);
    }
    for (const label of hit) spanUs.set(label, (spanUs.get(label) ?? 0) + us);
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  return {
    wallMs: window ? (Math.min(window.toUs, profile.endTime) - Math.max(window.fromUs, profile.startTime)) / 1000 : (profile.endTime - profile.startTime) / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    byPackage: [...pkgUs].map(([pkg, us]) => ({ pkg, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
    topFunctions: [...fnUs.values()].map((f) => ({ fn: f.fn, where: f.where, ms: f.us / 1000 })).sort((a, b) => b.ms - a.ms).slice(0, 25),
    spans: SPANS.map(([label]) => ({ name: label, ms: (spanUs.get(label) ?? 0) / 1000 })),
  };
}
