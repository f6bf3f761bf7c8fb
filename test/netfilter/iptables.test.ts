import t from 'tap';
import { inNamespace, IptablesNetfilter, KernelError, runCommand, type CommandRunner } from '../../src/netfilter/iptables.js';

type Call = { file: string; args: string[]; input?: string };

function fakeRunner(answer: (call: Call) => { stdout?: string; stderr?: string; exitCode?: number }) {
  const calls: Call[] = [];
  const run: CommandRunner = async (file, args, options) => {
    const call = { file, args, ...(options?.input !== undefined ? { input: options.input } : {}) };
    calls.push(call);
    const { stdout = '', stderr = '', exitCode = 0 } = answer(call);
    return { stdout, stderr, exitCode };
  };
  return { run, calls };
}

t.test('save and restore call iptables-save / iptables-restore --noflush -w 5 with the text on stdin', async (t) => {
  const { run, calls } = fakeRunner(() => ({ stdout: '*nat\nCOMMIT\n' }));
  const netfilter = new IptablesNetfilter(run);
  t.equal(await netfilter.save('nat'), '*nat\nCOMMIT\n');
  await netfilter.saveAll();
  await netfilter.saveAll({ counters: true });
  await netfilter.restore('*nat\nCOMMIT\n');
  t.same(calls, [
    { file: 'iptables-save', args: ['-t', 'nat'] },
    { file: 'iptables-save', args: [] },
    { file: 'iptables-save', args: ['-c'] },
    { file: 'iptables-restore', args: ['--noflush', '-w', '5'], input: '*nat\nCOMMIT\n' },
  ]);
});

t.test('empty save output is valid', async (t) => {
  const { run } = fakeRunner(() => ({ stdout: '' }));
  t.equal(await new IptablesNetfilter(run).saveAll(), '');
});

t.test('a failed restore names the command, exit code, input line and what to do', async (t) => {
  const { run } = fakeRunner(() => ({
    exitCode: 2,
    stderr: "iptables-restore v1.8.9 (nf_tables): Chain 'BOGUS' does not exist\nError occurred at line: 3\nTry `iptables-restore -h' for more information.\n",
  }));
  const error = await new IptablesNetfilter(run).restore('*nat\n:CACHENAT-X - [0:0]\n-A CACHENAT-X -j BOGUS\nCOMMIT\n').catch((e: unknown) => e);
  t.ok(error instanceof KernelError);
  const kernel = error as KernelError;
  t.equal(kernel.exitCode, 2);
  t.equal(kernel.retryable, false);
  t.same(kernel.failedLine, { number: 3, text: '-A CACHENAT-X -j BOGUS' });
  t.match(kernel.message, /^iptables-restore --noflush -w 5 failed with exit code 2 at input line 3 \("-A CACHENAT-X -j BOGUS"\): .*Chain 'BOGUS' does not exist/);
  t.match(kernel.message, /check that the kernel has the nat/);
});

const failures: [string, { stderr: string; exitCode: number }, boolean, RegExp][] = [
  ['exit 4', { exitCode: 4, stderr: 'iptables-restore: unable to initialize table' }, true, /retried on the next pass/],
  ['xtables lock', { exitCode: 1, stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' }, true, /xtables lock/],
  ['missing binary', { exitCode: 127, stderr: 'iptables-save: command not found' }, false, /install iptables/],
  ['permission', { exitCode: 1, stderr: 'iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' }, false, /CAP_NET_ADMIN/],
  ['timeout', { exitCode: 124, stderr: 'iptables-save: timed out after 30000 ms' }, false, /not answering/],
  ['legacy line number', { exitCode: 1, stderr: 'iptables-restore: line 7 failed' }, false, /exit code 1: iptables-restore: line 7 failed/],
];
for (const [name, answer, retryable, message] of failures) {
  t.test(`save failure: ${name}`, async (t) => {
    const { run } = fakeRunner(() => answer);
    const error = (await new IptablesNetfilter(run).save('filter').catch((e: unknown) => e)) as KernelError;
    t.ok(error instanceof KernelError);
    t.equal(error.retryable, retryable);
    t.equal(error.command, 'iptables-save -t filter');
    t.match(error.message, message);
  });
}

t.test('runCommand: output, exit code, stdin, missing binary, timeout', async (t) => {
  t.same(await runCommand('sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'in\n' }), { stdout: 'in\n', stderr: 'err\n', exitCode: 3 });
  const missing = await runCommand('cachenat-no-such-program', []);
  t.equal(missing.exitCode, 127);
  t.match(missing.stderr, /cachenat-no-such-program: command not found/);
  const slow = await runCommand('sleep', ['5'], { timeoutMs: 100 });
  t.equal(slow.exitCode, 124);
  t.match(slow.stderr, /timed out after 100 ms/);
});

t.test('inNamespace prefixes ip netns exec and checks the name', async (t) => {
  const { run, calls } = fakeRunner(() => ({}));
  await inNamespace('cn-test-1', run)('iptables-save', ['-t', 'nat'], { input: 'x' });
  t.same(calls, [{ file: 'ip', args: ['netns', 'exec', 'cn-test-1', 'iptables-save', '-t', 'nat'], input: 'x' }]);
  t.throws(() => inNamespace('bad name', run), /invalid network namespace name/);
});
