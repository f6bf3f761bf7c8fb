// The configuration contract. Defaults and the meaning of every key live here;
// config.example.yaml explains the same keys to people.

import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseSize } from './size.js';
import { isIpv4, parseCidr } from '../ipv4.js';
import {
  allocationIdProblem,
  awsRegionProblem,
  connmarkProblem,
  elasticIpProblem,
  haGroupProblem,
  idGlobProblem,
  leaseProblem,
  interfaceProblem,
  isHostName,
  listenAddressProblem,
  parseConnmark,
  serviceUrlProblem,
  show,
  snatProblem,
  tableNameProblem,
} from '../grammar.js';

/** setTimeout and AbortSignal.timeout wait at most 2^31-1 ms (about 24.8 days); a longer wait fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** aws.region and forward.inboundInterface: found on the host (see ./host.ts). */
export const AUTO = 'auto';

/** A duration in ms; `timer`: it is waited for, so it must fit in a timer. */
const duration = (what: string, min = 0, { timer = false } = {}) =>
  z.union([z.string(), z.number()], 'expected a duration like 500ms, 30s, 5m, 24h or plain seconds').transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 500ms, 30s, 5m, 24h or plain seconds for ${what}, got ${show(value)}` });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: 'custom', message: `expected at least ${formatMs(min)} for ${what}, got ${show(value)}` });
      return z.NEVER;
    }
    if (timer && ms > MAX_TIMER_MS) {
      ctx.addIssue({
        code: 'custom',
        message: `expected at most 596h for ${what}, got ${show(value)}: Node's timers wait at most ${MAX_TIMER_MS} ms (about 24.8 days) and fire at once beyond it, so the loop would spin`,
      });
      return z.NEVER;
    }
    return ms;
  });

const formatMs = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

const port = z.number({ error: 'expected a TCP port number' }).int('expected a whole number').min(1, 'expected a port from 1 (ports start at 1)').max(65535, 'expected a port up to 65535');

/** A string checked by one of the grammar's rules, which also writes the message. */
const checked = (problemOf: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const problem = problemOf(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/** A duration (ms) checked by one of the grammar's rules. */
const checkedMs = (problemOf: (ms: number) => string | undefined) =>
  z.number().superRefine((ms, ctx) => {
    const problem = problemOf(ms);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

// Globs on ids: AWS ids are letters, digits and hyphens; * and ? are wildcards.
const idGlob = checked(idGlobProblem);

const cidr = z.string().transform((value, ctx) => {
  const parsed = parseCidr(value.trim());
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  }
  return parsed.text;
});

// Exactly what the renderer can put after `-i`, a trailing "+" wildcard included.
const interfaceName = checked(interfaceProblem);

// Kernel pseudo-filesystems are refused: files cannot be created there, and
// Node's recursive mkdir spins forever on /proc instead of failing.
const absolutePath = z
  .string()
  .regex(/^\/[^\0\n]*$/, 'expected an absolute path')
  .refine((p) => !/^\/(proc|sys|dev)(\/|$)/.test(p), 'must not be under /proc, /sys or /dev');

// Address mode: one private listen address per target, each with the Elastic IP clients dial.
const listenAddress = checked(listenAddressProblem);
const listenAddresses = z
  .array(
    z.strictObject({
      address: listenAddress.describe('a private IPv4 address on forward.inboundInterface'),
      public: checked(elasticIpProblem).describe('the Elastic IP associated with it'),
      // HA: the leader associates this Elastic IP with its own `address`.
      allocationId: checked(allocationIdProblem).optional().describe('the Elastic IP\'s allocation id (ha only)'),
    }),
    { error: 'expected a list of {address: <private IPv4 on inboundInterface>, public: <its Elastic IP>, allocationId: <eipalloc-…, with ha>}' },
  )
  .min(1, 'list at least one address, or leave listenAddresses out for port mode')
  .superRefine((list, ctx) => {
    for (const field of ['address', 'public', 'allocationId'] as const) {
      const seen = new Map<string, number>();
      list.forEach((entry, i) => {
        const value = entry[field];
        if (value === undefined) return;
        const before = seen.get(value);
        if (before !== undefined) ctx.addIssue({ code: 'custom', path: [i, field], message: `${value} is listed twice (entries ${before} and ${i}); each target needs an address of its own` });
        seen.set(value, i);
      });
    }
  });

// High availability (issue #12, docs/design/ha.md): optional; without it nothing changes.
const ha = z.strictObject({
  table: checked(tableNameProblem).describe('the DynamoDB table (partition key "pk", string); `cachenat ha init` creates it'),
  group: checked(haGroupProblem).describe("the pair's name; one table can serve several pairs"),
  lease: duration('ha.lease').pipe(checkedMs(leaseProblem)).prefault('10s').describe('a leader that has not renewed for this long is replaced; it renews every third of it'),
  elasticIp: checked(allocationIdProblem).optional().describe("port mode: the Elastic IP's allocation id, moved to the leader's primary private IP"),
  endpoint: checked(serviceUrlProblem).optional().describe('DynamoDB URL override (tests)'),
  ec2Endpoint: checked(serviceUrlProblem).optional().describe('EC2 API URL override (tests)'),
  imdsEndpoint: checked(serviceUrlProblem).optional().describe('instance metadata (IMDSv2) URL override (tests); by default http://169.254.169.254'),
});

// Connection audit (docs/audit.md): optional; without it nothing is read or written.
const AUDIT_BUFFER_MIN = 64 * 1024;
const AUDIT_BUFFER_MAX = 1024 ** 3;
const audit = z.strictObject({
  enabled: z.boolean({ error: 'required: true to write an audit line per forwarded connection, false to keep the section but write none' }),
  file: absolutePath.optional().describe('JSON lines appended here (reopened on SIGHUP); without it, audit lines go to the journal marked "audit": true'),
  starts: z.boolean().prefault(false).describe('also write a line when a connection starts, not only when it ends'),
  receiveBuffer: z
    .union([z.string(), z.number()])
    .transform((value, ctx) => {
      const bytes = parseSize(value);
      if (bytes === undefined || bytes < AUDIT_BUFFER_MIN || bytes > AUDIT_BUFFER_MAX) {
        ctx.addIssue({ code: 'custom', message: `expected a size from 64KiB to 1GiB such as 16MiB, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return bytes;
    })
    .prefault('16MiB')
    .describe("the event reader's socket buffer: events queue here while it is busy (the kernel doubles it; used only while events wait)"),
});

const hostName = z
  .string()
  .refine((v) => isIpv4(v) || isHostName(v), 'expected an IPv4 address or a DNS name');

export const configSchema = z.strictObject({
  aws: z
    .strictObject({
      // "auto": the instance's own region (IMDS), else $AWS_REGION; see ./host.ts.
      region: z
        .string({ error: 'expected an AWS region as text, e.g. us-east-1, or auto' })
        .pipe(checked((region) => (region === AUTO ? undefined : awsRegionProblem(region))))
        .prefault(AUTO),
      endpoint: checked(serviceUrlProblem).optional(),
    })
    .prefault({}),
  discovery: z
    .strictObject({
      interval: duration('discovery.interval', 1000, { timer: true }).prefault('30s'),
      include: z.array(idGlob).min(1, 'include at least one glob; ["*"] means everything').prefault(['*']),
      exclude: z.array(idGlob).prefault([]),
      removalGrace: duration('discovery.removalGrace').prefault('10m'),
      apiTimeout: duration('discovery.apiTimeout', 100, { timer: true }).prefault('10s'),
    })
    .prefault({}),
  dns: z.strictObject({ interval: duration('dns.interval', 100, { timer: true }).prefault('5s') }).prefault({}),
  forward: z.strictObject({
    // "auto": the interface holding the instance's primary MAC (IMDS), else the default route's.
    inboundInterface: checked((name) => (name === AUTO ? undefined : interfaceProblem(name))).prefault(AUTO),
    allowedSources: z
      .array(cidr, { error: 'expected a list of the client CIDRs allowed through, e.g. [198.51.100.27/32]; write 0.0.0.0/0 to allow everyone' })
      .min(1, 'must list at least one CIDR; write 0.0.0.0/0 to allow everyone'),
    snat: checked(snatProblem).prefault('masquerade'),
    publicAddress: hostName.optional(),
    listenAddresses: listenAddresses.optional(),
    connmark: z
      .union([z.number(), z.string()], 'expected a single connmark bit such as 0x1000000')
      .transform((value, ctx) => {
        const mark = parseConnmark(value);
        if (connmarkProblem(mark) !== undefined) {
          ctx.addIssue({ code: 'custom', message: `expected a single connmark bit such as 0x1000000, got ${JSON.stringify(value)}` });
          return z.NEVER;
        }
        return mark;
      })
      .prefault('0x1000000'),
    plaintext: z.enum(['allow', 'warn', 'refuse'], 'expected "allow", "warn" or "refuse"').prefault('warn'),
  }),
  ports: z
    .strictObject({
      redis: port.prefault(6379),
      memcached: port.prefault(11211),
      reuseAfter: duration('ports.reuseAfter').prefault('24h'),
    })
    .prefault({}),
  ipForward: z.enum(['enable', 'check'], 'expected "enable" or "check"').prefault('enable'),
  state: z
    .strictObject({
      dir: absolutePath.prefault('/var/lib/cachenat'),
      statusFile: absolutePath.prefault('/run/cachenat/status.json'),
    })
    .prefault({}),
  persist: z
    .strictObject({
      rulesFile: z.union([z.literal('auto'), z.literal('none'), absolutePath], 'expected "auto", "none" or an absolute path').prefault('auto'),
    })
    .prefault({}),
  health: z
    .strictObject({
      syncWarnIntervals: z.number().positive().prefault(3),
      syncCriticalIntervals: z.number().positive().prefault(10),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      // node_exporter's textfile collector picks up *.prom files from its directory.
      textfile: z.union([z.literal('none'), absolutePath.regex(/\.prom$/, 'expected a path ending in .prom (the textfile collector reads only *.prom)')], 'expected "none" or an absolute path ending in .prom').prefault('none'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'], 'expected one of trace, debug, info, warn, error, fatal').prefault('info'),
    })
    .prefault({}),
  ha: ha.optional(),
  audit: audit.optional(),
});

/**
 * The configuration. As read from the file, aws.region and
 * forward.inboundInterface may be "auto"; the commands that install rules
 * decide them for the host first (./host.ts), and nothing else reads them.
 */
export type Config = z.output<typeof configSchema>;
