// The boot check the constructs' user data installs (cfn-ready, in
// deploy/lib/user-data.ts), run as shipped with stand-ins for systemctl,
// journalctl, cachenat, cfn-signal and dnf on PATH: when it signals success,
// when failure, and with what reason; that it never signals before
// `systemctl start` has returned; and that shellcheck has nothing to say.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BOOT_CHECK_SCRIPT } from '../../deploy/lib/user-data.js';

interface Health {
  code: number;
  text: string;
}

interface Scenario {
  /** systemctl start's exit code (default 0). */
  start?: number;
  /** What each `cachenat health` answers, in turn; the last one repeats. */
  health?: Health[];
  /** cfn-signal's exit code (1: CloudFormation refused the signal); 'missing': not on PATH until dnf installs it. */
  cfnSignal?: number | 'missing';
  args?: string[];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every stand-in call, in order: "name arg arg …". */
  calls: string[];
  /** The arguments of each cfn-signal call. */
  signals: string[][];
}

const ARGS = ['--stack', 'cachenat-ha-prod', '--resource', 'PairNat1GroupASG9E936F24', '--region', 'eu-west-1', '--wait', '0'];

const dir = mkdtempSync(join(tmpdir(), 'cachenat-cfn-ready-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const script = join(dir, 'cfn-ready');
writeFileSync(script, BOOT_CHECK_SCRIPT, { mode: 0o755 });

let runs = 0;
function run(s: Scenario): Run {
  const work = mkdtempSync(join(dir, `run-${++runs}-`));
  const bin = join(work, 'bin');
  const log = join(work, 'calls');
  spawnSync('mkdir', [bin]);
  const health = s.health ?? [{ code: 0, text: 'OK: cachenat 0.1.0, 8 forwards active\n[OK] ha: standby i-0abc of prod' }];
  health.forEach((h, i) => writeFileSync(join(work, `health-${i}`), h.text));
  const shim = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/bash\nprintf '%s\\n' "${name} $*" >> ${JSON.stringify(log)}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  shim('systemctl', `case $1 in start) exit ${s.start ?? 0} ;; *) exit 0 ;; esac`);
  shim('journalctl', `echo 'config error at ha.lease: expected a lease from 3s to 1h'`);
  shim(
    'cachenat',
    // The n-th call answers health-n, the last one from then on.
    `n=$(grep -c '^cachenat ' ${JSON.stringify(log)}); i=$((n - 1)); [ "$i" -lt ${health.length} ] || i=${health.length - 1}
cat ${JSON.stringify(work)}/health-$i; echo
codes=(${health.map((h) => h.code).join(' ')}); exit "\${codes[$i]}"`,
  );
  const signalShim = `exit ${s.cfnSignal === 'missing' ? 0 : (s.cfnSignal ?? 0)}`;
  if (s.cfnSignal === 'missing') {
    shim('dnf', `printf '%s\\n' '#!/bin/bash' 'printf "%s\\n" "cfn-signal $*" >> ${log}' > ${bin}/cfn-signal; chmod +x ${bin}/cfn-signal`);
  } else {
    shim('cfn-signal', signalShim);
  }
  const r = spawnSync('/bin/bash', [script, ...(s.args ?? ARGS)], {
    encoding: 'utf8',
    // /usr/bin for grep, head, tr, cut; nothing of this machine's systemd or AWS tools.
    env: { PATH: `${bin}:/usr/bin:/bin`, LANG: 'C' },
    timeout: 30_000,
  });
  let calls: string[] = [];
  try {
    calls = readFileSync(log, 'utf8').trim().split('\n');
  } catch {
    // no stand-in was called
  }
  const signals = calls.filter((c) => c.startsWith('cfn-signal ')).map((c) => splitSignal(c));
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls, signals };
}

/** cfn-signal's logged arguments: the options this script passes, each with its value (the reason has spaces). */
function splitSignal(line: string): string[] {
  const rest = line.slice('cfn-signal '.length);
  const m = /^--exit-code (\S+) --reason (.*) --stack (\S+) --resource (\S+) --region (\S+)$/.exec(rest);
  return m ? ['--exit-code', m[1]!, '--reason', m[2]!, '--stack', m[3]!, '--resource', m[4]!, '--region', m[5]!] : [rest];
}

const reasonOf = (signal: string[]): string => signal[signal.indexOf('--reason') + 1] ?? '';
const exitCodeOf = (signal: string[]): string => signal[signal.indexOf('--exit-code') + 1] ?? '';

t.test('READY and health OK: one success signal naming the stack, the group and the region', async (t) => {
  const r = run({});
  t.equal(r.code, 0, r.stderr);
  t.same(
    r.calls.filter((c) => !c.startsWith('cfn-signal')),
    ['systemctl enable --quiet cachenat', 'systemctl start cachenat', 'cachenat health'],
    'enables, starts (returns after READY=1), then asks health',
  );
  t.equal(r.signals.length, 1, 'exactly one signal');
  t.same(r.signals[0], ['--exit-code', '0', '--reason', 'OK: cachenat 0.1.0, 8 forwards active', '--stack', 'cachenat-ha-prod', '--resource', 'PairNat1GroupASG9E936F24', '--region', 'eu-west-1']);
  t.match(r.stdout, /signalled PairNat1GroupASG9E936F24 of cachenat-ha-prod: exit code 0/);
});

t.test('WARNING about a cache, the pair OK: success (the daemon runs as configured)', async (t) => {
  const r = run({ health: [{ code: 1, text: 'WARNING: 1 of 8 unresolved\n[WARNING] forwards: 1 of 8 unresolved (DNS): node/a/0001\n[OK] ha: leader i-0abc (term 1) of prod' }] });
  t.equal(r.code, 0);
  t.same(r.signals.map(exitCodeOf), ['0']);
  t.equal(reasonOf(r.signals[0]!), 'WARNING: 1 of 8 unresolved');
});

t.test('WARNING about the pair until the wait is over: failure, the ha line as the reason', async (t) => {
  const r = run({ health: [{ code: 1, text: 'WARNING: ha\n[OK] daemon: pass 2s ago\n[WARNING] ha: DynamoDB does not answer since 40s ago (timeout)' }] });
  t.equal(r.code, 1);
  t.same(r.signals.map(exitCodeOf), ['1']);
  t.match(reasonOf(r.signals[0]!), /^cachenat health after 0s: \[WARNING\] ha: DynamoDB does not answer since 40s ago/);
  t.notMatch(reasonOf(r.signals[0]!), /\[OK\]/, 'only what is wrong');
});

t.test('CRITICAL at first (the Elastic IP on its way), then OK: success after a retry', async (t) => {
  const r = run({
    args: [...ARGS.slice(0, -1), '60'],
    health: [
      { code: 2, text: 'CRITICAL: ha\n[CRITICAL] ha: Elastic IP eipalloc-0abc is not on this leader yet' },
      { code: 0, text: 'OK: leader' },
    ],
  });
  t.equal(r.code, 0);
  t.equal(r.calls.filter((c) => c === 'cachenat health').length, 2, 'asked twice');
  t.same(r.signals.map(exitCodeOf), ['0'], 'one signal, success');
  t.equal(reasonOf(r.signals[0]!), 'OK: leader');
});

t.test('systemctl start fails (bad config: exit 78): failure with the journal, health never asked', async (t) => {
  const r = run({ start: 1 });
  t.equal(r.code, 1);
  t.notOk(r.calls.includes('cachenat health'));
  t.same(r.signals.map(exitCodeOf), ['1']);
  t.match(reasonOf(r.signals[0]!), /^systemctl start cachenat failed \(see journalctl -u cachenat\): config error at ha\.lease/);
});

t.test('a signal CloudFormation refuses (a replacement after the stack was complete) is logged, not a failure', async (t) => {
  const r = run({ cfnSignal: 1 });
  t.equal(r.code, 0);
  t.equal(r.signals.length, 1);
  t.match(r.stdout, /CloudFormation took no signal/);
});

t.test('no cfn-signal on the image: aws-cfn-bootstrap is installed, then the signal goes out', async (t) => {
  const r = run({ cfnSignal: 'missing' });
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.ok(r.calls.includes('dnf install -y -q aws-cfn-bootstrap'), 'dnf install -y -q aws-cfn-bootstrap');
  t.same(r.signals.map(exitCodeOf), ['0']);
});

t.test('bad arguments: exit 64, nothing started, no signal', async (t) => {
  for (const args of [[], ['--stack', 's', '--resource', 'r'], [...ARGS.slice(0, -1), 'soon'], ['--stack'], ['--bogus', 'x']]) {
    const r = run({ args });
    t.equal(r.code, 64, `${JSON.stringify(args)}: ${r.stderr.trim()}`);
    t.same(r.calls, [], 'no stand-in called');
  }
});

const shellcheck = spawnSync('sh', ['-c', 'command -v shellcheck']).status === 0;
t.test('shellcheck', { skip: shellcheck ? false : 'shellcheck is not installed (apt-get install shellcheck)' }, async (t) => {
  const r = spawnSync('shellcheck', ['-s', 'bash', script], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stdout + r.stderr);
});
