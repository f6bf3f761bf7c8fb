// The real kernel edge: iptables-save and iptables-restore, spawned with
// argument arrays (never a shell), with a timeout, their failures turned into
// errors an operator can act on.

import { execa } from 'execa';
import type { Netfilter, Table } from '../core/netfilter/types.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export type CommandRunner = (
  file: string,
  args: string[],
  options?: { input?: string; timeoutMs?: number },
) => Promise<CommandResult>;

const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs a program; never rejects. A missing program exits 127, a timeout 124, as a shell would report them. */
export const runCommand: CommandRunner = async (file, args, options = {}) => {
  const result = await execa(file, args, {
    reject: false,
    // No stdin pipe for programs given no input: it costs execa a stream per spawn, on every pass.
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // Messages in English so errors can be recognised and read the same everywhere.
    env: { LC_ALL: 'C' },
    stripFinalNewline: false,
  });
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  if (result.code === 'ENOENT') return { stdout, stderr: `${file}: command not found (is it installed and on PATH?)`, exitCode: 127 };
  if (result.timedOut) return { stdout, stderr: `${stderr}${file}: timed out after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`, exitCode: 124 };
  if (result.exitCode === undefined) return { stdout, stderr: `${stderr}${file}: ${result.shortMessage}`, exitCode: 1 };
  return { stdout, stderr, exitCode: result.exitCode };
};

const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

/** A runner whose programs run inside the named network namespace (tests and the lab). */
export function inNamespace(ns: string, run: CommandRunner = runCommand): CommandRunner {
  if (!NAMESPACE.test(ns)) throw new Error(`invalid network namespace name ${JSON.stringify(ns)}`);
  return (file, args, options) => run('ip', ['netns', 'exec', ns, file, ...args], options);
}

/** A kernel command failed. `retryable` is true when trying again later may succeed (lock held, resources). */
export class KernelError extends Error {
  override readonly name = 'KernelError';
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number,
    readonly stderr: string,
    readonly retryable: boolean,
    /** For a restore: the input line iptables-restore named, when it named one. */
    readonly failedLine?: { number: number; text: string },
  ) {
    super(message);
  }
}

const RETRYABLE = /xtables lock|another app is currently holding|resource temporarily unavailable|cannot allocate memory|try again/i;

/** Builds the error for a failed command; `input` is what it read on stdin. */
export function kernelError(command: string, result: CommandResult, input?: string): KernelError {
  const stderr = result.stderr.trim();
  const firstLines = stderr.split('\n').slice(0, 3).join(' | ') || '(no message)';
  const retryable = result.exitCode === 4 || RETRYABLE.test(stderr);

  let failedLine: { number: number; text: string } | undefined;
  const lineNumber = /(?:error occurred at line|line):? (\d+)/i.exec(stderr);
  if (lineNumber && input !== undefined) {
    const number = Number(lineNumber[1]);
    failedLine = { number, text: input.split('\n')[number - 1] ?? '' };
  }

  let advice: string;
  if (result.exitCode === 127) advice = 'install iptables (Debian: apt-get install iptables; Amazon Linux: dnf install iptables-nft)';
  else if (result.exitCode === 124) advice = 'the kernel or the xtables lock is not answering; it is retried on the next pass';
  else if (retryable) advice = 'another program holds the xtables lock or the kernel is short of resources; it is retried on the next pass';
  else if (/permission denied|operation not permitted/i.test(stderr)) advice = 'run as root or with CAP_NET_ADMIN and CAP_NET_RAW';
  else advice = 'check that the kernel has the nat, conntrack, addrtype and comment modules, and that one iptables backend (nf_tables or legacy) is used throughout';

  const at = failedLine ? ` at input line ${failedLine.number} (${JSON.stringify(failedLine.text)})` : '';
  const message = `${command} failed with exit code ${result.exitCode}${at}: ${firstLines}; ${advice}`;
  return new KernelError(message, command, result.exitCode, stderr, retryable, failedLine);
}

export class IptablesNetfilter implements Netfilter {
  constructor(private readonly run: CommandRunner = runCommand) {}

  async save(table: Table): Promise<string> {
    return this.saveWith(['-t', table]);
  }

  async saveAll(options: { counters?: boolean } = {}): Promise<string> {
    return this.saveWith(options.counters ? ['-c'] : []);
  }

  async restore(text: string): Promise<void> {
    // -w waits for the xtables lock (legacy backend) instead of failing at once.
    const args = ['--noflush', '-w', '5'];
    const result = await this.run('iptables-restore', args, { input: text });
    if (result.exitCode !== 0) throw kernelError(`iptables-restore ${args.join(' ')}`, result, text);
  }

  private async saveWith(args: string[]): Promise<string> {
    const result = await this.run('iptables-save', args);
    if (result.exitCode !== 0) throw kernelError(['iptables-save', ...args].join(' '), result);
    return result.stdout;
  }
}
