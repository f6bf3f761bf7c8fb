// What DescribeAddresses says about the pair's Elastic IPs, validated: each
// id asked for answered exactly once, every value in the shape the grammar
// defines. An answer that does not validate is refused whole.

import type { Address } from '@aws-sdk/client-ec2';
import { allocationIdProblem, instanceIdProblem, interfaceAddressProblem, networkInterfaceIdProblem, show } from '../grammar.js';

/** Where one Elastic IP is associated now (no networkInterfaceId: nowhere). */
export interface AddressAssociation {
  allocationId: string;
  publicIp?: string;
  networkInterfaceId?: string;
  privateIp?: string;
  instanceId?: string;
}

type Check = (value: string) => string | undefined;

export function parseAddresses(addresses: readonly Address[] | undefined, wanted: readonly string[]): { value: AddressAssociation[] } | { error: string } {
  const seen = new Set<string>();
  const value: AddressAssociation[] = [];
  for (const [i, address] of (addresses ?? []).entries()) {
    const allocationId = address.AllocationId;
    const idProblem = allocationId === undefined ? 'has no allocation id' : allocationIdProblem(allocationId);
    if (idProblem !== undefined || allocationId === undefined) return { error: `address ${i + 1} ${idProblem}` };
    if (!wanted.includes(allocationId)) return { error: `answered ${allocationId}, which was not asked for` };
    if (seen.has(allocationId)) return { error: `answered ${allocationId} twice` };
    seen.add(allocationId);

    const item: AddressAssociation = { allocationId };
    const fields: [keyof AddressAssociation, string | undefined, Check][] = [
      ['publicIp', address.PublicIp, interfaceAddressProblem],
      ['networkInterfaceId', address.NetworkInterfaceId, networkInterfaceIdProblem],
      ['privateIp', address.PrivateIpAddress, interfaceAddressProblem],
      ['instanceId', address.InstanceId, instanceIdProblem],
    ];
    for (const [field, text, problem] of fields) {
      // The API leaves a field out, or (for some callers) sends it empty, when the address is not associated.
      if (text === undefined || text === '') continue;
      const why = problem(text);
      if (why !== undefined) return { error: `${allocationId} ${field}: ${why}` };
      item[field] = text;
    }
    value.push(item);
  }
  const missing = wanted.filter((id) => !seen.has(id));
  if (missing.length > 0) return { error: `no answer for ${show(missing.join(','))}` };
  return { value };
}
