// ami/iam-policy.json grants exactly the AWS API actions the code calls: every
// SDK command or paginator imported anywhere under src/ must be allowed, and
// nothing else may be. The HA code (src/ha/) has its own policy,
// ami/iam-policy-ha.json, added to the role only for an HA pair and scoped
// to the one table.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface SdkUse {
  /** IAM actions as service:Action, e.g. elasticache:DescribeCacheClusters. */
  actions: string[];
  /** Imports this scan cannot see through; each must be rewritten. */
  problems: string[];
}

const SDK_IMPORT = /import\s+(type\s+)?(\{[^}]*\}|\*\s+as\s+\w+)\s*from\s*['"]@aws-sdk\/client-([a-z0-9-]+)['"]/g;

/**
 * Which AWS actions a source file can call through the v3 SDK. The IAM
 * service prefix is the package name without `client-` (client-elasticache ->
 * elasticache). `aggregated` names the all-in-one client classes (e.g.
 * ElastiCache), whose method calls an import list cannot reveal.
 */
function sdkUseIn(source: string, file: string, aggregated: ReadonlySet<string>): SdkUse {
  const actions: string[] = [];
  const problems: string[] = [];
  for (const [, typeOnly, clause, service] of source.matchAll(SDK_IMPORT)) {
    if (typeOnly) continue;
    if (clause!.startsWith('*')) {
      problems.push(`${file}: "import * as" from @aws-sdk/client-${service} hides which commands are used; import each XCommand by name`);
      continue;
    }
    const names = clause!
      .slice(1, -1)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s && !s.startsWith('type '))
      .map((s) => s.split(/\s+as\s+/)[0]!);
    for (const name of names) {
      const command = /^(\w+)Command$/.exec(name)?.[1] ?? /^paginate(\w+)$/.exec(name)?.[1];
      if (command) actions.push(`${service}:${command}`);
      else if (aggregated.has(name)) problems.push(`${file}: ${name} calls AWS through methods this check cannot see; use ${name}Client with XCommand imports`);
    }
  }
  return { actions, problems };
}

const isHaFile = (file: string): boolean => file.startsWith('src/ha/');

/** Every file's SDK use, and the set of all actions used. */
async function sdkUsesIn(files: string[]): Promise<{ uses: (SdkUse & { file: string })[]; used: Set<string> }> {
  const texts = files.map((f) => ({ file: relative(root, f), text: readFileSync(f, 'utf8') }));
  const services = new Set(texts.flatMap(({ text }) => [...text.matchAll(SDK_IMPORT)].map((m) => m[3]!)));
  const aggregated = await aggregatedClients(services);
  const uses = texts.map(({ file, text }) => ({ file, ...sdkUseIn(text, file, aggregated) }));
  return { uses, used: new Set(uses.flatMap((u) => u.actions)) };
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.(ts|js|mts|cts)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

async function aggregatedClients(services: Iterable<string>): Promise<Set<string>> {
  const names = new Set<string>();
  for (const service of services) {
    const exported = Object.keys(await import(`@aws-sdk/client-${service}`));
    for (const name of exported) if (name.endsWith('Client') && exported.includes(name.slice(0, -'Client'.length))) names.add(name.slice(0, -'Client'.length));
  }
  return names;
}

t.test('the scan finds commands and paginators, and only those', async (t) => {
  const aggregated = new Set(['ElastiCache']);
  const source = `
    import type { CacheCluster } from '@aws-sdk/client-elasticache';
    import {
      ElastiCacheClient,
      DescribeCacheClustersCommand,
      paginateDescribeReplicationGroups as pages,
      type DescribeCacheClustersCommandOutput,
      CacheClusterNotFoundFault,
    } from "@aws-sdk/client-elasticache";
    import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
  `;
  t.strictSame(sdkUseIn(source, 'x.ts', aggregated), {
    actions: ['elasticache:DescribeCacheClusters', 'elasticache:DescribeReplicationGroups', 'ec2:DescribeInstances'],
    problems: [],
  });
  t.match(sdkUseIn(`import { ElastiCache } from '@aws-sdk/client-elasticache';`, 'y.ts', aggregated).problems, [/y\.ts: ElastiCache calls AWS/]);
  t.match(sdkUseIn(`import * as ec from '@aws-sdk/client-elasticache';`, 'z.ts', aggregated).problems, [/z\.ts: "import \* as"/]);
});

t.test('ami/iam-policy.json is least privilege', async (t) => {
  const policy = JSON.parse(readFileSync(join(root, 'ami/iam-policy.json'), 'utf8')) as {
    Version: string;
    Statement: Record<string, unknown>[];
  };
  t.equal(policy.Version, '2012-10-17');
  t.ok(Array.isArray(policy.Statement) && policy.Statement.length > 0, 'has statements');

  const granted = new Set<string>();
  for (const [i, statement] of policy.Statement.entries()) {
    t.equal(statement.Effect, 'Allow', `statement ${i} allows (nothing to deny when nothing else is granted)`);
    t.notOk('NotAction' in statement || 'NotResource' in statement, `statement ${i} has no NotAction/NotResource`);
    t.equal(statement.Resource, '*', `statement ${i}: describe calls take no resource ARN`);
    const actions = ([] as unknown[]).concat(statement.Action);
    for (const action of actions) {
      t.match(action, /^[a-z0-9-]+:[A-Za-z0-9]+$/, `statement ${i}: ${String(action)} is one action, no wildcard`);
      t.match(action, /:(Describe|List|Get)/, `statement ${i}: ${String(action)} only reads`);
      granted.add(String(action));
    }
  }

  const files = sourceFiles(join(root, 'src'));
  const { uses, used: usedEverywhere } = await sdkUsesIn(files);
  const used = new Set(uses.filter((u) => !isHaFile(u.file)).flatMap((u) => u.actions));
  t.ok(usedEverywhere.size > used.size, 'the HA files call AWS too, and are checked against their own policy below');

  t.strictSame(uses.flatMap((u) => u.problems), [], 'every AWS call in src/ is visible to this check');
  // The discovery client pages through both describe calls: a scan that
  // finds neither has stopped seeing src/, and the comparison below would be
  // between two empty sets.
  for (const action of ['elasticache:DescribeCacheClusters', 'elasticache:DescribeReplicationGroups']) {
    t.ok(used.has(action), `the scan of ${files.length} files in src/ finds ${action}`);
  }
  t.strictSame([...granted].sort(), [...used].sort(), `the policy grants exactly what src/ calls: ${[...used].sort().join(', ')}`);
});

t.test('ami/iam-policy-ha.json grants exactly what src/ha/ calls, on the one table', async (t) => {
  const policy = JSON.parse(readFileSync(join(root, 'ami/iam-policy-ha.json'), 'utf8')) as { Version: string; Statement: Record<string, unknown>[] };
  t.equal(policy.Version, '2012-10-17');
  const granted = new Set<string>();
  for (const [i, statement] of policy.Statement.entries()) {
    t.equal(statement.Effect, 'Allow', `statement ${i} allows`);
    t.notOk('NotAction' in statement || 'NotResource' in statement, `statement ${i} has no NotAction/NotResource`);
    const actions = ([] as unknown[]).concat(statement.Action).map(String);
    const services = new Set(actions.map((action) => action.split(':')[0]));
    t.equal(services.size, 1, `statement ${i}: one service per statement (${[...services].join(', ')})`);
    if (services.has('dynamodb')) {
      // The table named in ha.table (cachenat by default), in any region and account: never every table.
      t.equal(statement.Resource, 'arn:aws:dynamodb:*:*:table/cachenat', `statement ${i}: the one table`);
    } else {
      // The Elastic IP: DescribeAddresses takes no resource; AssociateAddress names an address and an
      // interface the account's other instances also have, so the role is what limits it.
      t.equal(statement.Resource, '*', `statement ${i}: EC2 address calls`);
      t.same([...services], ['ec2'], `statement ${i}: only DynamoDB and EC2`);
    }
    for (const action of actions) {
      t.match(action, /^(dynamodb|ec2):[A-Za-z]+$/, `statement ${i}: ${action} is one action, no wildcard`);
      granted.add(action);
    }
  }
  const { uses } = await sdkUsesIn(sourceFiles(join(root, 'src', 'ha')));
  const used = new Set(uses.flatMap((u) => u.actions));
  t.strictSame(uses.flatMap((u) => u.problems), [], 'every AWS call in src/ha/ is visible to this check');
  t.ok(used.has('dynamodb:PutItem'), 'the scan of src/ha/ finds the conditional writes');
  t.ok(used.has('ec2:AssociateAddress'), 'the scan of src/ha/ finds the Elastic IP move');
  t.strictSame([...granted].sort(), [...used].sort(), `the HA policy grants exactly what src/ha/ calls: ${[...used].sort().join(', ')}`);
});
