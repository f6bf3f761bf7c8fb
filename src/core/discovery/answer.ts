// Reading one untrusted describe answer: the pieces the classic and the
// Serverless walks (topology.ts, serverless.ts) share. Pure.

import type { DiscoveredTarget } from '../model.js';
import { endpointAddressProblem, isPort, show } from '../grammar.js';

/** What the walks share: the filter, where results go, and every cluster (for group engines). */
export interface Collector {
  selected: (ids: string[]) => boolean;
  add: (target: DiscoveredTarget, where: string) => void;
  skip: (where: string, reason: string) => void;
  clusters: Record<string, unknown>[];
}

/** A checked endpoint, its problem, or undefined when the API gave none (yet). */
export function readEndpoint(value: unknown): { address: string; port: number } | { problem: string } | undefined {
  if (!isRecord(value)) return undefined;
  const address = value.Address ?? undefined;
  const port = value.Port ?? undefined;
  if (address === undefined && port === undefined) return undefined;
  if (address === undefined) return { problem: `endpoint has a port (${show(port)}) but no address` };
  if (port === undefined) return { problem: `endpoint ${show(address)} has no port, or one that is not a number` };
  if (typeof address !== 'string') return { problem: `endpoint address ${show(address)} is not text` };
  const addressProblem = endpointAddressProblem(address);
  if (addressProblem !== undefined) return { problem: `endpoint address ${addressProblem}` };
  if (!isPort(port)) {
    return { problem: `endpoint port ${show(port)} is not a TCP port (1-65535)` };
  }
  return { address, port };
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** The objects of a list, ignoring anything that is not an object or a list that is not a list. */
export const listOf = (value: unknown): Record<string, unknown>[] => (Array.isArray(value) ? value.filter(isRecord) : []);

export const listOfValues = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
