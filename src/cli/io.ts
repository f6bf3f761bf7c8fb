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
import type { Answer, HostInterface } from '../core/config/host.js';
import type { Listener } from '../core/host/proc-net.js';

export type RuleEdges = Pick<ReconcilerEdges, 'netfilter' | 'persistRules'>;

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
  /** The kernel's rules and their saved copy, without AWS (`flush`). */
  ruleEdges(config: Pick<Config, 'persist'>, logger: Logger): RuleEdges;
  ipForward(logger: Logger): IpForwardControl;
  detectBackend(): Promise<BackendReport>;
  notifier(logger: Logger): Notifier;
  daemon: Pick<DaemonDeps, 'sleep' | 'random' | 'signals'>;
  /** What `run` does after each pass for metrics and `status`'s connection counts (conntrack, the textfile). */
  metrics(logger: Logger): DaemonDeps['metrics'];
  /**
   * HA pair (config `ha`): this instance's node, or undefined without the section.
   * Async: the DynamoDB and EC2 clients are loaded only when a config has `ha`.
   */
  haNode(config: Config, logger: Logger): Promise<DaemonDeps['ha']>;
  /** Connection audit (config `audit`): what `run` builds it with. */
  audit?(logger: Logger): DaemonDeps['audit'];
}

/** What the host says about itself: its interfaces, routes and listeners, and its instance metadata (IMDSv2). */
export interface HostProbe {
  /** This network namespace's interfaces, with their MAC and IPv4 addresses. */
  interfaces(): HostInterface[];
  /** The interface of the default IPv4 route. */
  defaultRoute(): Promise<string | undefined>;
  /** Listening TCP sockets; undefined when they cannot be read. */
  listeners(): Promise<Listener[] | undefined>;
  /** IMDSv2 through the one client, at `endpoint` (ha.imdsEndpoint) or where the SDK's variables say. */
  imds(endpoint: string | undefined): ImdsReads;
}

/** The instance metadata cachenat reads outside HA, each a value or why there is none. */
export interface ImdsReads {
  region(): Promise<Answer<string>>;
  primaryMac(): Promise<Answer<string>>;
  /** The public IPv4; a 404 means the instance has none. */
  publicIpv4(): Promise<Answer<string>>;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  /** The terminal's width, for wrapping help text; 100 when not a terminal. */
  columns?: number | undefined;
  env: NodeJS.ProcessEnv;
  /** Loaded only by the commands that need it: `health` and `status` run over SSH and must not pay for loading the AWS SDK. */
  machine(): Promise<Machine>;
  /** The daemon logs to stdout (journald); one-shot commands to stderr, so their stdout stays their output. */
  logger(level: string, to: 'stdout' | 'stderr'): Logger;
  host: HostProbe;
  /** Overrides for what `health` reads (status file, /proc, kernel, probes); env and stdout come from here. */
  health: Partial<HealthDeps>;
  /** Whether a process exists (the pid in the daemon's snapshot). */
  isAlive(pid: number): boolean;
  /** Sends a signal to the daemon (`ha handover`). */
  signal(pid: number, signal: NodeJS.Signals): void;
  now(): number;
}
