// An HA pair of cachenat NAT instances (docs/design/ha.md): two Auto Scaling
// groups of one, in two zones, sharing the lease table, the Elastic IP, the
// role, the security group and the VPC endpoints.

import type { aws_ec2 as ec2 } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { CachenatInstance, PAIR_MEMBER, type PairMember } from './cachenat-instance.js';
import { InvalidPropError, type CachenatPairProps } from './props.js';
import { ConstructWithResources, createSharedResources } from './resources.js';
import { resolveSettings } from './settings.js';

export class CachenatPair extends ConstructWithResources {
  /** The two instances, in the order of their zones. */
  readonly instances: [CachenatInstance, CachenatInstance];

  constructor(scope: Construct, id: string, props: CachenatPairProps) {
    super(scope, id);
    const s = resolveSettings(`CachenatPair ${this.node.path}`, props);
    const subnets = firstSubnetOfTwoZones(s.vpc.selectSubnets(s.vpcSubnets).subnets);
    if (subnets === undefined) {
      throw new InvalidPropError(s.name, 'vpcSubnets', 'the selected subnets span fewer than two Availability Zones: a pair needs one subnet in each of two zones');
    }
    const shared = createSharedResources(this, s, subnets);
    this.expose(shared);

    const member = (subnet: ec2.ISubnet, index: number): CachenatInstance => {
      const internal: PairMember = { settings: s, shared, subnet, index };
      return new CachenatInstance(this, `Nat${index}`, { ...props, [PAIR_MEMBER]: internal } as typeof props);
    };
    this.instances = [member(subnets[0], 1), member(subnets[1], 2)];
    // One group at a time: at creation the first instance leads before the
    // second starts, and an update replaces one instance, waits for its
    // signal, then the other, so the pair always has one instance serving.
    this.instances[1].autoScalingGroup.node.addDependency(this.instances[0].autoScalingGroup);
  }
}

/** The first subnet of each of the first two zones, in the selection's order; undefined with fewer than two zones. */
export function firstSubnetOfTwoZones(subnets: readonly ec2.ISubnet[]): [ec2.ISubnet, ec2.ISubnet] | undefined {
  const byZone = new Map<string, ec2.ISubnet>();
  for (const subnet of subnets) if (!byZone.has(subnet.availabilityZone)) byZone.set(subnet.availabilityZone, subnet);
  const [a, b] = byZone.values();
  return a === undefined || b === undefined ? undefined : [a, b];
}
