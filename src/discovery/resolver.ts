// The DNS edge. Names are resolved the way every other program on the host
// resolves them (getaddrinfo via dns.lookup), so /etc/hosts and the VPC
// resolver both apply. An answer only counts when it is an address a forward
// may point at: DNS is as untrusted as the API.

import { lookup as dnsLookup } from 'node:dns/promises';
import type { Resolution } from '../core/model.js';
import { isIpv4, targetAddressProblem } from '../core/ipv4.js';
import { isHostName } from '../core/discovery/topology.js';
import type { Resolver } from '../core/discovery/types.js';

/**
 * One IPv4 lookup: the name's address, or all of them (a Serverless endpoint
 * has one per subnet); rejects with a Node error (code ENOTFOUND, EAI_AGAIN…).
 */
export type LookupIpv4 = (name: string) => Promise<string | string[]>;

const lookupIpv4: LookupIpv4 = async (name) => (await dnsLookup(name, { family: 4, all: true })).map((a) => a.address);
const lookupIpv6 = async (name: string): Promise<string[]> => (await dnsLookup(name, { family: 6, all: true })).map((a) => a.address);

export interface SystemResolverOptions {
  /** How long one lookup may take before it counts as failed. */
  timeoutMs: number;
  /** The lookup itself; dns.lookup unless a test says otherwise. */
  lookup?: LookupIpv4;
  /** The IPv6 lookup asked when a name has no IPv4 address, to tell an IPv6-only cache apart. */
  lookupIpv6?: (name: string) => Promise<string[]>;
}

// What getaddrinfo says for a name that exists without an A record (glibc: EAI_NODATA or EAI_NONAME).
const NO_IPV4 = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NODATA']);

export class SystemResolver implements Resolver {
  readonly #timeoutMs: number;
  readonly #lookup: LookupIpv4;
  readonly #lookupIpv6: (name: string) => Promise<string[]>;

  constructor(options: SystemResolverOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#lookup = options.lookup ?? lookupIpv4;
    this.#lookupIpv6 = options.lookupIpv6 ?? lookupIpv6;
  }

  async resolve(name: string): Promise<Resolution> {
    if (isIpv4(name)) return checked(name, name);
    if (!isHostName(name)) return { ok: false, error: `${JSON.stringify(name.slice(0, 80))} is not a DNS name` };
    let address: string | string[];
    try {
      // getaddrinfo cannot be cancelled: a lookup past its time keeps a libuv
      // thread until the system resolver gives up, but nobody waits for it.
      address = await withTimeout(this.#lookup(name), this.#timeoutMs);
    } catch (err) {
      if (err instanceof LookupTimeout) return { ok: false, error: `no answer for ${name} within ${this.#timeoutMs} ms` };
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      return (NO_IPV4.has(code) ? await this.#ipv6Only(name) : undefined) ?? { ok: false, error: `cannot resolve ${name}: ${code}` };
    }
    const answer = checked(name, address);
    return !answer.ok && (Array.isArray(address) ? address : [address]).length === 0 ? ((await this.#ipv6Only(name)) ?? answer) : answer;
  }

  /**
   * A name without an IPv4 address that has IPv6 ones: an IPv6-only cache
   * (network type ipv6). cachenat forwards IPv4 only, so it is not served;
   * saying so beats sending the operator to check the VPC resolver.
   */
  async #ipv6Only(name: string): Promise<Resolution | undefined> {
    const v6 = await withTimeout(this.#lookupIpv6(name), this.#timeoutMs).catch(() => [] as string[]);
    if (v6.length === 0) return undefined;
    return { ok: false, error: `${name} has only IPv6 addresses (${v6[0]}${v6.length > 1 ? ', …' : ''}); cachenat forwards IPv4 only`, ipv6Only: true };
  }
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

class LookupTimeout extends Error {}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new LookupTimeout()), ms);
    work.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/** Resolves every distinct name, at most `concurrency` lookups at a time; the map follows the order of `names`. */
export async function resolveAll(names: string[], resolver: Resolver, concurrency = 8): Promise<Map<string, Resolution>> {
  const distinct = [...new Set(names)];
  const answers = new Array<Resolution>(distinct.length);
  let next = 0;
  const worker = async () => {
    while (next < distinct.length) {
      const index = next++;
      const name = distinct[index] as string;
      answers[index] = await resolver.resolve(name).catch((err: unknown) => ({ ok: false as const, error: `cannot resolve ${name}: ${String(err)}` }));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, distinct.length)) }, worker));
  return new Map(distinct.map((name, index) => [name, answers[index] as Resolution]));
}
