// Rebuilds the port map from the installed DNAT rules when the state file is
// lost: each DNAT line's owner comment names the target it forwards to.
// The kernel's text is read as untrusted: a line that does not parse or holds
// an invalid value is skipped, never guessed at.

import type { Engine, TargetKey } from '../model.js';
import { targetAddressProblem } from '../ipv4.js';
import type { SavedTable } from './parse-save.js';
import { listenerClash } from '../ports/port-state.js';
import { DNAT_RULE_PATTERN, engineProblem, keyProblem, listenAddressProblem, portProblem } from '../grammar.js';

export interface RecoveredForward {
  key: TargetKey;
  engine: Engine;
  /** Address mode: the listen address the rule matches. */
  listenAddress?: string;
  listenPort: number;
  targetIp: string;
  targetPort: number;
}

const DNAT_LINE = new RegExp(`^${DNAT_RULE_PATTERN}$`);

export function recoverForwards(nat: SavedTable): RecoveredForward[] {
  const recovered: RecoveredForward[] = [];
  const keys = new Set<string>();
  for (const line of nat.chains.get('CACHENAT-DNAT')?.rules ?? []) {
    const match = DNAT_LINE.exec(line);
    if (!match) continue;
    const [, listenAddress, listenText = '', engine = '', key = '', targetIp = '', targetText = ''] = match;
    const listenPort = Number(listenText);
    const targetPort = Number(targetText);
    const problem =
      engineProblem(engine) ??
      keyProblem(key) ??
      (listenAddress === undefined ? undefined : listenAddressProblem(listenAddress)) ??
      portProblem(listenPort) ??
      portProblem(targetPort) ??
      targetAddressProblem(targetIp);
    // The first rule for a listener or key is the one the kernel acts on (for a
    // name with several addresses, the first address is enough to keep the port).
    const forward: RecoveredForward = { key, engine: engine as Engine, ...(listenAddress === undefined ? {} : { listenAddress }), listenPort, targetIp, targetPort };
    if (problem !== undefined || keys.has(key) || listenerClash([...recovered, forward])) continue;
    keys.add(key);
    recovered.push(forward);
  }
  return recovered;
}
