// This instance's identity for the HA pair, read from IMDSv2 through the one
// client (./imds.ts): the instance id, the primary interface and its private
// addresses. Every answer is validated in src/core/ha/identity.ts; any
// failure is one Error that says which request failed and what to check.

import { imdsPaths, parseInstanceIdentity, parseMac, type InstanceIdentity } from '../core/ha/identity.js';
import { ImdsError, type ImdsClient } from './imds.js';

export type { InstanceIdentity } from '../core/ha/identity.js';

/**
 * The instance id, primary interface and its private addresses. `timeoutMs`
 * bounds the whole read (token and all values), not each request.
 */
export function readInstanceIdentity(imds: ImdsClient, timeoutMs: number): Promise<InstanceIdentity> {
  return imds.read(timeoutMs, async (get) => {
    const instanceId = await get(imdsPaths.instanceId);
    const macText = await get(imdsPaths.mac);
    const mac = parseMac(macText);
    if ('error' in mac) throw new ImdsError(`instance metadata: ${mac.error}`);
    const interfaceId = await get(imdsPaths.interfaceId(mac.value));
    const localIpv4s = await get(imdsPaths.localIpv4s(mac.value));
    const localIpv4 = await get(imdsPaths.localIpv4);
    const identity = parseInstanceIdentity({ instanceId, mac: macText, interfaceId, localIpv4s, localIpv4 });
    if ('error' in identity) throw new ImdsError(`instance metadata: ${identity.error}`);
    return identity;
  });
}
