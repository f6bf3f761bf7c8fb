// Reads this instance's identity from IMDSv2: a session token first (PUT),
// then the five metadata values with it. IMDSv1 (GET without a token) is
// never tried. Every answer is validated in src/core/ha/identity.ts; any
// failure is one Error that says which request failed and what to check.

import {
  DEFAULT_IMDS_ENDPOINT,
  IMDS_TOKEN_HEADER,
  IMDS_TOKEN_PATH,
  IMDS_TOKEN_TTL_HEADER,
  IMDS_TOKEN_TTL_SECONDS,
  imdsPaths,
  MAX_IMDS_VALUE_CHARS,
  parseInstanceIdentity,
  parseMac,
  type InstanceIdentity,
} from '../core/ha/identity.js';
import { isImdsToken } from '../core/grammar.js';

export type { InstanceIdentity } from '../core/ha/identity.js';

const HINT = 'is IMDSv2 reachable from here? (on EC2: metadata options HttpTokens, HttpEndpoint enabled, and a hop limit of 2 or more in a container; ha.imdsEndpoint overrides the URL)';

/**
 * The instance id, primary interface and its private addresses. `timeoutMs`
 * bounds the whole read (token and all values), not each request.
 */
export async function readInstanceIdentity(options: { endpoint?: string; timeoutMs: number }): Promise<InstanceIdentity> {
  const endpoint = options.endpoint ?? DEFAULT_IMDS_ENDPOINT;
  const signal = AbortSignal.timeout(options.timeoutMs);

  const request = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<string> => {
    const url = new URL(path, endpoint);
    let response: Response;
    try {
      response = await fetch(url, { method, headers, signal, redirect: 'error' });
    } catch (err) {
      const why = signal.aborted ? `no answer within ${options.timeoutMs} ms` : errorText(err);
      throw new Error(`instance metadata: ${method} ${url.href} failed: ${why}; ${HINT}`);
    }
    const body = await response.text().catch((err: unknown) => {
      throw new Error(`instance metadata: ${method} ${url.href}: reading the answer failed: ${signal.aborted ? `no answer within ${options.timeoutMs} ms` : errorText(err)}; ${HINT}`);
    });
    if (response.status !== 200) {
      const extra = response.status === 401 ? ' (the session token was refused)' : response.status === 403 ? ' (IMDS is disabled or refused the request)' : '';
      throw new Error(`instance metadata: ${method} ${url.href} answered HTTP ${response.status}${extra}; ${HINT}`);
    }
    if (body.length > MAX_IMDS_VALUE_CHARS) throw new Error(`instance metadata: ${method} ${url.href} answered ${body.length} characters, not a metadata value`);
    return body;
  };

  const token = await request('PUT', IMDS_TOKEN_PATH, { [IMDS_TOKEN_TTL_HEADER]: String(IMDS_TOKEN_TTL_SECONDS) });
  if (!isImdsToken(token)) throw new Error(`instance metadata: PUT ${IMDS_TOKEN_PATH} answered something that is not a token; ${HINT}`);
  const get = (path: string) => request('GET', path, { [IMDS_TOKEN_HEADER]: token });

  const instanceId = await get(imdsPaths.instanceId);
  const macText = await get(imdsPaths.mac);
  const mac = parseMac(macText);
  if ('error' in mac) throw new Error(`instance metadata: ${mac.error}`);
  const interfaceId = await get(imdsPaths.interfaceId(mac.value));
  const localIpv4s = await get(imdsPaths.localIpv4s(mac.value));
  const localIpv4 = await get(imdsPaths.localIpv4);

  const identity = parseInstanceIdentity({ instanceId, mac: macText, interfaceId, localIpv4s, localIpv4 });
  if ('error' in identity) throw new Error(`instance metadata: ${identity.error}`);
  return identity;
}

const errorText = (err: unknown): string => {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
};
