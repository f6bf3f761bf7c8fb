// The configuration contract. Defaults and the meaning of every key live here;
// config.example.yaml explains the same keys to people.

import { z } from 'zod';
import { parseDuration } from './duration.js';
import { isIpv4, parseCidr } from '../ipv4.js';

const duration = (what: string, min = 0) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 500ms, 30s, 5m, 24h or plain seconds for ${what}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: 'custom', message: `${what} must be at least ${min}ms, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

const port = z.number({ error: 'expected a TCP port number' }).int('expected a whole number').min(1, 'ports start at 1').max(65535, 'ports end at 65535');

// Globs on ids: AWS ids are letters, digits and hyphens; * and ? are wildcards.
const idGlob = z.string().regex(/^[A-Za-z0-9*?-]{1,64}$/, 'expected a glob of letters, digits, "-", "*" and "?"');

const cidr = z.string().transform((value, ctx) => {
  const parsed = parseCidr(value.trim());
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  }
  return parsed.text;
});

// Linux interface names: at most 15 bytes, no "/" or whitespace. Kept narrower
// than the kernel allows because the value becomes an iptables argument.
const interfaceName = z.string().regex(/^[A-Za-z0-9_.@:-]{1,15}$/, 'expected a network interface name like eth0 or ens5');

// Kernel pseudo-filesystems are refused: files cannot be created there, and
// Node's recursive mkdir spins forever on /proc instead of failing.
const absolutePath = z
  .string()
  .regex(/^\/[^\0\n]*$/, 'expected an absolute path')
  .refine((p) => !/^\/(proc|sys|dev)(\/|$)/.test(p), 'must not be under /proc, /sys or /dev');

const hostName = z
  .string()
  .refine((v) => isIpv4(v) || /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(v), 'expected an IPv4 address or a DNS name');

export const configSchema = z.strictObject({
  aws: z.strictObject({
    region: z.string({ error: 'required: the AWS region of the caches, as text, e.g. us-east-1' }).regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'expected an AWS region like us-east-1'),
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
  }),
  discovery: z
    .strictObject({
      interval: duration('discovery.interval', 1000).prefault('30s'),
      include: z.array(idGlob).min(1, 'include at least one glob; ["*"] means everything').prefault(['*']),
      exclude: z.array(idGlob).prefault([]),
      removalGrace: duration('discovery.removalGrace').prefault('10m'),
      apiTimeout: duration('discovery.apiTimeout', 100).prefault('10s'),
    })
    .prefault({}),
  dns: z.strictObject({ interval: duration('dns.interval', 100).prefault('5s') }).prefault({}),
  forward: z.strictObject({
    inboundInterface: interfaceName.prefault('eth0'),
    allowedSources: z
      .array(cidr, { error: 'required: the client CIDRs allowed through, e.g. [198.51.100.27/32]; write 0.0.0.0/0 to allow everyone' })
      .min(1, 'must list at least one CIDR; write 0.0.0.0/0 to allow everyone'),
    snat: z.union([z.literal('masquerade'), z.string().refine(isIpv4, 'expected "masquerade" or an IPv4 address')]).prefault('masquerade'),
    publicAddress: hostName.optional(),
    connmark: z
      .union([z.number(), z.string()])
      .transform((value, ctx) => {
        const mark = typeof value === 'number' ? value : /^0x[0-9a-f]{1,8}$/i.test(value) ? Number.parseInt(value, 16) : Number.NaN;
        if (!Number.isInteger(mark) || mark < 1 || mark > 0x80000000 || (mark & (mark - 1)) !== 0) {
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
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'], 'expected one of trace, debug, info, warn, error, fatal').prefault('info'),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;
