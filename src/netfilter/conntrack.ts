// Forgets the conntrack entries of flows cachenat DNATed that must not go on:
// their target moved (clients get a reset and reconnect to the new address
// instead of hanging on the old one for days), or access to it was taken
// away (a source range, a refused plaintext cache, a removed target or
// listener). Only flows carrying cachenat's connmark are ever touched.

import { parseCidr, targetAddressProblem } from '../core/ipv4.js';
import { kernelError, runCommand, type CommandRunner } from './iptables.js';
import { connmarkProblem, DEFAULT_CONNMARK, listenAddressProblem, portProblem } from '../core/grammar.js';
import type { Conntrack } from '../core/netfilter/types.js';
import type { FlowFilter } from '../core/model.js';

export class ConntrackTool implements Conntrack {
  /** False once the conntrack program was found missing: flows are then left to time out (the daemon should warn once). */
  available = true;

  constructor(
    private readonly run: CommandRunner = runCommand,
    /** forward.connmark: the bit cachenat's rules set on every flow they DNAT. */
    private readonly connmark: number = DEFAULT_CONNMARK,
  ) {}

  async forgetFlows(filter: FlowFilter, deleted?: (listing: string) => void): Promise<number> {
    const args = ['-D', '-p', 'tcp', ...filterArgs(filter), '--mark', `0x${this.connmark.toString(16)}/0x${this.connmark.toString(16)}`];
    const problem = connmarkProblem(this.connmark);
    if (problem) throw new Error(`refusing to run conntrack: ${problem}`);
    if (!this.available) return 0;

    const result = await this.run('conntrack', args);
    if (result.exitCode === 127) {
      this.available = false;
      return 0;
    }
    // conntrack reports "N flow entries have been deleted" and exits 1 when N is 0.
    const count = /(\d+) flow entr(?:y|ies) ha(?:ve|s) been deleted/.exec(result.stderr);
    // It prints each entry it deletes on stdout.
    deleted?.(result.stdout);
    if (count && (result.exitCode === 0 || result.exitCode === 1)) return Number(count[1]);
    throw kernelError(['conntrack', ...args].join(' '), result);
  }
}

/** The conntrack filter options; every value is checked before it becomes an argument. */
function filterArgs(filter: FlowFilter): string[] {
  if (filter.kind === 'source') {
    const cidr = parseCidr(filter.source);
    if ('error' in cidr || cidr.text !== filter.source) throw new Error(`refusing to run conntrack: ${'error' in cidr ? cidr.error : `${filter.source} is not canonical`}`);
    return ['--orig-src', cidr.text];
  }
  const { listenAddress, listenPort, targetIp } = filter;
  const problem = portProblem(listenPort) ?? (listenAddress === undefined ? undefined : listenAddressProblem(listenAddress)) ?? targetAddressProblem(targetIp);
  if (problem) throw new Error(`refusing to run conntrack: ${problem}`);
  // Address mode: several targets listen on one port, and two of them may share the old IP
  // (a primary endpoint and its node); the listen address keeps the others' flows.
  const destination = listenAddress === undefined ? [] : ['--orig-dst', listenAddress];
  return [...destination, '--orig-port-dst', String(listenPort), '--reply-src', targetIp];
}
