// The one place where the shape of every value cachenat passes to iptables, a
// state file or a log line is defined: AWS ids and the target keys built from
// them, engines, ports, DNS names, interface names and the connmark bit.
//
// The config schema, the topology reader, the renderer, the rule recovery and
// the port-map store all ask here, so a value one of them accepts is never
// refused by another (test/core/grammar.test.ts proves it on fuzzed input).
// Each rule is a `…Problem(value)` that says what is wrong, or undefined.

import type { Engine, FlowFilter, TargetKind } from './model.js';
import { isIpv4, isPrivateRange, parseCidr, targetAddressProblem } from './ipv4.js';
import { OWNER_COMMENT } from './netfilter/types.js';

/** Quoted, printable ASCII, at most about 60 characters: safe in any message. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = `(${typeof value})`;
  }
  text = text.replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// ── AWS ids and target keys ────────────────────────────────────────────────

// CacheClusterId, ReplicationGroupId and CacheNodeId ("0001"): ElastiCache
// allows letters, digits and hyphens, and so does cachenat, nowhere more.
const ID_BODY = '[A-Za-z0-9][A-Za-z0-9-]{0,63}';
const ID = new RegExp(`^${ID_BODY}$`);
const NODE_KEY = new RegExp(`^node/(${ID_BODY})/(${ID_BODY})$`);
// configuration/<id> names a replication group or a Memcached cluster; the
// next API answer says which (until then it reads as a group).
const GROUP_KEY = new RegExp(`^(primary|reader|configuration)/(${ID_BODY})$`);
// Serverless cache names are ids too (letters, digits, hyphens).
const SERVERLESS_KEY = new RegExp(`^(serverless|serverless-reader)/(${ID_BODY})$`);

export const isId = (value: unknown): value is string => typeof value === 'string' && ID.test(value);

export function idProblem(value: unknown): string | undefined {
  if (isId(value)) return undefined;
  if (value === undefined || value === null) return 'is missing';
  return typeof value === 'string' ? `${show(value)} is not 1-64 letters, digits and hyphens starting with a letter or digit` : `${show(value)} is not text`;
}

// include/exclude globs: the id alphabet plus the wildcards * and ?.
const ID_GLOB = /^[A-Za-z0-9*?-]{1,64}$/;

export const idGlobProblem = (value: string): string | undefined =>
  ID_GLOB.test(value) ? undefined : `expected a glob of letters, digits, "-", "*" and "?", got ${show(value)}`;

/** The parts of a target key, or undefined when the text is not one. */
export interface ParsedKey {
  kind: TargetKind;
  cacheClusterId?: string;
  cacheNodeId?: string;
  replicationGroupId?: string;
  serverlessCacheName?: string;
}

export function parseTargetKey(key: string): ParsedKey | undefined {
  const node = NODE_KEY.exec(key);
  if (node) return { kind: 'node', cacheClusterId: node[1]!, cacheNodeId: node[2]! };
  const group = GROUP_KEY.exec(key);
  if (group) return { kind: group[1] as TargetKind, replicationGroupId: group[2]! };
  const serverless = SERVERLESS_KEY.exec(key);
  if (serverless) return { kind: serverless[1] as TargetKind, serverlessCacheName: serverless[2]! };
  return undefined;
}

export function keyProblem(key: string): string | undefined {
  return parseTargetKey(key) !== undefined
    ? undefined
    : `target key ${show(key)} is not of the form node/<cluster>/<node>, primary/<group>, reader/<group>, configuration/<id>, serverless/<name> or serverless-reader/<name> with ids of letters, digits and "-"`;
}

export const TARGET_KINDS = ['node', 'primary', 'reader', 'configuration', 'serverless', 'serverless-reader'] as const satisfies readonly TargetKind[];

// ── engines and ports ──────────────────────────────────────────────────────

export const ENGINES: readonly Engine[] = ['redis', 'valkey', 'memcached'];

export const isEngine = (value: unknown): value is Engine => typeof value === 'string' && (ENGINES as readonly string[]).includes(value);

export const engineProblem = (engine: string): string | undefined =>
  isEngine(engine) ? undefined : `engine ${show(engine)} is not one of ${ENGINES.join(', ')}`;

/** The API spells engines in any case ("Redis"); this is the one place that forgives it. */
export function engineOf(value: unknown): Engine | undefined {
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  return ENGINES.find((engine) => engine === lower);
}

export const isPort = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;

export const portProblem = (port: unknown): string | undefined =>
  isPort(port) ? undefined : `port ${show(port)} is not an integer from 1 to 65535`;

// ── DNS names and endpoint addresses ───────────────────────────────────────

// RFC 1123 host names. The last label must hold a letter: getaddrinfo reads
// all-numeric shapes such as "127.1" or "2130706433" as IPv4 addresses.
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const LAST_LABEL_HAS_LETTER = /[A-Za-z][^.]*$/;

/** A DNS name getaddrinfo will look up as a name (never read as a numeric address). */
export const isHostName = (text: string): boolean => HOST_NAME.test(text) && LAST_LABEL_HAS_LETTER.test(text);

/** An endpoint the API names: an IPv4 address cachenat may forward to, or a DNS name. */
export function endpointAddressProblem(text: string): string | undefined {
  if (isIpv4(text)) return targetAddressProblem(text);
  return isHostName(text) ? undefined : `${show(text)} is neither an IPv4 address nor a DNS name`;
}

// ── interface names ────────────────────────────────────────────────────────

// What `iptables -i NAME` takes and the kernel can name: fewer than IFNAMSIZ
// (16) bytes in all, a trailing "+" included (iptables reads it as "every
// interface starting with"). The kernel also refuses "/", ":" and whitespace,
// and "." or ".." alone. cachenat keeps to letters, digits, "_", "." and "-"
// and refuses a leading "-", so the value can never read as an option.
const INTERFACE = /^(?=.{1,15}$)[A-Za-z0-9_.][A-Za-z0-9_.-]*\+?$/;

export function interfaceProblem(name: string): string | undefined {
  if (INTERFACE.test(name) && name !== '.' && name !== '..') return undefined;
  return `interface name ${show(name)} is not a Linux interface name: 1-15 characters of letters, digits, "_", "." and "-", not starting with "-", optionally ending in the wildcard "+" (e.g. eth0, ens5, eth+)`;
}

// ── connmark ───────────────────────────────────────────────────────────────

/** Bit 24: clear of kube-proxy's 0x4000/0x8000, the AWS VPC CNI's 0x80 and tailscale's 0xff0000. */
export const DEFAULT_CONNMARK = 0x1000000;

/** Config text such as "0x1000000", or a number, as a mark; NaN when it is neither. */
export const parseConnmark = (value: number | string): number =>
  typeof value === 'number' ? value : /^0x[0-9a-f]{1,8}$/i.test(value) ? Number.parseInt(value, 16) : Number.NaN;

export function connmarkProblem(mark: unknown): string | undefined {
  if (typeof mark !== 'number' || !Number.isInteger(mark) || mark < 1 || mark > 0x80000000 || (mark & (mark - 1)) !== 0) {
    return `expected a single connmark bit such as 0x1000000, got ${show(mark)}`;
  }
  return undefined;
}

// ── the DNAT rule line ─────────────────────────────────────────────────────

/**
 * The DNAT rules of one forward, as the renderer writes them and iptables-save
 * prints them back. A name with several addresses gets one rule per address,
 * spread round-robin: rule i of n takes every (n-i)th new connection still
 * unclaimed; the last takes the rest.
 */
/** The comment that marks a forward's rules as cachenat's, and names it. */
export const ownerComment = (engine: Engine, key: string): string => `${OWNER_COMMENT} ${engine} ${key}`;

export function dnatRuleLines(f: {
  listenAddress?: string;
  listenPort: number;
  engine: Engine;
  key: string;
  targetIps: readonly string[];
  targetPort: number;
}): string[] {
  // Address mode: the rule also matches the forward's own listen address (iptables-save prints -d before -p).
  const destination = f.listenAddress === undefined ? '' : ` -d ${f.listenAddress}/32`;
  const head = `-A CACHENAT-DNAT${destination} -p tcp -m tcp --dport ${f.listenPort} -m comment --comment "${ownerComment(f.engine, f.key)}"`;
  const n = f.targetIps.length;
  return f.targetIps.map((ip, i) => {
    const nth = i < n - 1 ? ` -m statistic --mode nth --every ${n - i} --packet 0` : '';
    return `${head}${nth} -j DNAT --to-destination ${ip}:${f.targetPort}`;
  });
}

/**
 * Matches one line of dnatRuleLines (without a leading counter); groups:
 * listen address (address mode only), listen port, engine, key, target IP, target port.
 */
export const DNAT_RULE_PATTERN = `-A CACHENAT-DNAT(?: -d ([\\d.]+)/32)? -p tcp -m tcp --dport (\\d+) -m comment --comment "${OWNER_COMMENT} (\\S+) (\\S+)"(?: -m statistic --mode nth --every \\d+ --packet \\d+)? -j DNAT --to-destination ([\\d.]+):(\\d+)`;

/** The most addresses one name is forwarded to (one DNAT rule each); a longer answer keeps its lowest. */
export const MAX_TARGET_IPS = 64;

// ── the source rule (who may use the forwards) ─────────────────────────────

/**
 * The rule that lets one allowedSources range into CACHENAT-DNAT. Only
 * traffic to one of this host's own addresses is DNATed: a packet the NAT
 * instance merely routes must pass untouched. iptables-save leaves out
 * `-s 0.0.0.0/0`, so the canonical form does too.
 */
export const preroutingRuleLine = (cidr: string, inboundInterface: string): string =>
  `-A CACHENAT-PREROUTING ${cidr === '0.0.0.0/0' ? '' : `-s ${cidr} `}-i ${inboundInterface} -m addrtype --dst-type LOCAL -j CACHENAT-DNAT`;

/** Matches one preroutingRuleLine; group: the source range (absent: every address). */
export const PREROUTING_RULE_PATTERN = '-A CACHENAT-PREROUTING (?:-s ([\\d./]+) )?-i \\S+ -m addrtype --dst-type LOCAL -j CACHENAT-DNAT';

// ── the kernel's copy of the port map (chain CACHENAT-MAP) ────────────────

// The port map lives in ports.json, but the kernel carries all of it too, so
// a lost file is rebuilt without moving anyone: one comment-only rule per
// record in a chain nothing jumps to (no packet ever sees it). A record
// names a target and its listener (also the ones without rules: unresolved,
// refused), the addresses an unresolved target's open flows go to, every
// quarantined listener, and flows still to be forgotten.

export const MAP_CHAIN = 'CACHENAT-MAP';

/** iptables keeps at most 255 characters of a comment. */
export const MAX_COMMENT_LENGTH = 255;

export type MapRecord =
  | {
      type: 'entry';
      key: string;
      engine: Engine;
      listenAddress?: string;
      listenPort: number;
      targetPort: number;
      fallback?: true;
      tls?: boolean;
      /** The endpoint's DNS name; left out when the record would not fit in a comment. */
      address?: string;
    }
  /** Unresolved: an address its open flows go to. */
  | { type: 'stale'; key: string; ip: string }
  /**
   * A freed listener: a port (port mode), or an address with the port its target used (absent: every port).
   * `fallback`: a fallback's port, with the address it listened on.
   */
  | { type: 'quarantined'; key: string; listenAddress?: string; listenPort?: number; releasedAt: number; fallback?: true }
  /** Flows a change took away, written with that change and cleared once they are forgotten. */
  | { type: 'forget'; filter: FlowFilter };

const listenerWord = (address: string | undefined, port: number | undefined): string => `${address ?? ''}:${port ?? '*'}`;

function entryFlags(r: Extract<MapRecord, { type: 'entry' }>): string {
  const flags = [...(r.fallback ? ['fallback'] : []), ...(r.tls === true ? ['tls'] : r.tls === false ? ['plain'] : [])];
  return flags.length === 0 ? '-' : flags.join(',');
}

/** The comment text of a record (at most MAX_COMMENT_LENGTH characters). */
export function mapRecordText(r: MapRecord): string {
  switch (r.type) {
    case 'entry': {
      const head = `${OWNER_COMMENT} entry ${r.key} ${r.engine} ${listenerWord(r.listenAddress, r.listenPort)} ${r.targetPort} ${entryFlags(r)}`;
      const full = r.address === undefined ? head : `${head} ${r.address}`;
      return full.length <= MAX_COMMENT_LENGTH ? full : head;
    }
    case 'stale':
      return `${OWNER_COMMENT} stale ${r.key} ${r.ip}`;
    case 'quarantined':
      return `${OWNER_COMMENT} quarantined ${r.key} ${listenerWord(r.listenAddress, r.listenPort)} ${r.releasedAt}${r.fallback ? ' fallback' : ''}`;
    case 'forget':
      return r.filter.kind === 'source'
        ? `${OWNER_COMMENT} forget source ${r.filter.source}`
        : `${OWNER_COMMENT} forget ${r.filter.cause} ${listenerWord(r.filter.listenAddress, r.filter.listenPort)} ${r.filter.targetIp}`;
  }
}

/** The rule line that carries a record. */
export const mapRecordLine = (r: MapRecord): string => `-A ${MAP_CHAIN} -m comment --comment "${mapRecordText(r)}"`;

/** Matches one mapRecordLine; group: the comment text. */
export const MAP_RECORD_PATTERN = `-A ${MAP_CHAIN} -m comment --comment "(${OWNER_COMMENT} [^"]*)"`;

const LISTENER_WORD = /^(?:(\d+\.\d+\.\d+\.\d+))?:(\d+|\*)$/;
const TIME_WORD = /^\d{1,16}$/;
const LISTENER_CAUSES = ['moved', 'removed', 'refused', 'relocated'] as const;

/** A listener word: `:6380`, `10.0.1.21:6379`, or `10.0.1.21:*` where `anyPort`. */
function parseListenerWord(word: string | undefined, anyPort: boolean): { listenAddress?: string; listenPort?: number } | undefined {
  const match = word === undefined ? null : LISTENER_WORD.exec(word);
  if (!match) return undefined;
  const [, address, portText = ''] = match;
  if (address !== undefined && listenAddressProblem(address) !== undefined) return undefined;
  if (portText === '*') return anyPort && address !== undefined ? { listenAddress: address } : undefined;
  const port = Number(portText);
  if (!isPort(port)) return undefined;
  return { ...(address === undefined ? {} : { listenAddress: address }), listenPort: port };
}

function parseEntryFlags(word: string): { fallback?: true; tls?: boolean } | undefined {
  if (word === '-') return {};
  const flags = word.split(',');
  const known = ['fallback', 'tls', 'plain'];
  if (flags.some((f) => !known.includes(f)) || new Set(flags).size !== flags.length || (flags.includes('tls') && flags.includes('plain'))) return undefined;
  return { ...(flags.includes('fallback') ? { fallback: true as const } : {}), ...(flags.includes('tls') ? { tls: true } : flags.includes('plain') ? { tls: false } : {}) };
}

/**
 * A record's comment text → the record, or undefined when the text is not
 * one (the kernel is read as untrusted: every value is checked as the
 * renderer checks it, and the text must be exactly what mapRecordText writes).
 */
export function parseMapRecord(text: string): MapRecord | undefined {
  const record = readMapRecord(text);
  return record !== undefined && mapRecordText(record) === text ? record : undefined;
}

function readMapRecord(text: string): MapRecord | undefined {
  const words = text.split(' ');
  if (words[0] !== OWNER_COMMENT) return undefined;
  const [, type, a, b, c, d, e, f, ...rest] = words;
  if (rest.length > 0) return undefined;
  switch (type) {
    case 'entry': {
      const listener = parseListenerWord(c, false);
      const flags = e === undefined ? undefined : parseEntryFlags(e);
      const targetPort = Number(d);
      if (a === undefined || keyProblem(a) !== undefined || !isEngine(b) || listener?.listenPort === undefined || !isPort(targetPort) || !flags) return undefined;
      if (flags.fallback && listener.listenAddress === undefined) return undefined;
      if (f !== undefined && endpointAddressProblem(f) !== undefined) return undefined;
      return { type, key: a, engine: b, ...listener, listenPort: listener.listenPort, targetPort, ...flags, ...(f === undefined ? {} : { address: f }) };
    }
    case 'stale':
      if (a === undefined || keyProblem(a) !== undefined || b === undefined || targetAddressProblem(b) !== undefined || c !== undefined) return undefined;
      return { type, key: a, ip: b };
    case 'quarantined': {
      const listener = parseListenerWord(b, true);
      if (a === undefined || keyProblem(a) !== undefined || !listener || c === undefined || !TIME_WORD.test(c) || e !== undefined) return undefined;
      // A fallback's port names its address and port.
      const fallback = d === 'fallback' && listener.listenAddress !== undefined && listener.listenPort !== undefined;
      if (d !== undefined && !fallback) return undefined;
      return { type, key: a, ...listener, releasedAt: Number(c), ...(fallback ? { fallback: true as const } : {}) };
    }
    case 'forget': {
      if (a === 'source') {
        const cidr = b === undefined ? undefined : parseCidr(b);
        if (!cidr || 'error' in cidr || c !== undefined) return undefined;
        return { type, filter: { kind: 'source', source: cidr.text, cause: 'source' } };
      }
      const cause = LISTENER_CAUSES.find((cause) => cause === a);
      const listener = parseListenerWord(b, false);
      if (cause === undefined || listener?.listenPort === undefined || c === undefined || targetAddressProblem(c) !== undefined || d !== undefined) return undefined;
      return { type, filter: { kind: 'listener', ...listener, listenPort: listener.listenPort, targetIp: c, cause } };
    }
    default:
      return undefined;
  }
}

// ── listen addresses (address mode) ────────────────────────────────────────

/** Why text is not a unicast IPv4 address an interface can hold, or undefined when it is. */
export function interfaceAddressProblem(text: string): string | undefined {
  if (targetAddressProblem(text) === undefined) return undefined;
  return `${show(text)} is not a unicast IPv4 address an interface can hold (not in 0/8, 127/8, 169.254/16, 224/4 or 240/4)`;
}

/** Why an address cannot be one of forward.listenAddresses, or undefined when it can. */
export const listenAddressProblem = interfaceAddressProblem;

/** forward.listenAddresses[].public: the Elastic IP clients dial, so a public unicast address. */
export function elasticIpProblem(text: string): string | undefined {
  const problem = interfaceAddressProblem(text);
  if (problem !== undefined) return problem;
  return isPrivateRange(text)
    ? `expected the public Elastic IP clients dial, got ${text}, a private address (10/8, 172.16/12, 192.168/16 or 100.64/10); the private one belongs in address`
    : undefined;
}

/** forward.snat: "masquerade", or an address of this host for SNAT --to-source. */
export function snatProblem(text: string): string | undefined {
  if (text === 'masquerade') return undefined;
  if (!isIpv4(text)) return `expected "masquerade" or an IPv4 address of this host, got ${show(text)}`;
  return interfaceAddressProblem(text) === undefined
    ? undefined
    : `expected "masquerade" or a unicast IPv4 address of this host, got ${text} (not in 0/8, 127/8, 169.254/16, 224/4 or 240/4: replies could never come back to it)`;
}

// ── AWS regions ────────────────────────────────────────────────────────────

// us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-7: what the
// config, IMDS (placement/region) and $AWS_REGION may name.
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

export const awsRegionProblem = (region: string): string | undefined =>
  AWS_REGION.test(region) ? undefined : `expected an AWS region like us-east-1 (lower case), got ${show(region)}`;

// ── high availability (the ha section, the DynamoDB items) ────────────────

// DynamoDB table names: 3-255 of letters, digits, "_", "-" and ".".
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;

export const tableNameProblem = (name: string): string | undefined =>
  TABLE_NAME.test(name) ? undefined : `expected a DynamoDB table name (3-255 letters, digits, "_", "-" and "."), got ${show(name)}`;

/** A pair's name, also the prefix of its items' keys: an id (letters, digits, hyphens). */
export const haGroupProblem = (group: string): string | undefined =>
  isId(group) ? undefined : `expected a group name of 1-64 letters, digits and hyphens starting with a letter or digit, got ${show(group)}`;

// eipalloc-0123abcd (8 hex digits, older allocations) or 17 hex digits.
const ALLOCATION_ID = /^eipalloc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export const allocationIdProblem = (id: string): string | undefined =>
  ALLOCATION_ID.test(id) ? undefined : `expected an Elastic IP allocation id such as eipalloc-0123abcd (8 or 17 hex digits), got ${show(id)}`;

// i-0123abcd or i-0123456789abcdef0: what IMDS names an instance, and the lease holder.
const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export const isInstanceId = (value: unknown): value is string => typeof value === 'string' && INSTANCE_ID.test(value);

export const instanceIdProblem = (value: unknown): string | undefined =>
  isInstanceId(value) ? undefined : `expected an EC2 instance id such as i-0123456789abcdef0, got ${show(value)}`;

// eni-0123abcd or eni-0123456789abcdef0: an elastic network interface.
const NETWORK_INTERFACE_ID = /^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export const networkInterfaceIdProblem = (value: unknown): string | undefined =>
  typeof value === 'string' && NETWORK_INTERFACE_ID.test(value)
    ? undefined
    : `expected a network interface id such as eni-0123456789abcdef0 (8 or 17 hex digits), got ${show(value)}`;

// A MAC address as IMDS prints it (lower case, colons): it becomes a path segment of the next IMDS request.
const MAC_ADDRESS = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

export const macAddressProblem = (value: unknown): string | undefined =>
  typeof value === 'string' && MAC_ADDRESS.test(value)
    ? undefined
    : `expected a MAC address of six lower-case hex pairs such as 0e:49:61:0f:c3:11, got ${show(value)}`;

// An IMDSv2 session token (opaque, base64-like): printable ASCII without spaces, sent back as a header value.
const IMDS_TOKEN = /^[\x21-\x7e]{1,1024}$/;

export const isImdsToken = (value: unknown): value is string => typeof value === 'string' && IMDS_TOKEN.test(value);

/** ha.lease, in ms: from 3 s (a renewal every second) to an hour; the lease item read back is held to the same. */
export const MIN_LEASE_MS = 3000;
export const MAX_LEASE_MS = 3_600_000;

export const leaseProblem = (ms: number): string | undefined =>
  Number.isInteger(ms) && ms >= MIN_LEASE_MS && ms <= MAX_LEASE_MS ? undefined : `expected a lease from 3s to 1h, got ${show(ms)} ms`;

// Lease versions and map versions: random tokens cachenat makes itself
// (a UUID), read back from DynamoDB, so checked like anything else from outside.
const HA_TOKEN = /^[A-Za-z0-9-]{8,64}$/;

export const isHaToken = (value: unknown): value is string => typeof value === 'string' && HA_TOKEN.test(value);

/** An http(s) URL without credentials, for the endpoint overrides (local DynamoDB, a fake EC2 API). */
export function serviceUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `expected an http(s) URL such as http://127.0.0.1:8000, got ${show(text)}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `expected an http or https URL, got ${show(text)}`;
  if (url.username !== '' || url.password !== '') {
    // Never echoed: the message goes to the terminal and the journal.
    return `expected a URL without credentials (they come from the instance role or the environment, never the URL), got ${url.protocol}//***@${url.host}${url.pathname === '/' ? '' : '/...'}`;
  }
  return undefined;
}
