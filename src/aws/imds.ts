// The one IMDSv2 client: every metadata read cachenat makes (the HA identity,
// the region, the primary interface's MAC, the public address `endpoints`
// shows) goes through here. A read is a session: a token first (PUT), then the
// values with it, all within one time budget. IMDSv1 (a GET without a token)
// is never tried. Answers are checked in src/core/aws/imds.ts before use.

import {
  DEFAULT_IMDS_ENDPOINT,
  IMDS_TOKEN_HEADER,
  IMDS_TOKEN_PATH,
  IMDS_TOKEN_TTL_HEADER,
  IMDS_TOKEN_TTL_SECONDS,
  imdsPaths,
  MAX_IMDS_VALUE_CHARS,
  parseMac,
  parsePublicIpv4,
  parseRegion,
  type Parsed,
} from '../core/aws/imds.js';
import { isImdsToken } from '../core/grammar.js';

const HINT =
  'is IMDSv2 reachable from here? (on EC2: metadata options HttpEndpoint enabled, and a hop limit of 2 or more in a container; ha.imdsEndpoint or $AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the URL)';

/** A metadata read that failed; `status` is the HTTP status when IMDS answered. */
export class ImdsError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ImdsError';
  }
}

/** Asks for one value of the session; throws ImdsError. */
export type ImdsGet = (path: string) => Promise<string>;

export interface ImdsClientOptions {
  /** The service's URL; http://169.254.169.254 by default. */
  endpoint?: string | undefined;
  /** Set: IMDS is not asked at all, and every read fails with this reason. */
  disabledReason?: string | undefined;
}

export class ImdsClient {
  readonly endpoint: string;
  readonly #disabledReason: string | undefined;

  constructor(options: ImdsClientOptions = {}) {
    this.endpoint = options.endpoint ?? DEFAULT_IMDS_ENDPOINT;
    this.#disabledReason = options.disabledReason;
  }

  /** Runs `read` with one session token; `timeoutMs` bounds the whole read (token and every value), not each request. */
  async read<T>(timeoutMs: number, read: (get: ImdsGet) => Promise<T>): Promise<T> {
    if (this.#disabledReason !== undefined) throw new ImdsError(`instance metadata: not asked: ${this.#disabledReason}`);
    const signal = AbortSignal.timeout(timeoutMs);
    const late = () => `no answer within ${timeoutMs} ms`;

    const request = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<string> => {
      const url = new URL(path, this.endpoint);
      let response: Response;
      try {
        response = await fetch(url, { method, headers, signal, redirect: 'error' });
      } catch (err) {
        throw new ImdsError(`instance metadata: ${method} ${url.href} failed: ${signal.aborted ? late() : errorText(err)}; ${HINT}`);
      }
      const body = await response.text().catch((err: unknown) => {
        throw new ImdsError(`instance metadata: ${method} ${url.href}: reading the answer failed: ${signal.aborted ? late() : errorText(err)}; ${HINT}`);
      });
      if (response.status !== 200) {
        const extra = response.status === 401 ? ' (the session token was refused)' : response.status === 403 ? ' (IMDS is disabled or refused the request)' : '';
        throw new ImdsError(`instance metadata: ${method} ${url.href} answered HTTP ${response.status}${extra}; ${HINT}`, response.status);
      }
      if (body.length > MAX_IMDS_VALUE_CHARS) throw new ImdsError(`instance metadata: ${method} ${url.href} answered ${body.length} characters, not a metadata value`);
      return body;
    };

    const token = await request('PUT', IMDS_TOKEN_PATH, { [IMDS_TOKEN_TTL_HEADER]: String(IMDS_TOKEN_TTL_SECONDS) });
    if (!isImdsToken(token)) throw new ImdsError(`instance metadata: PUT ${IMDS_TOKEN_PATH} answered something that is not a token; ${HINT}`);
    return read((path) => request('GET', path, { [IMDS_TOKEN_HEADER]: token }));
  }
}

/**
 * The client for this process. `configured` is an endpoint the config names
 * (ha.imdsEndpoint): it is always asked. Otherwise $AWS_EC2_METADATA_SERVICE_ENDPOINT
 * or the default address, unless $AWS_EC2_METADATA_DISABLED=true (the AWS SDKs'
 * own switches, so one setting governs cachenat and the SDK's credential chain).
 */
export function imdsClientFor(env: NodeJS.ProcessEnv, configured?: string): ImdsClient {
  if (configured !== undefined) return new ImdsClient({ endpoint: configured });
  const disabled = env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === 'true';
  return new ImdsClient({
    endpoint: env.AWS_EC2_METADATA_SERVICE_ENDPOINT || undefined,
    disabledReason: disabled ? 'AWS_EC2_METADATA_DISABLED=true' : undefined,
  });
}

/** A validated value, or the ImdsError that says what was wrong with it. */
const valueOf = <T>(parsed: Parsed<T>): T => {
  if ('error' in parsed) throw new ImdsError(`instance metadata: ${parsed.error}`);
  return parsed.value;
};

/** The instance's region (placement/region). */
export const readRegion = (imds: ImdsClient, timeoutMs: number): Promise<string> =>
  imds.read(timeoutMs, async (get) => valueOf(parseRegion(await get(imdsPaths.region))));

/** The MAC of the instance's primary network interface. */
export const readPrimaryMac = (imds: ImdsClient, timeoutMs: number): Promise<string> =>
  imds.read(timeoutMs, async (get) => valueOf(parseMac(await get(imdsPaths.mac))));

/** The instance's public IPv4; HTTP 404 means it has none (an Elastic IP is associated later, or clients come over a VPN). */
export const readPublicIpv4 = (imds: ImdsClient, timeoutMs: number): Promise<string> =>
  imds.read(timeoutMs, async (get) => valueOf(parsePublicIpv4(await get(imdsPaths.publicIpv4))));

/** A read's value, or why there is none (for messages that list where cachenat looked). */
export async function answerOf<T>(read: Promise<T>): Promise<{ value: T } | { reason: string }> {
  try {
    return { value: await read };
  } catch (err) {
    return { reason: err instanceof ImdsError ? err.message.replace(/^instance metadata: /, '') : String(err) };
  }
}

const errorText = (err: unknown): string => {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
};
