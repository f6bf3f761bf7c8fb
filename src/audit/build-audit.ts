// The audit as the daemon runs it on this host: python3's reader, the file or
// the journal, the kernel's own sysctls.

import type { Config } from '../core/config/schema.js';
import type { Logger } from '../log/logger.js';
import type { AuditControl } from './audit-control.js';
import { AuditService } from './audit-service.js';
import { ensureAuditSysctls } from './conntrack-sysctl.js';
import { FileSink, JournalSink } from './sinks.js';

export function auditFactory(logger: Logger): (config: Config) => AuditControl {
  return (config) =>
    new AuditService(config, {
      openSink: (audit, problems) => (audit.file === undefined ? new JournalSink(logger) : new FileSink(audit.file, problems)),
      ensureSysctls: () => ensureAuditSysctls(),
      logger,
      now: () => Date.now(),
    });
}
