// The kernel edge. The real implementation runs iptables-save / iptables-restore;
// tests use the same implementation inside a throwaway network namespace.

import type { FlowFilter } from '../model.js';

export type Table = 'nat' | 'filter';

export interface Netfilter {
  /** `iptables-save -t TABLE`: the truth about what is installed now. */
  save(table: Table): Promise<string>;
  /** Full `iptables-save` of every table; `counters` adds each rule's `[packets:bytes]` (`-c`). */
  saveAll(options?: { counters?: boolean }): Promise<string>;
  /** One `iptables-restore --noflush` call with this input (all tables in one go). */
  restore(text: string): Promise<void>;
}

/** Deletes conntrack entries so clients of a moved target reconnect instead of hanging, and revoked ones are cut. */
export interface Conntrack {
  /**
   * Entries of TCP flows cachenat DNATed (they carry its connmark) that the
   * filter names: those that came in on a listener (its port; in address mode
   * its own address and port) and went to an address, or those from a source
   * range. Returns how many were deleted; `deleted` receives the tool's
   * listing of them (the connection audit says why they ended).
   */
  forgetFlows(filter: FlowFilter, deleted?: (listing: string) => void): Promise<number>;
  /** False once the conntrack tool turned out to be missing. */
  readonly available: boolean;
}

/** Names of everything cachenat owns in the kernel. */
export const CHAIN_PREFIX = 'CACHENAT-';
export const OWNER_COMMENT = 'cachenat';

export const OWNED_CHAINS = {
  // CACHENAT-MAP: the kernel's copy of the port map (comment-only rules; nothing jumps to it).
  nat: ['CACHENAT-PREROUTING', 'CACHENAT-OUTPUT', 'CACHENAT-DNAT', 'CACHENAT-POSTROUTING', 'CACHENAT-MAP'],
  filter: ['CACHENAT-FORWARD'],
} as const satisfies Record<Table, readonly string[]>;

/** The built-in chains that get exactly one jump rule each, and where it points. */
export const JUMPS = [
  { table: 'nat', from: 'PREROUTING', to: 'CACHENAT-PREROUTING' },
  { table: 'nat', from: 'OUTPUT', to: 'CACHENAT-OUTPUT' },
  { table: 'nat', from: 'POSTROUTING', to: 'CACHENAT-POSTROUTING' },
  { table: 'filter', from: 'FORWARD', to: 'CACHENAT-FORWARD' },
] as const satisfies readonly { table: Table; from: string; to: string }[];
