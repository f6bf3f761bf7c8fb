// The CDK app: one stack, an HA pair of cachenat NAT instances. Every input is
// CDK context with a default (deploy/lib/settings.ts, deploy/README.md), so
// `cdk synth` runs offline with no AWS account or credentials.

import { App } from 'aws-cdk-lib';
import { CachenatHaStack } from '../lib/cachenat-ha-stack.ts';
import { haSettings } from '../lib/settings.ts';

const app = new App();
const settings = haSettings((key) => app.node.tryGetContext(key));
const stackName = (app.node.tryGetContext('stackName') as string | undefined) ?? `cachenat-ha-${settings.haGroup}`;
new CachenatHaStack(app, 'CachenatHa', {
  stackName,
  // The region is fixed by the settings (the AMI id belongs to it); the
  // account stays unresolved unless the CLI knows it (no lookups are made).
  env: { region: settings.region, account: process.env.CDK_DEFAULT_ACCOUNT },
  description: `cachenat HA pair ${settings.haGroup}: two NAT instances, a DynamoDB lease table, an Elastic IP`,
  settings,
});
app.synth();
