// ami/iam-policy.json grants exactly the AWS API actions the code calls: every
// SDK command or paginator imported anywhere under src/ must be allowed, and
// nothing else may be. The HA code (src/ha/) has its own policies, added to
// the role only for an HA pair: ami/iam-policy-ha.json (the daemon: the one
// table's items, the tagged Elastic IP and instances) and
// ami/iam-policy-ha-setup.json (`cachenat ha init`: create the table).

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

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

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, string>>;
  NotAction?: unknown;
  NotResource?: unknown;
}

const readPolicy = (file: string): { Version: string; Statement: Statement[] } => JSON.parse(readFileSync(join(root, 'ami', file), 'utf8'));

/** The one table named in ha.table (cachenat by default), in any region and account: never every table. */
const TABLE_ARN = 'arn:aws:dynamodb:*:*:table/cachenat';
/** The tag that marks a pair's Elastic IPs and instances (deploy/lib/cachenat-ha-stack.ts tags its instances with it). */
const TAGGED = { StringLike: { 'aws:ResourceTag/cachenat-ha-group': '*' } };

/** Every statement of an HA policy file checked for shape; the actions it grants. */
function haActions(t: Test, file: string): Set<string> {
  const policy = readPolicy(file);
  t.equal(policy.Version, '2012-10-17', `${file}: version`);
  const granted = new Set<string>();
  for (const [i, statement] of policy.Statement.entries()) {
    const where = `${file} statement ${i}`;
    t.equal(statement.Effect, 'Allow', `${where} allows`);
    t.notOk('NotAction' in statement || 'NotResource' in statement, `${where} has no NotAction/NotResource`);
    const actions = ([] as unknown[]).concat(statement.Action).map(String);
    const services = new Set(actions.map((action) => action.split(':')[0]));
    t.equal(services.size, 1, `${where}: one service per statement (${[...services].join(', ')})`);
    for (const action of actions) {
      t.match(action, /^(dynamodb|ec2):[A-Za-z]+$/, `${where}: ${action} is one action, no wildcard`);
      granted.add(action);
    }
    if (services.has('dynamodb')) {
      t.equal(statement.Resource, TABLE_ARN, `${where}: the one table`);
      continue;
    }
    t.same([...services], ['ec2'], `${where}: only DynamoDB and EC2`);
    if (actions.includes('ec2:DescribeAddresses')) {
      t.same(actions, ['ec2:DescribeAddresses'], `${where}: DescribeAddresses alone`);
      t.equal(statement.Resource, '*', `${where}: DescribeAddresses takes no resource`);
      continue;
    }
    // AssociateAddress touches the Elastic IP, the instance and its interface; each is allowed narrowly, as the CDK stack does.
    t.same(actions, ['ec2:AssociateAddress'], `${where}: AssociateAddress alone`);
    const resource = String(statement.Resource);
    t.not(resource, '*', `${where}: AssociateAddress never on every resource`);
    if (/:elastic-ip\/\*$|:instance\/\*$/.test(resource)) t.same(statement.Condition, TAGGED, `${where}: ${resource} only when tagged cachenat-ha-group`);
    else t.match(resource, /^arn:aws:ec2:\*:\*:network-interface\/\*$/, `${where}: the interface (ENIs carry no tag of the pair)`);
  }
  return granted;
}

t.test('ami/iam-policy-ha.json grants exactly what the HA daemon calls, narrowly; ami/iam-policy-ha-setup.json what `ha init` calls', async (t) => {
  const runtime = haActions(t, 'iam-policy-ha.json');
  const setup = haActions(t, 'iam-policy-ha-setup.json');
  const associate = readPolicy('iam-policy-ha.json').Statement.filter((s) => ([] as unknown[]).concat(s.Action).includes('ec2:AssociateAddress')).map((s) => String(s.Resource).split(':').at(-1)!.split('/')[0]);
  t.same(associate.sort(), ['elastic-ip', 'instance', 'network-interface'], 'AssociateAddress on the Elastic IP, the instance and the interface, each its own statement');

  const { uses } = await sdkUsesIn(sourceFiles(join(root, 'src', 'ha')));
  t.strictSame(uses.flatMap((u) => u.problems), [], 'every AWS call in src/ha/ is visible to this check');
  const isSetup = (file: string): boolean => file === 'src/ha/table-setup.ts';
  const daemon = new Set(uses.filter((u) => !isSetup(u.file)).flatMap((u) => u.actions));
  const init = new Set(uses.filter((u) => isSetup(u.file)).flatMap((u) => u.actions));
  t.ok(daemon.has('dynamodb:PutItem') && daemon.has('ec2:AssociateAddress'), 'the scan of src/ha/ finds the conditional writes and the Elastic IP move');
  t.strictSame([...runtime].sort(), [...daemon].sort(), `the daemon's policy grants exactly what src/ha/ calls outside table-setup.ts: ${[...daemon].sort().join(', ')}`);
  t.strictSame([...setup].sort(), [...init].sort(), `the setup policy grants exactly what src/ha/table-setup.ts calls: ${[...init].sort().join(', ')}`);
  t.notOk(runtime.has('dynamodb:CreateTable'), 'the instance role need not create tables');
});
