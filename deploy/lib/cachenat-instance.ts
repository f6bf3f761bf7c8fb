// One cachenat NAT instance: an Auto Scaling group of one, so a lost instance
// is replaced by a new one that joins from the DynamoDB map with every port
// unchanged (docs/aws-setup.md §9). On its own it makes its own table,
// Elastic IP, role and security group (a group of one: the replacement takes
// the lease once the lost instance's has run out); a CachenatPair makes two
// that share one set.

import { Aws, Duration, Lazy, Stack, Tags, Validations } from 'aws-cdk-lib';
import { aws_autoscaling as autoscaling, aws_ec2 as ec2 } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { HA_GROUP_TAG } from './iam.js';
import type { CachenatInstanceProps } from './props.js';
import { ConstructWithResources, createSharedResources, type SharedResources } from './resources.js';
import { HEALTH_WAIT_SECONDS, resolveSettings, type Settings } from './settings.js';
import { renderUserData } from './user-data.js';

/** How a CachenatPair hands its members what they share (not part of the public props). */
export const PAIR_MEMBER = Symbol('cachenat pair member');

export interface PairMember {
  settings: Settings;
  shared: SharedResources;
  subnet: ec2.ISubnet;
  /** 1 or 2: the instance's Name tag. */
  index: number;
}

export class CachenatInstance extends ConstructWithResources {
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly launchTemplate: ec2.LaunchTemplate;

  constructor(scope: Construct, id: string, props: CachenatInstanceProps) {
    super(scope, id);
    const member = (props as { [PAIR_MEMBER]?: PairMember } | undefined)?.[PAIR_MEMBER];
    let s: Settings;
    let shared: SharedResources;
    let subnets: ec2.ISubnet[];
    if (member === undefined) {
      s = resolveSettings(`CachenatInstance ${this.node.path}`, props);
      subnets = s.vpc.selectSubnets(s.vpcSubnets).subnets;
      shared = createSharedResources(this, s, subnets);
    } else {
      ({ settings: s, shared } = member);
      subnets = [member.subnet];
    }
    this.expose(shared);

    // The group's logical id goes into the user data (cfn-signal names it);
    // the group needs the launch template first, so it is read lazily.
    const groupLogicalId = Lazy.string({ produce: () => Stack.of(this).getLogicalId(this.autoScalingGroup.node.defaultChild as autoscaling.CfnAutoScalingGroup) });
    const userData = ec2.UserData.custom(
      renderUserData(
        {
          region: Stack.of(this).region,
          inboundInterface: s.inboundInterface,
          allowedSources: s.clientCidrs,
          publicAddress: shared.elasticIpAddress,
          redisPort: s.redisPort,
          memcachedPort: s.memcachedPort,
          ha: { table: shared.table.tableName, group: s.haGroup, lease: s.lease, elasticIp: shared.elasticIpAllocationId },
        },
        { stack: Aws.STACK_NAME, resource: groupLogicalId, region: Aws.REGION, healthWaitSeconds: HEALTH_WAIT_SECONDS },
      ),
    );

    this.launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: s.machineImage,
      instanceType: s.instanceType,
      userData,
      instanceProfile: shared.instanceProfile,
      securityGroup: shared.securityGroup,
      keyPair: s.keyPair,
      // Stated, not left to the subnet's setting (docs/aws-setup.md, "The standby and the AWS APIs").
      associatePublicIpAddress: s.associatePublicIpAddress,
      // IMDSv2 only; one hop: only this host, never a forwarded flow, reaches the metadata service.
      httpEndpoint: true,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      // The AMI's root device (ami/cachenat.pkr.hcl), encrypted whatever the account's default.
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(s.rootVolumeGiB, { volumeType: ec2.EbsDeviceVolumeType.GP3, encrypted: true, deleteOnTermination: true }),
        },
      ],
    });
    // Source/destination check stays on (a launch template cannot turn it
    // off, and need not): cachenat rewrites both ends of every flow, so every
    // packet is to or from the instance itself.

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Group', {
      vpc: s.vpc,
      vpcSubnets: { subnets },
      launchTemplate: this.launchTemplate,
      minCapacity: 1,
      maxCapacity: 1,
      // CreationPolicy: CloudFormation waits for cfn-ready's signal (READY=1 and health).
      signals: autoscaling.Signals.waitForMinCapacity({ timeout: s.signalTimeout }),
      // A new launch template (a new AMI, new props) replaces the instance:
      // the old one stops first (SIGTERM: it hands the lease over if it led),
      // then the new one must signal. In a pair the second group waits for
      // the first, so one instance at a time is away.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 0 }),
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
      notifications: s.notificationTopic === undefined ? undefined : [{ topic: s.notificationTopic, scalingEvents: autoscaling.ScalingEvents.ALL }],
    });
    if (s.notificationTopic === undefined) {
      Validations.of(this.autoScalingGroup).acknowledge({
        id: 'AwsSolutions-AS3',
        reason: "notificationTopic not set: a group of one only launches and terminates to replace a lost instance, which its activity history and the pair's health show (deploy/README.md, the drill); set notificationTopic to be told as it happens",
      });
    }
    // On the launch template (its instances and volumes) and on the group;
    // the Name above the launch template's own (its construct path).
    Tags.of(this).add(HA_GROUP_TAG, s.haGroup);
    Tags.of(this).add('Name', member === undefined ? `cachenat-${s.haGroup}` : `cachenat-${s.haGroup}-${member.index}`, { priority: 300 });
  }
}
