// The CLI's modules import each other without cycles (commands/index.ts and
// the command files once did), and the modules `health` and `status` load
// never pull in the AWS SDK: they run over SSH and must start fast.

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../src');
const IMPORT = /(?:import|export)\s+(type\s)?[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/**
 * file → the files and packages it imports. `runtime`: only what loading the
 * module loads (no `import type`, which the compiler erases, nor import()).
 */
function importGraph(runtime: boolean): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const targets: string[] = [];
    for (const [, typeOnly, staticSpec, dynamicSpec, bareSpec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (runtime && (typeOnly || dynamicSpec)) continue;
      const spec = (staticSpec ?? dynamicSpec ?? bareSpec)!;
      targets.push(spec.startsWith('.') ? resolve(dirname(file), spec).replace(/\.js$/, '.ts') : spec);
    }
    graph.set(file, targets);
  }
  return graph;
}

t.test('no import cycle through src/cli', async (t) => {
  const graph = importGraph(false); // type imports too: a cycle of types still ties the modules together
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (path.includes(file)) {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' → '));
      return;
    }
    for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file]);
  };
  const cliFiles = [...graph.keys()].filter((f) => f.startsWith(join(SRC, 'cli')));
  t.ok(cliFiles.length >= 10, `${cliFiles.length} files under src/cli`);
  for (const file of cliFiles) visit(file, []);
  t.same([...new Set(cycles)], []);
});

t.test('health and status load no AWS SDK module', async (t) => {
  const graph = importGraph(true);
  const reached = (roots: string[]) => {
    const seen = new Set<string>();
    const walk = (f: string) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const next of graph.get(f) ?? []) walk(next);
    };
    roots.forEach(walk);
    return seen;
  };
  for (const command of ['health', 'status']) {
    const loaded = reached(['cli/main.ts', 'cli/cli.ts', `cli/commands/${command}.ts`].map((f) => join(SRC, f)));
    t.ok(loaded.size > 5, `${command}: ${loaded.size} modules`);
    t.same([...loaded].filter((m) => m.startsWith('@aws-sdk/')), [], command);
  }
  t.ok([...reached([join(SRC, 'cli/edges.ts')])].some((m) => m.startsWith('@aws-sdk/')), 'the check can see the SDK where it is loaded');
});

// The DynamoDB and EC2 clients hold more memory than the rest of the daemon
// (about 3.5 MB of code and 50 MB of RSS at start, BENCHMARKS.md §4): a daemon
// without `ha` must not load them. import() of src/ha/build-node.ts is the
// only way in.
t.test('run, apply and plan without ha load no DynamoDB or EC2 client', async (t) => {
  const graph = importGraph(true);
  const reached = new Set<string>();
  const walk = (f: string) => {
    if (reached.has(f)) return;
    reached.add(f);
    for (const next of graph.get(f) ?? []) walk(next);
  };
  for (const f of ['cli/main.ts', 'cli/cli.ts', 'cli/edges.ts', 'cli/process-io.ts', ...readdirSync(join(SRC, 'cli/commands')).map((c) => `cli/commands/${c}`)]) walk(join(SRC, f));
  t.ok(reached.size > 40, `${reached.size} modules`);
  t.ok([...reached].includes('@aws-sdk/client-elasticache'), 'the ElastiCache client is loaded (the check sees SDK packages)');
  t.same([...reached].filter((m) => /^@aws-sdk\/client-(ec2|dynamodb)$/.test(m)), []);
  t.notOk(reached.has(join(SRC, 'ha/build-node.ts')), 'build-node.ts is only imported on demand');
});
