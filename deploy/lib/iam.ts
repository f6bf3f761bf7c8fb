// The instance role's permissions come from the policy files in ami/: the one
// list of the AWS calls the daemon makes (test/ami/iam-policy.test.ts keeps
// them in step with src/). Each action is granted on the narrowest resource
// IAM allows for this deployment; an action this file does not know how to
// scope stops the synth, so a new call in src/ is placed here on purpose.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { aws_dynamodb as dynamodb, aws_iam as iam } from 'aws-cdk-lib';

/** The tag that marks the pair's instances; AssociateAddress is allowed only on instances carrying it. */
export const HA_GROUP_TAG = 'cachenat-ha-group';

/**
 * What a running daemon needs: discovery and the pair. Setting up (creating
 * the table) is not among them: the stack makes the table, or it is passed in.
 */
export const RUNTIME_POLICY_FILES = ['iam-policy.json', 'iam-policy-ha.json'] as const;

/** ami/ of this repository, found from this module (deploy/lib/ in source, deploy/dist/…/lib/ compiled). */
export function amiDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'ami', RUNTIME_POLICY_FILES[0]))) return join(dir, 'ami');
    if (dirname(dir) === dir) throw new Error(`no ami/${RUNTIME_POLICY_FILES[0]} above ${fileURLToPath(import.meta.url)}: the constructs read the IAM policy files of the cachenat repository`);
  }
}

/** Every action the runtime policy files grant, in file order, without duplicates. */
export function policyActions(dir = amiDir()): string[] {
  const actions = new Set<string>();
  for (const file of RUNTIME_POLICY_FILES) {
    const policy = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { Statement?: { Effect?: unknown; Action?: unknown }[] };
    for (const statement of policy.Statement ?? []) {
      if (statement.Effect !== 'Allow') throw new Error(`ami/${file}: only Allow statements are expected, got ${JSON.stringify(statement.Effect)}`);
      for (const action of ([] as unknown[]).concat(statement.Action ?? [])) {
        if (typeof action !== 'string' || !/^[a-z0-9-]+:[A-Za-z0-9]+$/.test(action)) {
          throw new Error(`ami/${file}: ${JSON.stringify(action)} is not one IAM action (no wildcards)`);
        }
        actions.add(action);
      }
    }
  }
  return [...actions];
}

export interface ScopeTargets {
  table: dynamodb.ITable;
  /** The Elastic IP's allocation id. */
  allocationId: string;
  haGroup: string;
}

/** One statement per action (or per action and resource type), each as narrow as IAM allows. */
export function statementsFor(scope: Stack, actions: readonly string[], r: ScopeTargets): iam.PolicyStatement[] {
  const statements: iam.PolicyStatement[] = [];
  const ec2Arn = (resource: string, resourceName: string): string => scope.formatArn({ service: 'ec2', resource, resourceName });
  for (const action of actions) {
    const [service, name] = action.split(':') as [string, string];
    if ((service === 'elasticache' && name.startsWith('Describe')) || action === 'ec2:DescribeAddresses') {
      // Describe calls take no resource ARN.
      statements.push(new iam.PolicyStatement({ actions: [action], resources: ['*'] }));
    } else if (service === 'dynamodb') {
      statements.push(new iam.PolicyStatement({ actions: [action], resources: [r.table.tableArn] }));
    } else if (action === 'ec2:AssociateAddress') {
      // Every resource of the request must be allowed: this Elastic IP, an
      // instance of this pair (by tag), and a network interface in this
      // account and region (interfaces carry no tag of the pair).
      statements.push(
        new iam.PolicyStatement({ actions: [action], resources: [ec2Arn('elastic-ip', r.allocationId)] }),
        new iam.PolicyStatement({
          actions: [action],
          resources: [ec2Arn('instance', '*')],
          conditions: { StringEquals: { [`aws:ResourceTag/${HA_GROUP_TAG}`]: r.haGroup } },
        }),
        new iam.PolicyStatement({ actions: [action], resources: [ec2Arn('network-interface', '*')] }),
      );
    } else {
      throw new Error(`deploy/lib/iam.ts does not know how to scope ${action} (from ami/): add it to statementsFor`);
    }
  }
  return statements;
}
