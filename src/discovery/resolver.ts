// The DNS edge. Names are resolved the way every other program on the host
// resolves them (getaddrinfo via dns.lookup), so /etc/hosts and the VPC
// resolver both apply. An answer only counts when it is an address a forward
// may point at: DNS is as untrusted as the API.
//
// A silent resolver must not stall the loop: a pass spends at most
// DNS_PASS_BUDGET_MS on DNS, and lookups in flight are capped so that
// abandoned ones never take all of libuv's threads (which file writes share).

import { lookup as dnsLookup } from 'node:dns/promises';
import type { Resolution } from '../core/model.js';
import { isIpv4, targetAddressProblem } from '../core/ipv4.js';
import { isHostName } from '../core/discovery/topology.js';
import type { Resolver } from '../core/discovery/types.js';

/** What one pass may spend on DNS, well inside the unit's WatchdogSec=30s with the API call and the kernel write. */
export const DNS_PASS_BUDGET_MS = 3000;

/**
 * One IPv4 lookup: the name's address, or all of them (a Serverless endpoint
 * has one per subnet); rejects with a Node error (code ENOTFOUND, EAI_AGAIN…).
 */
export type LookupIpv4 = (name: string) => Promise<string | string[]>;

const lookupIpv4: LookupIpv4 = async (name) => (await dnsLookup(name, { family: 4, all: true })).map((a) => a.address);
const lookupIpv6 = async (name: string): Promise<string[]> => (await dnsLookup(name, { family: 6, all: true })).map((a) => a.address);

/**
 * getaddrinfo cannot be cancelled: a lookup nobody waits for any more still
 * holds one of libuv's threads (4 unless UV_THREADPOOL_SIZE says otherwise)
 * until the system resolver gives up, about timeout × attempts of resolv.conf
 * (10 s by default). Lookups take at most half the pool, counted until they
 * really end, so the port map and status writes always find a thread.
 */
export class LookupSlots {
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly max = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves with a release function once a slot is free; false when `signal` fires first. */
  async acquire(signal: AbortSignal): Promise<(() => void) | false> {
    while (this.#inFlight >= this.max) {
      if (signal.aborted) return false;
      const freed = await new Promise<boolean>((resolve) => {
        const onAbort = () => resolve(false);
        signal.addEventListener('abort', onAbort, { once: true });
        this.#waiting.push(() => {
          signal.removeEventListener('abort', onAbort);
          resolve(true);
        });
      });
      if (!freed) return false;
    }
    this.#inFlight++;
    return () => {
      this.#inFlight--;
      this.#waiting.shift()?.();
    };
  }
}

/** Shared by every resolver of the process: reloads make new resolvers, the pool stays the same. */
const PROCESS_SLOTS = new LookupSlots();

export interface SystemResolverOptions {
  /** How long one lookup may take before it counts as not answered. */
  timeoutMs: number;
  /** The lookup itself; dns.lookup unless a test says otherwise. */
  lookup?: LookupIpv4;
  /** The IPv6 lookup asked when a name has no IPv4 address, to tell an IPv6-only cache apart. */
  lookupIpv6?: (name: string) => Promise<string[]>;
  /** The cap on lookups in flight; the process's shared one unless a test says otherwise. */
  slots?: LookupSlots;
}

/** getaddrinfo's word for "the resolver did not answer" (a timeout, SERVFAIL): no verdict on the name. */
const SILENT_CODES = new Set(['EAI_AGAIN', 'ETIMEOUT', 'ESERVFAIL', 'ECONNREFUSED']);

// What getaddrinfo says for a name that exists without an A record (glibc: EAI_NODATA or EAI_NONAME).
const NO_IPV4 = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NODATA']);

export class SystemResolver implements Resolver {
  readonly #timeoutMs: number;
  readonly #lookup: LookupIpv4;
  readonly #lookupIpv6: (name: string) => Promise<string[]>;
  readonly #slots: LookupSlots;

  constructor(options: SystemResolverOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#lookup = options.lookup ?? lookupIpv4;
    this.#lookupIpv6 = options.lookupIpv6 ?? lookupIpv6;
    this.#slots = options.slots ?? PROCESS_SLOTS;
  }

  async resolve(name: string, signal?: AbortSignal): Promise<Resolution> {
    if (isIpv4(name)) return checked(name, name);
    if (!isHostName(name)) return { ok: false, error: `${JSON.stringify(name.slice(0, 80))} is not a DNS name` };
    const timeout = deadline(this.#timeoutMs);
    const stop = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    try {
      let address: string | string[];
      try {
        address = await this.#slotted(() => this.#lookup(name), stop);
      } catch (err) {
        if (err instanceof Stopped) return this.#silent(name, err, timeout.signal.aborted);
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        if (NO_IPV4.has(code)) return (await this.#ipv6Only(name, stop)) ?? { ok: false, error: `cannot resolve ${name}: ${code}` };
        return { ok: false, error: `cannot resolve ${name}: ${code}`, ...(SILENT_CODES.has(code) ? { noAnswer: true as const } : {}) };
      }
      const answer = checked(name, address);
      return !answer.ok && (Array.isArray(address) ? address : [address]).length === 0 ? ((await this.#ipv6Only(name, stop)) ?? answer) : answer;
    } finally {
      timeout.clear();
    }
  }

  /**
   * A name without an IPv4 address that has IPv6 ones: an IPv6-only cache
   * (network type ipv6). cachenat forwards IPv4 only, so it is not served;
   * saying so beats sending the operator to check the VPC resolver.
   */
  async #ipv6Only(name: string, stop: AbortSignal): Promise<Resolution | undefined> {
    const v6 = await this.#slotted(() => this.#lookupIpv6(name), stop).catch(() => [] as string[]);
    if (v6.length === 0) return undefined;
    return { ok: false, error: `${name} has only IPv6 addresses (${v6[0]}${v6.length > 1 ? ', …' : ''}); cachenat forwards IPv4 only`, ipv6Only: true };
  }

  /** One getaddrinfo call in a slot; rejects with Stopped when `stop` fires first (the call itself runs on, holding its slot). */
  async #slotted<T>(lookup: () => Promise<T>, stop: AbortSignal): Promise<T> {
    const release = await this.#slots.acquire(stop);
    if (release === false) throw new Stopped(false);
    const work = lookup();
    void work.then(release, release); // the slot is free when getaddrinfo is, not when we stop waiting
    return untilAborted(work, stop);
  }

  /** Silence, worded by why we stopped waiting. */
  #silent(name: string, stopped: Stopped, timedOut: boolean): Resolution {
    const why = stopped.started
      ? timedOut
        ? `within ${this.#timeoutMs} ms`
        : 'before the DNS budget of the pass ran out'
      : timedOut
        ? `within ${this.#timeoutMs} ms (${this.#slots.inFlight} earlier lookups still hold the resolver)`
        : '(not asked: the DNS budget of the pass ran out)';
    return { ok: false, error: `no answer for ${name} ${why}`, noAnswer: true };
  }
}

/** An AbortSignal that fires after `ms` on a timer that keeps the process alive until cleared (AbortSignal.timeout's does not). */
function deadline(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/**
 * Only addresses a forward may point at count. An answer mixing good and bad
 * addresses keeps the good ones; the order is made stable (numeric) so a
 * resolver that rotates its answer does not rewrite the rules.
 */
function checked(name: string, answer: string | string[]): Resolution {
  const addresses = [...new Set(Array.isArray(answer) ? answer : [answer])];
  const good = addresses.filter((a) => targetAddressProblem(a) === undefined).sort((a, b) => ipOrder(a) - ipOrder(b));
  const [first] = good;
  if (first !== undefined) return good.length > 1 ? { ok: true, ip: first, ips: good } : { ok: true, ip: first };
  const problem = addresses.length === 0 ? 'no IPv4 address' : (targetAddressProblem(addresses[0] as string) as string);
  return { ok: false, error: name === addresses[0] ? problem : `${name} resolves to ${problem}` };
}

const ipOrder = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

/** We stopped waiting; `started`: the lookup had begun (and holds its slot until it ends). */
class Stopped extends Error {
  constructor(readonly started = true) {
    super('stopped waiting');
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(new Stopped());
    const onAbort = () => reject(new Stopped());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export interface ResolvedWithin {
  /** The answer of every name asked (silence included, as noAnswer failures). */
  answers: Map<string, Resolution>;
  /** Names not asked before the budget ran out. */
  unasked: string[];
}

/**
 * Resolves the distinct names in order, at most `concurrency` at a time,
 * within `budgetMs` in all: names still waiting then are left out (their
 * lookups abandoned), for the caller to keep their last answer and ask again
 * next pass.
 */
export async function resolveWithin(names: readonly string[], resolver: Resolver, options: { budgetMs: number; concurrency?: number }): Promise<ResolvedWithin> {
  const distinct = [...new Set(names)];
  const timer = deadline(options.budgetMs);
  const budget = timer.signal;
  const answers = new Map<string, Resolution>();
  const unasked: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < distinct.length) {
      const name = distinct[next++] as string;
      if (budget.aborted) {
        unasked.push(name);
        continue;
      }
      const answer = await resolver.resolve(name, budget).catch((err: unknown): Resolution => ({ ok: false, error: `cannot resolve ${name}: ${String(err)}` }));
      if (answer.ok === false && answer.noAnswer && budget.aborted) unasked.push(name);
      else answers.set(name, answer);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 8, distinct.length)) }, worker));
  timer.clear();
  return { answers, unasked };
}

/** Resolves every distinct name, at most `concurrency` lookups at a time, with no overall budget; the map follows the order of `names`. */
export async function resolveAll(names: string[], resolver: Resolver, concurrency = 8): Promise<Map<string, Resolution>> {
  const { answers } = await resolveWithin(names, resolver, { budgetMs: 2 ** 31 - 1, concurrency });
  return new Map([...new Set(names)].map((name) => [name, answers.get(name)!]));
}
