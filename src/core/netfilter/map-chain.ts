// The kernel's copy of the port map: the records of chain CACHENAT-MAP
// (grammar in src/core/grammar.ts). Written with every change in the same
// `iptables-restore` as the rules, so the kernel alone is enough to rebuild
// the whole map (recover.ts): every target and its listener, those without
// rules too, every quarantined listener, and the flows a change took away
// that are not forgotten yet. Pure.

import type { FlowFilter } from '../model.js';
import { OWNER_COMMENT } from './types.js';
import { MAP_CHAIN, MAP_RECORD_PATTERN, mapRecordLine, mapRecordText, parseMapRecord, type MapRecord } from '../grammar.js';
import type { PortState } from '../ports/port-state.js';
import type { SavedTable } from './parse-save.js';

/** The records of a map and of the flows still to forget, in a fixed order (an idle pass writes nothing). */
export function mapRecordsOf(state: PortState, forget: readonly FlowFilter[]): MapRecord[] {
  const records: MapRecord[] = [];
  for (const e of state.entries) {
    const entry: MapRecord = { type: 'entry', key: e.key, engine: e.engine, listenPort: e.listenPort, targetPort: e.targetPort, address: e.address };
    if (e.listenAddress !== undefined) entry.listenAddress = e.listenAddress;
    if (e.fallback) entry.fallback = true;
    if (e.tls !== undefined) entry.tls = e.tls;
    records.push(entry);
    if (e.ip === undefined) for (const ip of e.lastIps ?? []) records.push({ type: 'stale', key: e.key, ip });
  }
  for (const r of state.released) {
    records.push({ type: 'quarantined', key: r.key, listenPort: r.port, releasedAt: r.releasedAt, ...(r.address === undefined ? {} : { listenAddress: r.address, fallback: true as const }) });
  }
  for (const r of state.releasedAddresses ?? []) {
    records.push({ type: 'quarantined', key: r.key, listenAddress: r.address, ...(r.port === undefined ? {} : { listenPort: r.port }), releasedAt: r.releasedAt });
  }
  const forgets = forget.map((filter): MapRecord => ({ type: 'forget', filter }));
  forgets.sort((a, b) => (mapRecordText(a) < mapRecordText(b) ? -1 : 1));
  return [...records, ...forgets];
}

/**
 * The chain's rule lines. Like every line cachenat writes, each value is
 * checked again on the way out: a record must read back as one (so nothing in
 * it can end the comment or read as an option).
 */
export function renderMapChain(state: PortState, forget: readonly FlowFilter[]): string[] {
  const checked = new Set<string>();
  const lines = mapRecordsOf(state, forget).map((record) => {
    const text = mapRecordText(record);
    if (!checkedLastTime.has(text) && parseMapRecord(text) === undefined) {
      throw new Error(`refusing to render iptables rules: the kernel's copy of the map: ${JSON.stringify(text.slice(0, 120))} is not a record cachenat reads back`);
    }
    checked.add(text);
    return mapRecordLine(record);
  });
  checkedLastTime = checked;
  return lines;
}

// The records the previous render checked: a steady pass renders the same thousands again.
let checkedLastTime = new Set<string>();

const RECORD_LINE = new RegExp(`^${MAP_RECORD_PATTERN}$`);

// A pass reads the chain several times (recovery, what it admits, what is pending): parse each read once.
const parsed = new WeakMap<readonly string[], MapRecord[]>();
const parsedTyped = new WeakMap<readonly string[], Map<string, MapRecord[]>>();

/**
 * The records installed, or undefined when the chain is not (rules written
 * before the kernel carried the map). Lines that do not read as a record are
 * skipped. `types`: only records of these types (a pass needs the few stale
 * and forget records, not the thousands of entries).
 */
export function readMapChain(nat: SavedTable, types?: readonly MapRecord['type'][]): MapRecord[] | undefined {
  const chain = nat.chains.get(MAP_CHAIN);
  if (!chain) return undefined;
  if (types !== undefined) {
    const byTypes = parsedTyped.get(chain.rules) ?? new Map<string, MapRecord[]>();
    parsedTyped.set(chain.rules, byTypes);
    const cached = byTypes.get(types.join());
    if (cached !== undefined) return cached;
    const heads = types.map((type) => `-A ${MAP_CHAIN} -m comment --comment "${OWNER_COMMENT} ${type} `);
    const records = chain.rules.flatMap((line) => {
      if (!heads.some((head) => line.startsWith(head))) return [];
      const text = RECORD_LINE.exec(line)?.[1];
      const record = text === undefined ? undefined : parseMapRecord(text);
      return record ? [record] : [];
    });
    byTypes.set(types.join(), records);
    return records;
  }
  let records = parsed.get(chain.rules);
  if (records === undefined) {
    records = chain.rules.flatMap((line) => {
      const text = RECORD_LINE.exec(line)?.[1];
      const record = text === undefined ? undefined : parseMapRecord(text);
      return record ? [record] : [];
    });
    parsed.set(chain.rules, records);
  }
  return records;
}

/** The flows a change took away that the kernel says are still to be forgotten. */
export const pendingForgets = (nat: SavedTable): FlowFilter[] =>
  (readMapChain(nat, ['forget']) ?? []).flatMap((r) => (r.type === 'forget' ? [r.filter] : []));

/** One name per set of flows: the text of its record. */
export const flowFilterId = (filter: FlowFilter): string => mapRecordText({ type: 'forget', filter });
