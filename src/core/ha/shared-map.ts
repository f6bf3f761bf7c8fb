// Address mode with HA: each instance listens on private addresses of its
// own (a secondary private IP belongs to one interface), while the Elastic
// IPs clients dial are the pair's. The shared map therefore names each
// listener by its Elastic IP (`public`), and each instance translates to and
// from its own private `address` with its forward.listenAddresses. In port
// mode there is nothing to translate.

import type { PortState } from '../ports/port-state.js';

export interface AddressPair {
  address: string;
  public: string;
}

function translate(state: PortState, from: ReadonlyMap<string, string>): PortState {
  const swap = (address: string): string => from.get(address) ?? address;
  const entries = state.entries.map((e) => (e.listenAddress === undefined ? e : { ...e, listenAddress: swap(e.listenAddress) }));
  const released = state.released.map((r) => (r.address === undefined ? r : { ...r, address: swap(r.address) }));
  const releasedAddresses = state.releasedAddresses?.map((r) => ({ ...r, address: swap(r.address) }));
  return { ...state, entries, released, ...(releasedAddresses === undefined ? {} : { releasedAddresses }) };
}

/** This instance's map → the shared one: private listen addresses become their Elastic IPs. */
export const toSharedMap = (state: PortState, pairs: readonly AddressPair[] | undefined): PortState =>
  pairs === undefined ? state : translate(state, new Map(pairs.map((p) => [p.address, p.public])));

/**
 * The shared map → this instance's: Elastic IPs become this instance's
 * private addresses. An Elastic IP this instance has no address for stays as
 * it is, and the follower's planner names its entries as misfits.
 */
export const fromSharedMap = (state: PortState, pairs: readonly AddressPair[] | undefined): PortState =>
  pairs === undefined ? state : translate(state, new Map(pairs.map((p) => [p.public, p.address])));
