// Turns forwards into the exact rule lines of cachenat's own chains.
//
// Every line is written in the canonical form `iptables-save` prints back
// (verified against iptables 1.8.9, nf_tables and legacy), so comparing the
// rendered text with a later save is a plain string comparison: a pass with
// nothing to change sees no difference and writes nothing.
//
// This is the last gate before the kernel: every value that goes into a line
// is checked again here, whatever validated it before.

import type { Engine, RuleForward } from '../model.js';
import { isIpv4, parseCidr, targetAddressProblem } from '../ipv4.js';
import { connmarkProblem, DEFAULT_CONNMARK, dnatRuleLines, engineProblem, interfaceProblem, keyProblem, listenAddressProblem, portProblem, preroutingRuleLine } from '../grammar.js';
import { compareListeners, listenerClash, listenerText } from '../ports/port-state.js';
import { OWNER_COMMENT } from './types.js';

// The key rule lives in the grammar; re-exported for importers of the renderer.
export { keyProblem } from '../grammar.js';

/** Owned chain → its rule lines (`-A CHAIN …`), in order, per table. */
export interface DesiredRules {
  nat: Record<string, string[]>;
  filter: Record<string, string[]>;
}

export interface RenderOptions {
  /** Interface clients arrive on. */
  inboundInterface: string;
  /** Canonical IPv4 CIDRs allowed to use the forwards, in config order. */
  allowedSources: string[];
  /** `masquerade`, or the IPv4 address to SNAT to. */
  snat: 'masquerade' | string;
  /** The connmark bit that tags flows cachenat DNATed (config forward.connmark). */
  connmark?: number;
}

export { ownerComment } from '../grammar.js';

function fail(where: string, problem: string): never {
  throw new Error(`refusing to render iptables rules: ${where}: ${problem}`);
}

function checkForward(f: RuleForward): void {
  const where = `forward ${JSON.stringify(f.key)}`;
  const problem =
    keyProblem(f.key) ??
    engineProblem(f.engine) ??
    (f.listenAddress === undefined ? undefined : listenAddressProblem(f.listenAddress)) ??
    portProblem(f.listenPort) ??
    portProblem(f.targetPort) ??
    targetAddressProblem(f.targetIp) ??
    (f.targetIps ?? []).map(targetAddressProblem).find((p) => p !== undefined);
  if (problem) fail(where, problem);
}

export function renderRules(forwards: RuleForward[], options: RenderOptions): DesiredRules {
  const ifaceProblem = interfaceProblem(options.inboundInterface);
  if (ifaceProblem) fail('forward.inboundInterface', ifaceProblem);
  const connmark = options.connmark ?? DEFAULT_CONNMARK;
  const markProblem = connmarkProblem(connmark);
  if (markProblem) fail('forward.connmark', markProblem);

  const sources: string[] = [];
  for (const source of options.allowedSources) {
    const cidr = parseCidr(source);
    if ('error' in cidr) fail('forward.allowedSources', cidr.error);
    if (!sources.includes(cidr.text)) sources.push(cidr.text);
  }

  let snatTarget: string;
  if (options.snat === 'masquerade') snatTarget = '-j MASQUERADE';
  else if (isIpv4(options.snat)) snatTarget = `-j SNAT --to-source ${options.snat}`;
  else fail('forward.snat', `${JSON.stringify(options.snat)} is neither "masquerade" nor an IPv4 address`);

  const keys = new Set<string>();
  for (const f of forwards) {
    checkForward(f);
    if (keys.has(f.key)) fail(`forward ${JSON.stringify(f.key)}`, 'the key appears twice');
    keys.add(f.key);
  }
  const clash = listenerClash(forwards);
  if (clash) fail(`forward ${JSON.stringify(clash[1].key)}`, `it listens on ${listenerText(clash[1])}, and so does ${JSON.stringify(clash[0].key)} (${listenerText(clash[0])})`);
  const sorted = [...forwards].sort(compareListeners);

  const prerouting = sources.map((cidr) => preroutingRuleLine(cidr, options.inboundInterface));
  const output = ['-A CACHENAT-OUTPUT -m addrtype --dst-type LOCAL -j CACHENAT-DNAT'];

  // Flows are tagged in the conntrack entry: every new connection entering
  // CACHENAT-DNAT gets the bit, a DNAT rule that matches ends the chain with the
  // bit kept, and the last rule clears it again for connections no forward
  // took. SNAT and the FORWARD accept then need one rule each, matching only
  // flows cachenat DNATed (both directions), whatever the number of forwards.
  // With no forwards the three chains stay empty.
  const mark = `0x${connmark.toString(16)}`;
  const dnat = sorted.flatMap((f) => dnatRuleLines({ ...f, targetIps: f.targetIps ?? [f.targetIp] }));
  if (dnat.length > 0) {
    dnat.unshift(`-A CACHENAT-DNAT -j CONNMARK --set-xmark ${mark}/${mark}`);
    dnat.push(`-A CACHENAT-DNAT -j CONNMARK --set-xmark 0x0/${mark}`);
  }
  const postrouting = dnat.length > 0 ? [`-A CACHENAT-POSTROUTING -m connmark --mark ${mark}/${mark} ${snatTarget}`] : [];
  const forward = dnat.length > 0 ? [`-A CACHENAT-FORWARD -m connmark --mark ${mark}/${mark} -j ACCEPT`] : [];

  return {
    nat: {
      'CACHENAT-PREROUTING': prerouting,
      'CACHENAT-OUTPUT': output,
      'CACHENAT-DNAT': dnat,
      'CACHENAT-POSTROUTING': postrouting,
    },
    filter: { 'CACHENAT-FORWARD': forward },
  };
}

