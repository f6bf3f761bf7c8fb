// Documentation placeholders for the four required props: they synthesize
// offline; a deploy with them fails. The example app's `-c sample=true`
// (npm run synth:example), the minimal app and the synth tests use them.

import type { Stack } from 'aws-cdk-lib';
import { aws_ec2 as ec2 } from 'aws-cdk-lib';
import type { CachenatProps } from '../lib/index.js';

export const SAMPLE = {
  region: 'us-east-1',
  vpcId: 'vpc-0123456789abcdef0',
  availabilityZones: ['us-east-1a', 'us-east-1b'],
  subnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'],
  routeTableIds: ['rtb-0aaaaaaaaaaaaaaa1', 'rtb-0bbbbbbbbbbbbbbb2'],
  amiId: 'ami-0123456789abcdef0',
  clientCidrs: ['198.51.100.27/32'],
  cacheSecurityGroupIds: ['sg-0123456789abcdef0'],
};

/** An AMI by its id alone: no region map and no lookup (the id belongs to the region the stack deploys to). */
export const amiById = (imageId: string): ec2.IMachineImage => ({
  getImage: () => ({ imageId, osType: ec2.OperatingSystemType.LINUX, userData: ec2.UserData.forLinux() }),
});

/** The required props with the sample values; `vpcAttributes` overrides the imported VPC's. */
export function sampleRequiredProps(stack: Stack, vpcAttributes: Partial<ec2.VpcAttributes> = {}): CachenatProps {
  return {
    vpc: ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
      vpcId: SAMPLE.vpcId,
      availabilityZones: SAMPLE.availabilityZones,
      publicSubnetIds: SAMPLE.subnetIds,
      publicSubnetRouteTableIds: SAMPLE.routeTableIds,
      ...vpcAttributes,
    }),
    machineImage: amiById(SAMPLE.amiId),
    clientCidrs: SAMPLE.clientCidrs,
    cacheSecurityGroups: SAMPLE.cacheSecurityGroupIds.map((id, i) => ec2.SecurityGroup.fromSecurityGroupId(stack, `CacheSecurityGroup${i + 1}`, id)),
  };
}
