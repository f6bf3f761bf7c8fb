// What a V8 heap snapshot (.heapsnapshot, as `--heapsnapshot-signal` writes
// it) holds, in three views a reader can act on:
//   - by kind: compiled code, source text, other strings, objects, arrays, system;
//   - code and source text by package (@aws-sdk/@smithy, zod, pino, …, cachenat
//     itself): a function's bytecode, compiled code and metadata belong to the
//     script it was defined in, a script's source text to that script;
//   - the daemon's own data: the size retained by the biggest objects whose
//     constructor is one of cachenat's classes (the Reconciler's maps, the
//     status snapshot…), from the dominator tree.

export interface HeapBreakdown {
  /** Sum of every object's own size. */
  totalBytes: number;
  byKind: Record<HeapKind, number>;
  /** Code and source text by package, largest first. */
  codeByPackage: { pkg: string; bytes: number; scripts: number }[];
  /** Objects of cachenat's own classes and what each retains, largest first. */
  retainedBy: { name: string; count: number; retainedBytes: number }[];
  /** The constructors with the most own bytes (data, not code), largest first. */
  topConstructors: { name: string; count: number; bytes: number }[];
}

export type HeapKind = 'code' | 'sourceText' | 'strings' | 'objects' | 'arrays' | 'system';

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Which package a script URL belongs to: the first path part after the last node_modules, or ours. */
export function packageOf(url: string, ownRoots: readonly string[]): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const name = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '?');
    // The SDK's clients share one family of runtime packages: one line each for the clients, one for the rest.
    if (name.startsWith('@aws-sdk/client-')) return name;
    if (name.startsWith('@aws-sdk/') || name.startsWith('@smithy/') || name.startsWith('@aws-crypto/') || name === 'fast-xml-parser' || name === 'strnum' || name === 'tslib' || name === 'bowser') return 'AWS SDK runtime (@aws-sdk, @smithy, …)';
    return name;
  }
  if (url.startsWith('node:') || !url.includes('/')) return 'Node.js built-ins';
  for (const root of ownRoots) if (url.includes(root)) return 'cachenat';
  return 'other';
}

const OWN_CLASS = /^(Reconciler|MetricsRecorder|HaNode|StateStore|SystemResolver|IptablesNetfilter|ConntrackTool|ElastiCacheSources?|ConntrackConnectionReader|DynamoHaStore|LabProcess)$/;

export function analyseHeapSnapshot(raw: RawSnapshot, ownRoots: readonly string[] = ['/dist/src/', '/src/']): HeapBreakdown {
  const meta = raw.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nTypes = meta.node_types[0];
  const eTypes = meta.edge_types[0];
  const F = { type: meta.node_fields.indexOf('type'), name: meta.node_fields.indexOf('name'), size: meta.node_fields.indexOf('self_size'), edges: meta.node_fields.indexOf('edge_count') };
  const E = { type: meta.edge_fields.indexOf('type'), name: meta.edge_fields.indexOf('name_or_index'), to: meta.edge_fields.indexOf('to_node') };
  const { nodes, edges, strings } = raw;
  const count = nodes.length / nf;
  const type = (i: number) => nTypes[nodes[i * nf + F.type]!]!;
  const name = (i: number) => strings[nodes[i * nf + F.name]!]!;
  const size = (i: number) => nodes[i * nf + F.size]!;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e;
    e += nodes[i * nf + F.edges]! * ef;
  }
  firstEdge[count] = edges.length;
  const edgeName = (e: number) => (eTypes[edges[e + E.type]!] === 'element' || eTypes[edges[e + E.type]!] === 'hidden' ? '' : strings[edges[e + E.name]!]!);
  const edgeTo = (e: number) => edges[e + E.to]! / nf;
  const edgeType = (e: number) => eTypes[edges[e + E.type]!]!;

  const edgesNamed = (i: number, wanted: string): number => {
    for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += ef) if (edgeName(e) === wanted) return edgeTo(e);
    return -1;
  };
  // A script is a code node named by its URL, with its source text and line ends.
  const scriptPkg = new Map<number, string>();
  const owner = new Int32Array(count).fill(-1); // the script a code or source node belongs to
  for (let i = 0; i < count; i++) {
    if (type(i) !== 'code' || edgesNamed(i, 'line_ends') === -1) continue;
    const source = edgesNamed(i, 'source');
    if (source === -1) continue;
    scriptPkg.set(i, packageOf(name(i), ownRoots));
    owner[i] = i;
    owner[source] = i;
  }
  // A function's metadata (SharedFunctionInfo) names its script.
  const roots: number[] = [];
  for (let i = 0; i < count; i++) {
    if (type(i) !== 'code' || owner[i] !== -1) continue;
    const script = edgesNamed(i, 'script');
    if (script === -1 || !scriptPkg.has(script)) continue;
    owner[i] = script;
    roots.push(i);
  }
  // Closures belong to their function's script.
  for (let i = 0; i < count; i++) {
    if (type(i) !== 'closure') continue;
    const sfi = edgesNamed(i, 'shared');
    if (sfi === -1 || owner[sfi] === -1) continue;
    owner[i] = owner[sfi]!;
    roots.push(i);
  }
  // Everything of type code reached from them (bytecode, compiled code, scope
  // info, feedback, line ends) belongs to the same script, unless claimed first.
  for (const root of roots) {
    const queue = [root];
    for (let n = queue.pop(); n !== undefined; n = queue.pop()) {
      for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) {
        const to = edgeTo(e);
        if (owner[to] !== -1 || type(to) !== 'code' || edgeType(e) === 'weak') continue;
        owner[to] = owner[root]!;
        queue.push(to);
      }
    }
  }

  const byKind: Record<HeapKind, number> = { code: 0, sourceText: 0, strings: 0, objects: 0, arrays: 0, system: 0 };
  const pkgBytes = new Map<string, { bytes: number; scripts: Set<number> }>();
  let total = 0;
  for (let i = 0; i < count; i++) {
    const s = size(i);
    total += s;
    const t = type(i);
    const script = owner[i]!;
    if (script !== -1) {
      const pkg = scriptPkg.get(script)!;
      const entry = pkgBytes.get(pkg) ?? { bytes: 0, scripts: new Set<number>() };
      entry.bytes += s;
      entry.scripts.add(script);
      pkgBytes.set(pkg, entry);
      if (t === 'string' || t === 'concatenated string' || t === 'sliced string') byKind.sourceText += s;
      else byKind.code += s;
      continue;
    }
    if (t === 'code' || t === 'closure') byKind.code += s;
    else if (t === 'string' || t === 'concatenated string' || t === 'sliced string') byKind.strings += s;
    else if (t === 'array') byKind.arrays += s;
    else if (t === 'object' || t === 'regexp' || t === 'number' || t === 'bigint' || t === 'symbol' || t === 'native') byKind.objects += s;
    else byKind.system += s;
  }

  const constructors = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < count; i++) {
    if (type(i) !== 'object' || owner[i] !== -1) continue;
    const n = name(i);
    const entry = constructors.get(n) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += size(i);
    constructors.set(n, entry);
  }

  const retained = retainedSizes(count, firstEdge, edgeTo, edgeType, ef, size);
  const own = new Map<string, { count: number; retainedBytes: number }>();
  for (let i = 0; i < count; i++) {
    if (type(i) !== 'object' || !OWN_CLASS.test(name(i))) continue;
    const entry = own.get(name(i)) ?? { count: 0, retainedBytes: 0 };
    entry.count++;
    entry.retainedBytes += retained[i]!;
    own.set(name(i), entry);
  }

  return {
    totalBytes: total,
    byKind,
    codeByPackage: [...pkgBytes].map(([pkg, v]) => ({ pkg, bytes: v.bytes, scripts: v.scripts.size })).sort((a, b) => b.bytes - a.bytes),
    retainedBy: [...own].map(([n, v]) => ({ name: n, ...v })).sort((a, b) => b.retainedBytes - a.retainedBytes),
    topConstructors: [...constructors].map(([n, v]) => ({ name: n, ...v })).sort((a, b) => b.bytes - a.bytes).slice(0, 12),
  };
}

/**
 * Retained size of every node: its own size plus that of every node it
 * dominates (reachable from the root, node 0, only through it). Dominators by
 * the iterative algorithm of Cooper, Harvey and Kennedy over a reverse
 * postorder; weak edges do not retain.
 */
function retainedSizes(
  count: number,
  firstEdge: Uint32Array,
  edgeTo: (e: number) => number,
  edgeType: (e: number) => string,
  ef: number,
  size: (i: number) => number,
): Float64Array {
  const order = new Int32Array(count).fill(-1); // postorder number
  const post: number[] = [];
  const stack: number[] = [0];
  const cursor = new Uint32Array(count);
  const seen = new Uint8Array(count);
  seen[0] = 1;
  cursor[0] = firstEdge[0]!;
  while (stack.length > 0) {
    const n = stack[stack.length - 1]!;
    let pushed = false;
    while (cursor[n]! < firstEdge[n + 1]!) {
      const e = cursor[n]!;
      cursor[n] = e + ef;
      if (edgeType(e) === 'weak') continue;
      const to = edgeTo(e);
      if (seen[to]) continue;
      seen[to] = 1;
      cursor[to] = firstEdge[to]!;
      stack.push(to);
      pushed = true;
      break;
    }
    if (!pushed) {
      order[n] = post.length;
      post.push(n);
      stack.pop();
    }
  }
  const preds: number[][] = Array.from({ length: count }, () => []);
  for (const n of post) {
    for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) {
      if (edgeType(e) === 'weak') continue;
      const to = edgeTo(e);
      if (seen[to]) preds[to]!.push(n);
    }
  }
  const idom = new Int32Array(count).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (order[a]! < order[b]!) a = idom[a]!;
      while (order[b]! < order[a]!) b = idom[b]!;
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let k = post.length - 1; k >= 0; k--) {
      const n = post[k]!;
      if (n === 0) continue;
      let dom = -1;
      for (const p of preds[n]!) if (idom[p] !== -1) dom = dom === -1 ? p : intersect(p, dom);
      if (dom !== -1 && idom[n] !== dom) {
        idom[n] = dom;
        changed = true;
      }
    }
  }
  const retained = new Float64Array(count);
  for (const n of post) retained[n] = (retained[n] ?? 0) + size(n);
  for (const n of post) if (n !== 0 && idom[n]! >= 0) retained[idom[n]!] = retained[idom[n]!]! + retained[n]!;
  return retained;
}
