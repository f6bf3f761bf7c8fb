// Everything a command reads or changes outside its own memory, behind one
// object: the bin entry passes the real process and machine, tests pass fakes
// and run every command in-process.

import type { Config } from '../core/config/schema.js';
import type { ReconcilerEdges } from '../daemon/reconciler.js';
import type { DaemonDeps, IpForwardControl } from '../daemon/run-daemon.js';
import type { Notifier } from '../daemon/notify.js';
import type { HealthDeps } from '../health/command.js';
import type { Logger } from '../log/logger.js';
import type { BackendReport } from '../netfilter/backend.js';

export interface TextSink {
  write(text: string): void;
}

/** The kernel, AWS, DNS and the service manager: what commands that change the system need. */
export interface Machine {
  /**
   * Builds the edges for a config. `run` calls the returned function again on
   * each reload (SIGHUP); it reuses the SDK client while its settings hold and
   * destroys the old one when they change.
   */
  edgeFactory(logger: Logger): (config: Config) => ReconcilerEdges;
  ipForward(logger: Logger): IpForwardControl;
  detectBackend(): Promise<BackendReport>;
  notifier(logger: Logger): Notifier;
  daemon: Pick<DaemonDeps, 'sleep' | 'random' | 'signals'>;
  /** What `run` does after each pass for metrics and `status`'s connection counts (conntrack, the textfile). */
  metrics(logger: Logger): DaemonDeps['metrics'];
  /** HA pair (config `ha`): this instance's node, or undefined without the section. */
  haNode(config: Config, logger: Logger): DaemonDeps['ha'];
  /** Connection audit (config `audit`): what `run` builds it with. */
  audit?(logger: Logger): DaemonDeps['audit'];
}

/** Where `endpoints` looks for the address clients dial, after forward.publicAddress. */
export interface PublicAddressSources {
  /** The instance's public IPv4 from IMDSv2; undefined and a reason when there is none. */
  imds(): Promise<{ address: string } | { reason: string }>;
  /** The first IPv4 address of a local interface. */
  interfaceIpv4(name: string): string | undefined;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  env: NodeJS.ProcessEnv;
  /** Loaded only by the commands that need it: `health` and `status` run over SSH and must not pay for loading the AWS SDK. */
  machine(): Promise<Machine>;
  /** The daemon logs to stdout (journald); one-shot commands to stderr, so their stdout stays their output. */
  logger(level: string, to: 'stdout' | 'stderr'): Logger;
  publicAddress: PublicAddressSources;
  /** IPv4 addresses per local interface (address mode checks its listen addresses against them). */
  interfaceAddresses(): Record<string, string[]>;
  /** Overrides for what `health` reads (status file, /proc, kernel, probes); env and stdout come from here. */
  health: Partial<HealthDeps>;
  /** Whether a process exists (the pid in the daemon's snapshot). */
  isAlive(pid: number): boolean;
  /** Sends a signal to the daemon (`ha handover`). */
  signal(pid: number, signal: NodeJS.Signals): void;
  now(): number;
}
