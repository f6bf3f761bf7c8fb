// `cachenat audit`: who reached which cache in a time window, read from the
// audit log (audit.file and its rotated copies, or the journal; --file for a
// copy taken elsewhere). The figures come from the
// pure summariser; this module only finds the lines.

import { parseAuditLine } from '../../core/audit/record.js';
import { parseWindowBound, renderSummaryText, SummaryBuilder } from '../../core/audit/summary.js';
import { auditFiles, fileLines, journalLines } from '../../audit/log-reader.js';
import { EXIT, UsageError } from '../exit-codes.js';
import { isSet, JSON_FLAG, valueOf, type CommandModule, type CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { loadFor, print, printJson } from './shared.js';

/** The unit whose journal holds the audit lines when audit.file is not set. */
const UNIT = 'cachenat.service';

export const command: CommandModule = {
  flags: [
    { flags: '--since <when>', help: 'from this long ago (90m, 24h, 7d) or this ISO 8601 time (default: 24h)' },
    { flags: '--until <when>', help: 'until this long ago or this ISO 8601 time (default: now)' },
    { flags: '--file <path>', help: 'read this audit log file instead of audit.file or the journal' },
    JSON_FLAG,
  ],
  details: `Summarises the connection audit (config audit.enabled) for a window: connections, bytes each
way, how they ended (closed, timed-out, target-moved, revoked, deleted), the top clients per cache,
the flows cut by a revocation, and the times the log may miss flows (reader overruns, restarts).
A connection belongs to the window its end falls in. Without --file it reads audit.file and the
copies logrotate left beside it, or, without audit.file, the journal of ${UNIT}.

--json prints {"from", "to", "totals", "flows", "reasons", "caches": [{"cache", "flows",
"bytesFromClient", "bytesToClient", "targets", "clients": [...], "otherClients"}], "revoked": [...],
"gaps": [...]} (docs/audit.md has the schema).
Exit codes: 0, 1 audit is off in the config (and no --file), 64 bad --since/--until, 78 bad config.`,
  run: auditCommand,
};

async function auditCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const now = io.now();
  const bound = (flag: 'since' | 'until', fallback: number): number => {
    const text = valueOf(options, flag);
    if (text === undefined) return fallback;
    const ms = parseWindowBound(text, now);
    if (ms === undefined) throw new UsageError(`--${flag} takes a time ago (90m, 24h, 7d) or an ISO 8601 time (2026-12-07T13:00:00Z), not "${text}"`);
    return ms;
  };
  const window = { fromMs: bound('since', now - 86_400_000), toMs: bound('until', now) };
  if (window.fromMs >= window.toMs) throw new UsageError('--since must come before --until');

  const file = valueOf(options, 'file');
  let lines: AsyncIterable<string>;
  if (file !== undefined) {
    lines = fileLines([file]);
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
  if (isSet(options, 'json')) printJson(io.stdout, summary);
  else print(io.stdout, renderSummaryText(summary));
  return EXIT.ok;
}
