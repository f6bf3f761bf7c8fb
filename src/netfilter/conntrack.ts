// Forgets the conntrack entries of flows DNATed to a target that moved, so
// their clients get a reset and reconnect to the new address instead of
// hanging on the old one for days.

import { targetAddressProblem } from '../core/ipv4.js';
import { kernelError, runCommand, type CommandRunner } from './iptables.js';
import { listenAddressProblem, portProblem } from '../core/grammar.js';
import type { Conntrack } from '../core/netfilter/types.js';

export class ConntrackTool implements Conntrack {
  /** False once the conntrack program was found missing: flows are then left to time out (the daemon should warn once). */
  available = true;

  constructor(private readonly run: CommandRunner = runCommand) {}

  async forgetFlows({ listenAddress, listenPort }: { listenAddress?: string; listenPort: number }, oldIp: string, deleted?: (listing: string) => void): Promise<number> {
    const problem = portProblem(listenPort) ?? (listenAddress === undefined ? undefined : listenAddressProblem(listenAddress)) ?? targetAddressProblem(oldIp);
    if (problem) throw new Error(`refusing to run conntrack: ${problem}`);
    if (!this.available) return 0;

    // Address mode: several targets listen on one port, and two of them may share the old IP
    // (a primary endpoint and its node); the listen address keeps the others' flows.
    const destination = listenAddress === undefined ? [] : ['--orig-dst', listenAddress];
    const args = ['-D', '-p', 'tcp', ...destination, '--orig-port-dst', String(listenPort), '--reply-src', oldIp];
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
