// Thin wrappers over iproute2's network-namespace commands. Each has a sync
// twin where teardown may run from a process 'exit' handler, where nothing
// asynchronous gets to finish.
import { execa, execaSync } from 'execa';

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Killed for taking longer than timeoutMs. */
  timedOut?: boolean;
}

export interface ExecOptions {
  /** Throw when the command exits non-zero (default true). */
  reject?: boolean;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
  /** Drop the output's final newline (default true); false keeps stdout exactly as printed. */
  stripFinalNewline?: boolean;
}

/** Runs a program and returns its output; by default a non-zero exit throws with the command and its stderr. */
export async function run(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const result = await execa(file, args, {
    reject: false,
    timeout: options.timeoutMs ?? 30_000,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    ...(options.env ? { env: options.env } : {}),
    ...(options.stripFinalNewline === false ? { stripFinalNewline: false } : {}),
  });
  const outcome: ExecResult = { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, ...(result.timedOut ? { timedOut: true } : {}) };
  if (outcome.exitCode !== 0 && options.reject !== false) {
    const why = result.timedOut ? `timed out after ${options.timeoutMs ?? 30_000} ms` : `exited ${result.exitCode ?? result.signal}`;
    throw new Error(`${[file, ...args].join(' ')} ${why}: ${result.stderr.trim() || result.stdout.trim() || '(no output)'}`);
  }
  return outcome;
}

/** The argument list that runs `file args…` inside namespace `ns` (as `ip netns exec`). */
export const netnsExecArgs = (ns: string, file: string, args: readonly string[]): string[] => [
  'netns',
  'exec',
  ns,
  file,
  ...args,
];

/** Runs a program inside a namespace. `ip netns exec` also bind-mounts /etc/netns/<ns>/* over /etc. */
export const execIn = (ns: string, file: string, args: readonly string[], options?: ExecOptions): Promise<ExecResult> =>
  run('ip', netnsExecArgs(ns, file, args), options);

/**
 * Applies iproute2 commands (`link add …`, `addr add …`) in one `ip -batch`
 * call, inside `ns` or in the caller's namespace when `ns` is undefined.
 * One call per namespace keeps bring-up fast; the first failing line aborts.
 */
export async function ipBatch(ns: string | undefined, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const where = ns === undefined ? [] : ['-n', ns];
  try {
    await run('ip', [...where, '-batch', '-'], { input: lines.join('\n') + '\n' });
  } catch (error) {
    throw new Error(`setting up ${ns ?? 'the root namespace'} failed (${(error as Error).message})\ncommands:\n${lines.join('\n')}`);
  }
}

// `ip netns list` prints "name (id: 3)" for namespaces with a peer id.
const parseNamespaceList = (text: string): string[] =>
  text
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');

export async function listNamespaces(): Promise<string[]> {
  return parseNamespaceList((await run('ip', ['netns', 'list'])).stdout);
}

const parsePids = (text: string): number[] =>
  text
    .split('\n')
    .filter((line) => /^\d+$/.test(line.trim()))
    .map(Number);

/** Every process living in the namespace, whoever started it. */
export async function namespacePids(ns: string): Promise<number[]> {
  return parsePids((await run('ip', ['netns', 'pids', ns], { reject: false })).stdout);
}

export function namespacePidsSync(ns: string): number[] {
  return parsePids(execaSync('ip', ['netns', 'pids', ns], { reject: false }).stdout);
}

/** Deletes a namespace if it exists. Its interfaces (veth ends, bridges) go with it. */
export async function deleteNamespace(ns: string): Promise<void> {
  const result = await run('ip', ['netns', 'delete', ns], { reject: false });
  if (result.exitCode !== 0 && (await listNamespaces()).includes(ns)) {
    throw new Error(`ip netns delete ${ns} failed: ${result.stderr.trim()}`);
  }
}

export function deleteNamespaceSync(ns: string): void {
  execaSync('ip', ['netns', 'delete', ns], { reject: false });
}

/** Sends a signal, ignoring a process that is already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
