// The reference model the invariants are checked against: who owns which
// listener, since when, and who released which when. It is built only from
// what the daemon's passes produced (the port map of each pass) and the
// config of the moment, never from the planner's own bookkeeping, and is far
// simpler than the planner: a listener is an address and a port; a client
// dials the address it was given (port mode: the host's address).

import type { PortState } from '../../src/core/ports/port-state.js';
import { POOL, UNIVERSE, type Settings } from './world.js';

export interface Listener {
  /** Undefined: port mode (a port on every address of the host; clients dial the host's address). */
  address?: string;
  port: number;
  fallback?: true;
}

export const listenerId = (l: Listener): string => `${l.address ?? ''}:${l.port}${l.fallback ? ' (fallback)' : ''}`;
const same = (a: Listener, b: Listener): boolean => a.address === b.address && a.port === b.port && !a.fallback === !b.fallback;

/**
 * Would a new listener catch the connections of clients who dial `dialled`?
 * A port-mode listener takes its port on every address; an address listener
 * takes only its own address. (A port-mode owner's clients dial the host's
 * address, which no address listener takes.)
 */
export const catchesDialled = (candidate: Listener, dialled: Listener): boolean =>
  candidate.port === dialled.port && (candidate.address === undefined || candidate.address === dialled.address);

/** Two present listeners that would take each other's connections. */
const clash = (a: Listener, b: Listener): boolean => catchesDialled(a, b) || catchesDialled(b, a);

interface Holding {
  key: string;
  listener: Listener;
  /** Undefined while the key still holds it. */
  releasedAt?: number;
}

export interface Observation {
  state: PortState;
  settings: Settings;
  now: number;
}

const targetPortOf = new Map(UNIVERSE.map((u) => [u.key, u.targetPort]));
const nameOf = new Map(UNIVERSE.map((u) => [u.key, u.address]));

/** Does a released listener still have a place in this config (so a returning owner can have it back)? */
function fitsConfig(l: Listener, settings: Settings, key: string): boolean {
  if (settings.pool === null) return l.address === undefined;
  return !l.fallback && l.address !== undefined && settings.pool.some((i) => POOL[i] === l.address) && l.port === targetPortOf.get(key);
}

/** I2's exceptions: the listener left the config, or a fallback got an address of its own. */
function mayMove(before: Listener, after: Listener, was: Settings, now: Settings): boolean {
  if ((was.pool === null) !== (now.pool === null)) return true; // port ↔ address mode
  if (now.pool === null) return false;
  const pool = now.pool.map((i) => POOL[i]);
  if (before.fallback) return !after.fallback || before.address !== pool[0];
  return !pool.includes(before.address);
}

export class OwnershipModel {
  /** Each key's listener as last observed. */
  current = new Map<string, Listener>();
  /** Every listener ever given, by id: its last owner. */
  held = new Map<string, Holding>();
  /** Each absent key's last listener. */
  lastReleased = new Map<string, { listener: Listener; at: number }>();
  settings: Settings | undefined;

  constructor(readonly reuseAfterMs: number) {}

  clone(): OwnershipModel {
    const copy = new OwnershipModel(this.reuseAfterMs);
    copy.current = new Map(this.current);
    copy.held = new Map([...this.held].map(([id, h]) => [id, { ...h }]));
    copy.lastReleased = new Map(this.lastReleased);
    if (this.settings) copy.settings = this.settings;
    return copy;
  }

  /** Takes in the map a pass produced; returns the invariants it breaks (I1, I2). */
  observe({ state, settings, now }: Observation): string[] {
    const problems: string[] = [];
    const next = new Map<string, Listener>(
      state.entries.map((e) => [e.key, { ...(e.listenAddress === undefined ? {} : { address: e.listenAddress }), port: e.listenPort, ...(e.fallback ? { fallback: true as const } : {}) }]),
    );
    const quarantined = (h: Holding) => h.releasedAt !== undefined && now - h.releasedAt < this.reuseAfterMs;

    // Releases: a key gone, or on another listener now.
    for (const [key, was] of this.current) {
      const is = next.get(key);
      if (is && same(is, was)) continue;
      const holding = this.held.get(listenerId(was));
      if (holding?.key === key) holding.releasedAt = now;
      if (!is) this.lastReleased.set(key, { listener: was, at: now });
      else if (this.settings && !mayMove(was, is, this.settings, settings)) {
        problems.push(`I2: ${key} moved from ${listenerId(was)} to ${listenerId(is)} while present, and its listener is still in the config`);
      }
    }

    for (const [key, listener] of next) {
      // I1: nobody else's listener, nor one whose owner released it less than reuseAfter ago.
      for (const h of this.held.values()) {
        if (h.key === key) continue;
        if (h.releasedAt === undefined && next.get(h.key) !== undefined && same(next.get(h.key)!, h.listener) && clash(listener, h.listener)) {
          problems.push(`I1: ${key} and ${h.key} both listen on ${listenerId(h.listener)}`);
        } else if (quarantined(h) && catchesDialled(listener, h.listener)) {
          problems.push(`I1: ${key} got ${listenerId(listener)}, which catches ${listenerId(h.listener)} that ${h.key} released ${now - h.releasedAt!} ms ago (reuseAfter ${this.reuseAfterMs} ms)`);
        }
      }
      // I1: a returning owner gets its listener back when nobody else holds it and it still fits the config.
      if (!this.current.has(key)) {
        const back = this.lastReleased.get(key);
        if (back && now - back.at < this.reuseAfterMs && fitsConfig(back.listener, settings, key)) {
          const taken =
            [...next].some(([other, l]) => other !== key && clash(l, back.listener)) ||
            [...this.held.values()].some((h) => h.key !== key && quarantined(h) && catchesDialled(back.listener, h.listener)) ||
            // One DNS name, one address (clients map a name to one address): it joins its name's other endpoint where that one listens.
            [...next].some(([other, l]) => other !== key && nameOf.get(other) === nameOf.get(key) && l.address !== undefined && !l.fallback && l.address !== back.listener.address);
          if (!taken && !same(listener, back.listener)) {
            problems.push(`I1: ${key} came back ${now - back.at} ms after releasing ${listenerId(back.listener)}, which nobody holds, yet got ${listenerId(listener)}`);
          }
        }
      }
    }

    for (const [key, listener] of next) {
      this.held.set(listenerId(listener), { key, listener });
      this.lastReleased.delete(key);
    }
    this.current = next;
    this.settings = settings;
    return problems;
  }
}
