// The smallest use of the constructs: the four required props (bin/sample.ts:
// the VPC, the AMI, who may connect, the caches' security groups), every
// other one at its default. Two stacks: a CachenatPair, and a CachenatInstance
// on its own (an Auto Scaling group of one). Synthesizes offline:
//
//   npx cdk synth --app 'node dist/deploy/bin/minimal.js'

import { App, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CachenatInstance, CachenatPair } from '../lib/index.js';
import { SAMPLE, sampleRequiredProps } from './sample.js';

const app = new App();

const pairStack = new Stack(app, 'MinimalPair', { env: { region: SAMPLE.region } });
new CachenatPair(pairStack, 'Pair', sampleRequiredProps(pairStack));

const singleStack = new Stack(app, 'MinimalInstance', { env: { region: SAMPLE.region } });
new CachenatInstance(singleStack, 'Nat', sampleRequiredProps(singleStack));

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
