// A model of the EC2 address calls the HA pair makes: AssociateAddress
// (with AllowReassociation) and DescribeAddresses, over a fixed set of
// Elastic IPs and network interfaces, answering in the SDK's output shapes
// and raising EC2's errors by name. Where and when a call is applied (or
// lost) is the simulation's business (test/ha/sim/world.ts); this model
// only says what an applied call does and reports every association.

import { ModelError } from './dynamo-model.js';

export interface ModelInterface {
  networkInterfaceId: string;
  instanceId: string;
  privateIps: string[];
}

export interface Location {
  networkInterfaceId: string;
  instanceId: string;
  privateIp: string;
}

/** One applied AssociateAddress: where the address was and where it is now. */
export interface AppliedAssociation {
  allocationId: string;
  from: Location | null;
  to: Location;
  /** The address changed place (an association where it already was is not a move). */
  moved: boolean;
}

export class Ec2Model {
  readonly #publicIps: Map<string, string>;
  readonly #interfaces: ModelInterface[];
  readonly locations = new Map<string, Location | null>();
  #associations = 0;
  onAssociate: (applied: AppliedAssociation) => void = () => {};
  /** The next this many AssociateAddress calls fail with RequestLimitExceeded (a test's fault). */
  failAssociations = 0;
  /** DescribeAddresses calls applied so far. */
  describes = 0;

  constructor(addresses: { allocationId: string; publicIp: string }[], interfaces: ModelInterface[]) {
    this.#publicIps = new Map(addresses.map((a) => [a.allocationId, a.publicIp]));
    this.#interfaces = interfaces;
    for (const a of addresses) this.locations.set(a.allocationId, null);
  }

  associate(input: { AllocationId?: string; NetworkInterfaceId?: string; PrivateIpAddress?: string; AllowReassociation?: boolean }): { AssociationId: string } {
    const allocationId = input.AllocationId ?? '';
    if (this.failAssociations > 0) {
      this.failAssociations--;
      throw new ModelError('RequestLimitExceeded', 'Request limit exceeded.');
    }
    if (!this.#publicIps.has(allocationId)) throw new ModelError('InvalidAllocationID.NotFound', `The allocation ID '${allocationId}' does not exist`);
    const eni = this.#interfaces.find((i) => i.networkInterfaceId === input.NetworkInterfaceId);
    if (!eni) throw new ModelError('InvalidNetworkInterfaceID.NotFound', `The networkInterface ID '${input.NetworkInterfaceId}' does not exist`);
    const privateIp = input.PrivateIpAddress ?? eni.privateIps[0]!;
    if (!eni.privateIps.includes(privateIp)) throw new ModelError('InvalidParameterValue', `The specified private IP address ${privateIp} is not assigned to network interface ${eni.networkInterfaceId}`);
    const from = this.locations.get(allocationId) ?? null;
    const to: Location = { networkInterfaceId: eni.networkInterfaceId, instanceId: eni.instanceId, privateIp };
    const same = from !== null && from.networkInterfaceId === to.networkInterfaceId && from.privateIp === to.privateIp;
    if (from !== null && !same && input.AllowReassociation !== true) throw new ModelError('Resource.AlreadyAssociated', `resource ${allocationId} is already associated`);
    this.locations.set(allocationId, to);
    this.onAssociate({ allocationId, from, to, moved: !same });
    return { AssociationId: `eipassoc-${String(++this.#associations).padStart(17, '0')}` };
  }

  describe(input: { AllocationIds?: string[] }): { Addresses: Record<string, string>[] } {
    this.describes++;
    const ids = input.AllocationIds ?? [...this.#publicIps.keys()];
    for (const id of ids) if (!this.#publicIps.has(id)) throw new ModelError('InvalidAllocationID.NotFound', `The allocation ID '${id}' does not exist`);
    return {
      Addresses: ids.map((id) => {
        const at = this.locations.get(id);
        return {
          AllocationId: id,
          PublicIp: this.#publicIps.get(id)!,
          Domain: 'vpc',
          ...(at ? { NetworkInterfaceId: at.networkInterfaceId, PrivateIpAddress: at.privateIp, InstanceId: at.instanceId, AssociationId: 'eipassoc-00000000000000000' } : {}),
        };
      }),
    };
  }

  apply(commandName: string, input: unknown): unknown {
    if (commandName === 'AssociateAddressCommand') return this.associate(input as Parameters<Ec2Model['associate']>[0]);
    if (commandName === 'DescribeAddressesCommand') return this.describe(input as Parameters<Ec2Model['describe']>[0]);
    throw new ModelError('InvalidAction', `the model does not implement ${commandName}`);
  }
}
