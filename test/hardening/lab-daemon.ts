// Helpers for the hardening lab tests: a daemon started through the rig with a
// PATH or config of the test's choosing, its status snapshot, its JSON log lines, and small
// programs (written by the test, run without a shell) that stand in for
// broken system tools.

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabRig, StartOptions } from '../../lab/rig.js';
import type { LabProcess } from '../../lab/process.js';
import type { StatusSnapshot } from '../../src/core/daemon/status-snapshot.js';

/** Starts `cachenat run` in the lab's NAT namespace (the rig's harness, without tap's preloads); `waitReady: false` returns at once. */
export async function startDaemon(rig: LabRig, options: StartOptions = {}): Promise<LabProcess> {
  return (await rig.start({ ...options, env: { NODE_OPTIONS: '', ...options.env } })).process;
}

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** The daemon's JSON log lines from `from` (a mark) on. */
export function logLines(proc: LabProcess, from = 0): LogLine[] {
  return proc.output.slice(from).flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as LogLine;
      return typeof parsed.msg === 'string' ? [parsed] : [];
    } catch {
      return [];
    }
  });
}

export async function readSnapshot(rig: LabRig): Promise<StatusSnapshot> {
  const r = await rig.lab.exec(rig.lab.ns.nat, 'cat', [join(rig.dir, 'run', 'status.json')]);
  return JSON.parse(r.stdout) as StatusSnapshot;
}

/** Waits until the snapshot is newer than `after` (ms) and satisfies `check`. */
export async function waitForSnapshot(rig: LabRig, check: (s: StatusSnapshot) => boolean, timeoutMs = 10_000, after = 0): Promise<StatusSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusSnapshot | undefined;
  for (;;) {
    last = await readSnapshot(rig).catch(() => last);
    if (last && Date.parse(last.lastPassAt ?? '') > after && check(last)) return last;
    if (Date.now() > deadline) throw new Error(`snapshot never matched within ${timeoutMs} ms; last: ${JSON.stringify(last)?.slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A directory to put first on PATH, holding stand-ins for programs: each is a
 * small node script that runs `body` (JavaScript, with `args` = its argv).
 */
export function fakeBin(dir: string, programs: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, body] of Object.entries(programs)) {
    const path = join(dir, name);
    writeFileSync(path, `#!${process.execPath}\nconst args = process.argv.slice(2);\n${body}\n`);
    chmodSync(path, 0o755);
  }
  return dir;
}

/** The DNAT lines of the NAT namespace, as `port → target`. */
export async function dnatTargets(rig: LabRig): Promise<Map<number, string>> {
  const map = new Map<number, string>();
  for (const line of (await rig.save('nat')).split('\n')) {
    const m = /^-A CACHENAT-DNAT .*--dport (\d+) .*--to-destination (\S+)$/.exec(line);
    if (m) map.set(Number(m[1]), m[2]!);
  }
  return map;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
