// Reads the open connections cachenat forwards: one `conntrack -L` of the
// flows carrying cachenat's connmark bit (the kernel filters by mark, so the
// host's other connections are not even printed).

import { activeConnectionsByDestination } from '../core/metrics/conntrack-listing.js';
import { runCommand, type CommandRunner } from '../netfilter/iptables.js';

export class ConntrackConnectionReader {
  constructor(private readonly run: CommandRunner = runCommand) {}

  /** Open connections by "address:port" dialled; throws with the tool's own message when it fails (127: not installed). */
  async activeByDestination(connmark: number): Promise<Map<string, number>> {
    if (!Number.isInteger(connmark) || connmark < 1 || connmark > 0xffffffff) throw new Error(`refusing to run conntrack: invalid connmark ${connmark}`);
    const mark = `0x${connmark.toString(16)}`;
    const args = ['-L', '-p', 'tcp', '--mark', `${mark}/${mark}`];
    const result = await this.run('conntrack', args);
    if (result.exitCode !== 0) {
      const detail = result.stderr.trim().split('\n')[0] ?? '';
      throw Object.assign(new Error(`conntrack ${args.join(' ')} exited ${result.exitCode}: ${detail}`), { exitCode: result.exitCode });
    }
    return activeConnectionsByDestination(result.stdout);
  }
}
