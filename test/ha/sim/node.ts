// The real HA node of one simulated host, built from src/ha/ with the
// world's edges: the real DynamoDB store and Elastic IP client on fake SDK
// clients, the host's clocks and timers. And how the world reads the shared
// map back out of the table for its invariants.

import { DynamoHaStore } from '../../../src/ha/dynamo-store.js';
import { createElasticIps } from '../../../src/ha/elastic-ips.js';
import { HaNode } from '../../../src/ha/ha-node.js';
import { EC2_TIMEOUT_MS, storeTimeoutMs } from '../../../src/core/ha/timing.js';
import { readChunkItem, readMapHead, chunkKey } from '../../../src/core/ha/items.js';
import { assembleMap } from '../../../src/core/ha/map-chunks.js';
import type { HaStatus } from '../../../src/core/ha/ha-status.js';
import type { PortState } from '../../../src/core/ports/port-state.js';
import type { AppliedWrite, Item } from './dynamo-model.js';
import { ALLOCATION_ID, GROUP, TABLE, type Host, type World } from './world.js';

/** Both instances of the simulated pair run the same config. */
const FINGERPRINT = { 'ports.reuseAfter': '0123456789abcdef' };

export interface SimNode {
  /** The real node, for tests that look inside. */
  readonly real: HaNode;
  run(signal: AbortSignal): Promise<void>;
  mapForPass: HaNode['mapForPass'];
  commit: HaNode['commit'];
  noteFollowed: HaNode['noteFollowed'];
  release(why: string): Promise<unknown>;
  status(): HaStatus;
  /** The role status() would show, cheaply. */
  role(): HaStatus['role'];
  /** This node counts its hold as confirmed now (on its own clock). */
  confirmed(): boolean;
}

export function buildSimNode(world: World, host: Host): SimNode {
  const own = world.scenario.hosts[host.index]?.node;
  const store = new DynamoHaStore({ region: 'us-east-1', table: TABLE, group: GROUP, timeoutMs: storeTimeoutMs(world.leaseMs), client: world.dynamoClient(host, storeTimeoutMs(world.leaseMs)) });
  const addresses = createElasticIps({ region: 'us-east-1', timeoutMs: EC2_TIMEOUT_MS, client: world.ec2Client(host, EC2_TIMEOUT_MS) });
  const node = new HaNode(
    {
      group: GROUP,
      leaseMs: world.leaseMs,
      fingerprint: own?.fingerprint ?? FINGERPRINT,
      ...(own?.listenAddresses ? { listenAddresses: own.listenAddresses } : { elasticIp: ALLOCATION_ID }),
    },
    {
      store,
      addresses,
      identity: async () => host.identity,
      monotonic: () => host.monotonic(),
      wallClock: () => host.wall(),
      deadline: (at) => host.deadline(at),
      sleep: host.sleep,
      token: world.token,
      random: () => world.rng.next(),
      logger: host.logger,
    },
  );
  return {
    real: node,
    run: (signal) => node.run(signal),
    mapForPass: (local) => node.mapForPass(local),
    commit: (base, planned) => node.commit(base, planned),
    noteFollowed: (waiting, misfits) => node.noteFollowed(waiting, misfits),
    release: (why) => node.release(why),
    status: () => node.status(),
    role: () => node.role,
    confirmed: () => node.hold() !== undefined,
  };
}

/** The shared map as the table holds it after `write`, if `write` was a head write (the chunks it lists are read from the table, as a reader would). */
export function decodeMap(group: string, items: ReadonlyMap<string, Item>, write: AppliedWrite, decoded: Map<string, PortState>): { term: number; state: PortState } | undefined {
  if (write.pk !== `${group}#map` || write.after === undefined) return undefined;
  const head = readMapHead(group, write.after);
  if (head.kind !== 'ok') throw new Error(`the table holds an invalid map head: ${head.kind === 'invalid' ? head.problem : 'absent'}`);
  const parts = head.item.chunks.map((c) => {
    const key = chunkKey(group, head.item.term, c);
    const raw = items.get(key);
    if (raw === undefined) throw new Error(`the map head lists chunk ${c.id.slice(0, 12)} of term ${head.item.term}, which is not in the table`);
    const known = decoded.get(key);
    if (known) return known;
    const read = readChunkItem(group, head.item.term, c, raw);
    if (read.kind !== 'ok') throw new Error(`the map head lists chunk ${c.id.slice(0, 12)} of term ${head.item.term}, which is ${read.kind === 'absent' ? 'not in the table' : read.problem}`);
    decoded.set(key, read.state);
    return read.state;
  });
  const map = assembleMap(parts);
  if ('problem' in map) throw new Error(`the table holds an invalid map: ${map.problem}`);
  return { term: head.item.term, state: map.state };
}
