// Strict IPv4 parsing. Anything that ends up in an iptables argument passes
// through here first, so the accepted syntax is deliberately narrow: four
// decimal octets, no leading zeros, no spaces, nothing else.

/**
 * The address as a number, or undefined. Read character by character, with
 * nothing allocated: the connection audit reads several addresses per flow.
 * Octets are 0 to 255 in decimal, "0" the only one that starts with a zero.
 */
export function parseIpv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

export const isIpv4 = (text: string): boolean => parseIpv4(text) !== undefined;

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
  /** Canonical text, as iptables-save prints it: a.b.c.d/n. */
  text: string;
}

/** Parses `a.b.c.d` (taken as /32) or `a.b.c.d/n`. Host bits must be zero. */
export function parseCidr(text: string): Cidr | { error: string } {
  const [addr, prefixText, ...rest] = text.split('/');
  if (rest.length > 0 || addr === undefined) return { error: `expected an IPv4 CIDR like 198.51.100.0/24, got "${text}"` };
  const ip = parseIpv4(addr);
  if (ip === undefined) return { error: `expected an IPv4 CIDR like 198.51.100.0/24, got "${text}"` };
  let prefix = 32;
  if (prefixText !== undefined) {
    if (!/^(3[0-2]|[12]?\d)$/.test(prefixText)) return { error: `prefix length must be 0 to 32, got "${prefixText}"` };
    prefix = Number(prefixText);
  }
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  const network = (ip & mask) >>> 0;
  if (network !== ip) {
    return { error: `"${text}" has host bits set; did you mean ${formatIpv4(network)}/${prefix}?` };
  }
  return { network, prefix, text: `${formatIpv4(network)}/${prefix}` };
}

/** Whether `inner` lies wholly inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  if (inner.prefix < outer.prefix) return false;
  const mask = outer.prefix === 0 ? 0 : (~0 << (32 - outer.prefix)) >>> 0;
  return ((inner.network & mask) >>> 0) === outer.network;
}

// RFC 1918 and the shared address space (RFC 6598): reached over a private
// network (the VPC, a VPN, peering, Direct Connect), never from the internet.
export const PRIVATE_RANGES: readonly Cidr[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].map((c) => parseCidr(c) as Cidr);

/** Whether an IPv4 address (or CIDR text) lies wholly in private address space. */
export function isPrivateRange(text: string): boolean {
  const cidr = parseCidr(text);
  return !('error' in cidr) && PRIVATE_RANGES.some((range) => cidrWithin(cidr, range));
}

export function cidrContains(cidr: Cidr, ip: number): boolean {
  const mask = cidr.prefix === 0 ? 0 : (~0 << (32 - cidr.prefix)) >>> 0;
  return ((ip & mask) >>> 0) === cidr.network;
}

// Addresses a forward must never point at, whatever the API or DNS says:
// "this network", loopback, link-local (the instance metadata service lives
// there), multicast, reserved and broadcast.
const NEVER_TARGET = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map(
  (c) => parseCidr(c) as Cidr,
);

/** Why an address cannot be a DNAT target, or undefined when it can. */
export function targetAddressProblem(text: string): string | undefined {
  const ip = parseIpv4(text);
  if (ip === undefined) return `"${text}" is not an IPv4 address`;
  const bad = NEVER_TARGET.find((c) => cidrContains(c, ip));
  return bad ? `${text} is in ${bad.text}, which is never forwarded to` : undefined;
}

/**
 * The addresses in `from` that none of `minus` holds, as the fewest CIDRs
 * (canonical text, ascending). Both lists hold canonical CIDR text; a text
 * that does not parse is ignored.
 */
export function cidrDifference(from: readonly string[], minus: readonly string[]): string[] {
  const ranges = (texts: readonly string[]): [number, number][] =>
    texts
      .map(parseCidr)
      .flatMap((c) => ('error' in c ? [] : [[c.network, c.network + 2 ** (32 - c.prefix) - 1] as [number, number]]))
      .sort((a, b) => a[0] - b[0]);
  // Subtract every range of `minus` from every range of `from`, then merge what is left.
  let left = ranges(from);
  for (const [start, end] of ranges(minus)) {
    left = left.flatMap(([s, e]): [number, number][] => {
      if (end < s || start > e) return [[s, e]];
      return [...(s < start ? [[s, start - 1] as [number, number]] : []), ...(e > end ? [[end + 1, e] as [number, number]] : [])];
    });
  }
  const merged: [number, number][] = [];
  for (const [s, e] of left.sort((a, b) => a[0] - b[0])) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  // Each merged range as the largest aligned blocks that fit, left to right.
  const blocks: string[] = [];
  for (const [start, end] of merged) {
    let at = start;
    while (at <= end) {
      let size = 32;
      while (size > 0) {
        const block = 2 ** (33 - size);
        if (at % block !== 0 || at + block - 1 > end) break;
        size--;
      }
      blocks.push(`${formatIpv4(at)}/${size}`);
      at += 2 ** (32 - size);
    }
  }
  return blocks;
}
