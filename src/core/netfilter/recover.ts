// Rebuilds the port map from the installed DNAT rules when the state file is
// lost: each DNAT line's owner comment names the target it forwards to.
// The kernel's text is read as untrusted: a line that does not parse or holds
// an invalid value is skipped, never guessed at.

import type { Engine, TargetKey } from '../model.js';
import { targetAddressProblem } from '../ipv4.js';
import type { SavedTable } from './parse-save.js';
import { DNAT_RULE_PATTERN, engineProblem, keyProblem, portProblem } from '../grammar.js';

export interface RecoveredForward {
  key: TargetKey;
  engine: Engine;
  listenPort: number;
  targetIp: string;
  targetPort: number;
}

const DNAT_LINE = new RegExp(`^${DNAT_RULE_PATTERN}$`);

export function recoverForwards(nat: SavedTable): RecoveredForward[] {
  const recovered: RecoveredForward[] = [];
  const ports = new Set<number>();
  const keys = new Set<string>();
  for (const line of nat.chains.get('CACHENAT-DNAT')?.rules ?? []) {
    const match = DNAT_LINE.exec(line);
    if (!match) continue;
    const [, listenText = '', engine = '', key = '', targetIp = '', targetText = ''] = match;
    const listenPort = Number(listenText);
    const targetPort = Number(targetText);
    const problem =
      engineProblem(engine) ?? keyProblem(key) ?? portProblem(listenPort) ?? portProblem(targetPort) ?? targetAddressProblem(targetIp);
    // The first rule for a port or key is the one the kernel acts on (for a
    // name with several addresses, the first address is enough to keep the port).
    if (problem !== undefined || ports.has(listenPort) || keys.has(key)) continue;
    ports.add(listenPort);
    keys.add(key);
    recovered.push({ key, engine: engine as Engine, listenPort, targetIp, targetPort });
  }
  return recovered;
}
