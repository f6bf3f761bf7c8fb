// The Elastic IP(s) of an HA pair: AssociateAddress moves one to the
// leader's interface (AllowReassociation: it takes the address from the old
// leader in one call), DescribeAddresses tells where each is now. One
// attempt per call: the daemon retries on its own beat with its own backoff.
// What goes out is checked against the grammar first; what comes back is
// validated in src/core/ha/addresses.ts before anyone sees it.

import { AssociateAddressCommand, DescribeAddressesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { allocationIdProblem, interfaceAddressProblem, networkInterfaceIdProblem } from '../core/grammar.js';
import { parseAddresses, type AddressAssociation } from '../core/ha/addresses.js';
import { singleAttemptClientConfig, type AwsClientOptions } from '../aws/client-settings.js';

export type { AddressAssociation } from '../core/ha/addresses.js';

export interface ElasticIps {
  /** AssociateAddress with AllowReassociation: true, abandoned when `signal` aborts. Throws an Error whose message names the allocation id and what EC2 said. */
  associate(request: { allocationId: string; networkInterfaceId: string; privateIp: string }, signal?: AbortSignal): Promise<void>;
  /** DescribeAddresses for these allocation ids (validated answers). */
  describe(allocationIds: readonly string[], signal?: AbortSignal): Promise<AddressAssociation[]>;
  /** Closes the SDK client's sockets. */
  close(): void;
}

export type ElasticIpsOptions = AwsClientOptions & {
  /** A ready client, used as given (tests, the simulation). */
  client?: EC2Client;
};

/** The SDK client: one attempt per request, bounded like the DynamoDB client. */
export function createEc2Client(options: ElasticIpsOptions): EC2Client {
  return new EC2Client(singleAttemptClientConfig(options));
}

/** "Code: message" of an SDK error, short enough for a log line. */
function whatEc2Said(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 300);
  const code = (err as { Code?: unknown }).Code;
  const name = typeof code === 'string' && code !== '' ? code : err.name;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${name}${status === undefined ? '' : ` (HTTP ${status})`}: ${err.message}`.slice(0, 300);
}

export function createElasticIps(options: ElasticIpsOptions): ElasticIps {
  const client = options.client ?? createEc2Client(options);
  return {
    async associate({ allocationId, networkInterfaceId, privateIp }, signal) {
      const problem =
        allocationIdProblem(allocationId) ?? networkInterfaceIdProblem(networkInterfaceId) ?? interfaceAddressProblem(privateIp);
      if (problem !== undefined) throw new Error(`AssociateAddress of ${allocationId} not sent: ${problem}`);
      try {
        await client.send(
          new AssociateAddressCommand({ AllocationId: allocationId, NetworkInterfaceId: networkInterfaceId, PrivateIpAddress: privateIp, AllowReassociation: true }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw new Error(`AssociateAddress of ${allocationId} to ${networkInterfaceId} (${privateIp}) failed: ${whatEc2Said(err)}`);
      }
    },

    async describe(allocationIds, signal) {
      // No ids would ask for every address of the account: never what is meant.
      if (allocationIds.length === 0) return [];
      for (const id of allocationIds) {
        const problem = allocationIdProblem(id);
        if (problem !== undefined) throw new Error(`DescribeAddresses not sent: ${problem}`);
      }
      let answer;
      try {
        answer = await client.send(new DescribeAddressesCommand({ AllocationIds: [...allocationIds] }), { abortSignal: signal });
      } catch (err) {
        throw new Error(`DescribeAddresses of ${allocationIds.join(', ')} failed: ${whatEc2Said(err)}`);
      }
      const parsed = parseAddresses(answer.Addresses, allocationIds);
      if ('error' in parsed) throw new Error(`DescribeAddresses of ${allocationIds.join(', ')}: ${parsed.error}`);
      return parsed.value;
    },

    close() {
      client.destroy();
    },
  };
}
