import t from 'tap';
import { detectBackend } from '../../src/netfilter/backend.js';
import type { CommandRunner } from '../../src/netfilter/iptables.js';

const runner = (answers: Record<string, { stdout?: string; exitCode?: number }>): CommandRunner =>
  async (file) => {
    const answer = answers[file] ?? { exitCode: 127 };
    return { stdout: answer.stdout ?? '', stderr: '', exitCode: answer.exitCode ?? 0 };
  };

const natWithRules = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT\n';

t.test('nf_tables, legacy side empty', async (t) => {
  const report = await detectBackend(runner({ iptables: { stdout: 'iptables v1.8.9 (nf_tables)\n' }, 'iptables-legacy-save': { stdout: '' } }));
  t.same(report, { backend: 'nf_tables' });
});

t.test('nf_tables with nat rules in legacy: warns', async (t) => {
  const report = await detectBackend(runner({ iptables: { stdout: 'iptables v1.8.9 (nf_tables)\n' }, 'iptables-legacy-save': { stdout: natWithRules } }));
  t.equal(report.backend, 'nf_tables');
  t.match(report.warning, /iptables-legacy-save shows 1 nat rule/);
});

t.test('legacy, nft side checked', async (t) => {
  const report = await detectBackend(runner({ iptables: { stdout: 'iptables v1.8.7 (legacy)\n' }, 'iptables-nft-save': { stdout: natWithRules } }));
  t.equal(report.backend, 'legacy');
  t.match(report.warning, /iptables-nft-save/);
});

t.test('unknown when iptables is missing or odd; no warning when the other save is missing or unreadable', async (t) => {
  t.same(await detectBackend(runner({})), { backend: 'unknown' });
  t.same(await detectBackend(runner({ iptables: { stdout: 'iptables v1.4.21\n' } })), { backend: 'unknown' });
  t.same(await detectBackend(runner({ iptables: { stdout: 'iptables v1.8.9 (nf_tables)\n' } })), { backend: 'nf_tables' });
  t.same(
    await detectBackend(runner({ iptables: { stdout: 'iptables v1.8.9 (nf_tables)\n' }, 'iptables-legacy-save': { stdout: 'garbage\n' } })),
    { backend: 'nf_tables' },
  );
});
