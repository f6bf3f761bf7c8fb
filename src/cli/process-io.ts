// The real CliIo: this process's streams and environment, the host's kernel
// and AWS. The machine part (and with it the AWS SDK) is imported on first use.

import { createLogger } from '../log/logger.js';
import { hostProbe } from '../host/host-probe.js';
import { isProcessAlive } from '../util/process-alive.js';
import type { CliIo } from './io.js';

export function processIo(): CliIo {
  const env = process.env;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
    env,
    machine: async () => (await import('./edges.js')).realMachine(),
    logger: (level, to) => (to === 'stdout' ? createLogger({ level }) : createLogger({ level, destination: { write: (line: string) => void process.stderr.write(line) } })),
    host: hostProbe(env),
    health: {},
    isAlive: isProcessAlive,
    signal: (pid, signal) => process.kill(pid, signal),
    now: () => Date.now(),
  };
}
