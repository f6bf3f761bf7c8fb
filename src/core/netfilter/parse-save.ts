// Reads `iptables-save` output into chains and their rule lines.
//
// Rule lines are kept exactly as printed (minus packet counters), because
// cachenat renders its own lines in that same canonical form and compares
// them as strings.

export interface SavedChain {
  /** `ACCEPT`/`DROP` for built-in chains, `-` for user-defined ones. */
  policy: string;
  /** The `-A CHAIN …` lines of this chain, in order. */
  rules: string[];
}

export interface SavedTable {
  /** In the order iptables-save printed them. */
  chains: Map<string, SavedChain>;
}

const TABLE_LINE = /^\*(\S+)$/;
const CHAIN_LINE = /^:(\S+) (\S+)(?: \[\d+:\d+\])?$/;
const RULE_LINE = /^(?:\[\d+:\d+\] )?(-A (\S+)(?: .*)?)$/;

/** Every table in the text (a full `iptables-save`, or one `-t TABLE`). Empty text is valid: no table loaded yet. */
export function parseSaveAll(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  let currentName = '';
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) return;
    const where = `iptables-save output line ${index + 1}`;
    const table = TABLE_LINE.exec(line);
    if (table) {
      currentName = table[1]!;
      current = tables.get(currentName) ?? { chains: new Map() };
      tables.set(currentName, current);
      return;
    }
    if (line === 'COMMIT') {
      if (!current) throw new Error(`${where}: COMMIT outside a table`);
      current = undefined;
      return;
    }
    if (!current) throw new Error(`${where}: ${JSON.stringify(line)} outside a table`);
    const chain = CHAIN_LINE.exec(line);
    if (chain) {
      current.chains.set(chain[1]!, { policy: chain[2]!, rules: current.chains.get(chain[1]!)?.rules ?? [] });
      return;
    }
    const rule = RULE_LINE.exec(line);
    if (rule) {
      const saved = current.chains.get(rule[2]!);
      if (!saved) throw new Error(`${where}: rule for chain ${rule[2]} that table ${currentName} never declared`);
      saved.rules.push(rule[1]!);
      return;
    }
    throw new Error(`${where}: cannot read ${JSON.stringify(line)}`);
  });
  return tables;
}

/**
 * One table's chains. The text normally holds just that table (`iptables-save
 * -t TABLE`); when it holds several, `table` picks one (default: the first).
 * A table that is absent reads as having no chains.
 */
export function parseSave(text: string, table?: string): SavedTable {
  const tables = parseSaveAll(text);
  const picked = table === undefined ? tables.values().next().value : tables.get(table);
  return picked ?? { chains: new Map() };
}
