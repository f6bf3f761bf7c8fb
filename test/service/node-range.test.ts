// One supported Node range, stated in package.json's engines, and every other
// place that names a Node version agrees with it: the AWS SDK packages in the
// lockfile, @types/node, ami/install.sh's check of a release's runtime, and
// scripts/ensure-node.sh (the Node the README commands and CI run on, and the
// runtime scripts/package.sh puts in every release; the AMI takes it from
// there). test/service/package.test.ts checks the runtime inside a real
// tarball.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFile(repo + path, 'utf8');

type Version = [number, number, number];

/** ">=22.12.0" -> [22, 12, 0]; only the plain lower-bound form is accepted. */
function floorOf(range: string): Version | undefined {
  const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

function atLeast(have: Version, want: Version): boolean {
  for (let i = 0; i < 3; i++) if (have[i] !== want[i]) return have[i]! > want[i]!;
  return true;
}

const pkg = JSON.parse(await read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
const lock = JSON.parse(await read('package-lock.json')) as { packages: Record<string, { engines?: { node?: string } | string[] }> };
const floor = floorOf(pkg.engines.node);

t.test('engines is a plain floor at Node 22.12 or later', async (t) => {
  t.ok(floor, `engines.node "${pkg.engines.node}" is a ">=x.y.z" floor`);
  t.ok(floor && atLeast(floor, [22, 12, 0]), `engines floor ${floor?.join('.')} is at least 22.12.0 (Node 20 is past end of life)`);
  const root = lock.packages['']?.engines;
  t.same(floorOf(root && !Array.isArray(root) ? (root.node ?? '') : ''), floor, 'the lockfile root repeats the same engines');
});

t.test("the lockfile's AWS SDK packages accept every Node our floor allows", async (t) => {
  let checked = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!/node_modules\/@(aws-sdk|smithy|aws-crypto)\//.test(path)) continue;
    const range = entry.engines && !Array.isArray(entry.engines) ? entry.engines.node : undefined;
    if (range === undefined) continue;
    const theirs = floorOf(range);
    t.ok(theirs, `${path}: engines.node "${range}" is a ">=" floor this test understands`);
    if (theirs && floor) t.ok(atLeast(floor, theirs), `${path} needs Node ${range}; our floor ${floor.join('.')} meets it`);
    checked++;
  }
  // The SDK client alone pulls in well over ten such packages.
  t.ok(checked >= 10, `${checked} AWS SDK packages with engines.node checked`);
});

t.test('@types/node describes the floor major', async (t) => {
  const major = /^\^?(\d+)\./.exec(pkg.devDependencies['@types/node'] ?? '')?.[1];
  t.equal(Number(major), floor?.[0], `@types/node ${pkg.devDependencies['@types/node']} is for Node ${floor?.[0]}`);
});

t.test('the AMI takes its Node from the release; install.sh refuses a runtime below the floor', async (t) => {
  const packer = await read('ami/cachenat.pkr.hcl');
  t.notMatch(packer, /\bnodejs\d*\b/, 'ami/cachenat.pkr.hcl installs no distro nodejs package');
  t.match(packer, /release\/cachenat-\$\{local\.version\}-linux-\$\{local\.node_arch\[var\.arch\]\}\.tar\.gz/, 'it uploads the release of its architecture');

  const install = await read('ami/install.sh');
  const major = /\bNODE_MAJOR=(\d+)/.exec(install)?.[1];
  const minor = /\bNODE_MINOR=(\d+)/.exec(install)?.[1];
  t.same([Number(major), Number(minor)], floor?.slice(0, 2), "ami/install.sh refuses a release runtime below the engines floor");
});

t.test('scripts/package.sh bundles the runtime ensure-node.sh pins', async (t) => {
  const script = await read('scripts/package.sh');
  t.match(script, /source scripts\/ensure-node\.sh/, 'package.sh takes NODE_PINNED from ensure-node.sh');
  t.match(script, /runtime=\$\(node_runtime_dir "\$arch"\)/, 'and the runtime from its node_runtime_dir');
});

t.test('scripts/ensure-node.sh brings a Node inside the range', async (t) => {
  const script = await read('scripts/ensure-node.sh');
  const scriptFloor = /^NODE_FLOOR=(\S+)$/m.exec(script)?.[1];
  const pinned = /^NODE_PINNED=(\S+)$/m.exec(script)?.[1];
  t.same(floorOf(`>=${scriptFloor}`), floor, `NODE_FLOOR ${scriptFloor} is the engines floor`);
  const pinnedVersion = floorOf(`>=${pinned}`);
  t.ok(pinnedVersion && floor && atLeast(pinnedVersion, floor), `NODE_PINNED ${pinned} satisfies engines ${pkg.engines.node}`);
  t.equal(pinnedVersion?.[0], floor?.[0], `NODE_PINNED ${pinned} is the engines floor's major (${floor?.[0]})`);
});
