// A Debian rootfs booted with systemd as PID 1 (see pid1.sh), inside a
// network namespace the caller provides. Commands run in it through nsenter.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, rmdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type ExecOptions, type ExecResult } from '../../lab/netns.js';

const pid1Script = fileURLToPath(new URL('./pid1.sh', import.meta.url));
const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const HIERARCHIES = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'];

export class Container {
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  /** Host pid of the container's PID 1. */
  pid = 0;

  constructor(
    readonly root: string,
    readonly netns: string,
    readonly cgroup: string,
    readonly logFile: string,
  ) {}

  /** Starts PID 1 and waits until `systemctl is-system-running` settles; returns that state. */
  async boot(timeoutMs = 120_000): Promise<string> {
    const log = openSync(this.logFile, 'a');
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, 'sh', pid1Script, this.root, this.cgroup], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (!this.pid) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`PID 1 did not start; see ${this.logFile}`);
      // The script's short-lived helpers (mkdir) are children too: take only the
      // one that is PID 1 of its own PID namespace, i.e. what unshare --fork made.
      const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
      const pid1 = children.map(Number).find((pid) => isNamespacePid1(pid));
      if (pid1) this.pid = pid1;
      else await sleep(50);
    }
    for (;;) {
      const state = (await this.exec('systemctl', ['is-system-running', '--wait'], { reject: false, timeoutMs: Math.max(1000, deadline - Date.now()) })).stdout.trim();
      if (['running', 'degraded'].includes(state)) return state;
      if (Date.now() > deadline) throw new Error(`systemd did not finish booting (state ${state || 'unknown'}); see ${this.logFile}`);
      await sleep(250);
    }
  }

  /** Runs a program inside the container (all its namespaces, its root), with a clean environment. */
  exec(file: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    if (!this.pid) throw new Error('container is not running');
    // Nothing of this process's environment (the test runner's NODE_OPTIONS loaders) may leak in.
    return run('nsenter', ['-t', String(this.pid), '-a', '-r', '-w', 'env', '-i', `PATH=${CONTAINER_PATH}`, 'LANG=C.UTF-8', file, ...args], options);
  }

  /** As an unprivileged user (nobody). */
  execAsNobody(file: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    return this.exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--reset-env', file, ...args], options);
  }

  async show(unit: string, ...properties: string[]): Promise<Record<string, string>> {
    const out = await this.exec('systemctl', ['show', unit, ...properties.map((p) => `--property=${p}`)], { reject: false });
    return Object.fromEntries(out.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  /** Clean shutdown, as `systemctl poweroff` does it without asking logind; killed if it takes too long. */
  async poweroff(timeoutMs = 60_000): Promise<void> {
    if (!this.running) return;
    await this.exec('systemctl', ['start', 'poweroff.target', '--job-mode=replace-irreversibly', '--no-block'], { reject: false });
    if (!(await this.#waitExit(timeoutMs))) await this.kill();
    this.#afterExit();
  }

  /** Kills PID 1, and with it the whole PID namespace and its mounts. */
  async kill(): Promise<void> {
    if (this.running && this.pid) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await this.#waitExit(10_000);
    }
    this.#afterExit();
  }

  /** True when PID 1 exited within timeoutMs. */
  async #waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([this.#exited!.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Kills what is left in the container's cgroups and removes them. */
  #afterExit(): void {
    this.pid = 0;
    for (const hierarchy of HIERARCHIES) {
      const dir = join(hierarchy, this.cgroup);
      if (!existsSync(dir)) continue;
      if (existsSync(join(dir, 'cgroup.kill'))) writeFileSync(join(dir, 'cgroup.kill'), '1');
      removeTree(dir);
    }
  }
}

function removeTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeTree(join(dir, entry.name));
  }
  try {
    rmdirSync(dir);
  } catch {
    // a process still exiting; the sweep at the next run removes it
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined, or throws after timeoutMs with `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Whether this host pid is PID 1 inside a PID namespace of its own (its NSpid line ends in 1). */
function isNamespacePid1(pid: number): boolean {
  try {
    const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
    return nspid !== undefined && nspid.length > 1 && nspid.at(-1) === '1';
  } catch {
    return false; // it has already exited
  }
}
