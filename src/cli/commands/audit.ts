// `cachenat audit`: who reached which cache in a time window, read from the
// audit log (audit.file and its rotated copies, or the journal; --file for a
// copy taken elsewhere). The figures come from the
// pure summariser; this module only finds the lines.

import { parseAuditLine } from '../../core/audit/record.js';
import { parseWindowBound, renderSummaryText, SummaryBuilder } from '../../core/audit/summary.js';
import { auditFiles, fileLines, journalLines } from '../../audit/log-reader.js';
import { EXIT, UsageError } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import type { CommandOptions } from './types.js';
import { loadFor, print } from './shared.js';

/** The unit whose journal holds the audit lines when audit.file is not set. */
const UNIT = 'cachenat.service';

export async function auditCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const now = io.now();
  const bound = (flag: 'since' | 'until', text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const ms = parseWindowBound(text, now);
    if (ms === undefined) throw new UsageError(`--${flag} takes a time ago (90m, 24h, 7d) or an ISO 8601 time (2026-12-07T13:00:00Z), not "${text}"`);
    return ms;
  };
  const window = { fromMs: bound('since', options.since, now - 86_400_000), toMs: bound('until', options.until, now) };
  if (window.fromMs >= window.toMs) throw new UsageError('--since must come before --until');

  let lines: AsyncIterable<string>;
  if (options.file !== undefined) {
    lines = fileLines([options.file]);
  } else {
    const { config } = await loadFor(options, io);
    if (!config.audit?.enabled) {
      print(io.stderr, 'cachenat: audit is off in this config (audit.enabled); nothing to summarise. Pass --file to read a copy of an audit log');
      return EXIT.failure;
    }
    lines = config.audit.file === undefined ? journalLines(UNIT, window.fromMs, window.toMs) : fileLines(await auditFiles(config.audit.file, window.fromMs));
  }
  const builder = new SummaryBuilder(window);
  for await (const line of lines) {
    const record = parseAuditLine(line);
    if (record !== undefined) builder.add(record);
  }
  const summary = builder.finish();
  print(io.stdout, options.json ? JSON.stringify(summary, null, 2) : renderSummaryText(summary));
  return EXIT.ok;
}
