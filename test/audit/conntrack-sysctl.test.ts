// The sysctls the audit needs: set when 0, left alone when 1, persisted once,
// and a missing nf_conntrack (no /proc/sys entry) is an error that says so.

import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureAuditSysctls, AUDIT_SYSCTL_FILE_NAME } from '../../src/audit/conntrack-sysctl.js';

const dir = mkdtempSync(join(tmpdir(), 'cachenat-audit-sysctl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const procRoot = join(dir, 'proc');
const sysctlDir = join(dir, 'sysctl.d');
const proc = (key: string) => join(procRoot, 'net', 'netfilter', key);

t.test('set when off, persisted once, then left alone', async (t) => {
  mkdirSync(join(procRoot, 'net', 'netfilter'), { recursive: true });
  writeFileSync(proc('nf_conntrack_acct'), '0\n');
  writeFileSync(proc('nf_conntrack_timestamp'), '1\n');
  const first = await ensureAuditSysctls({ procRoot, sysctlDir });
  t.same(first, { setNow: ['net.netfilter.nf_conntrack_acct'], persistedIn: join(sysctlDir, AUDIT_SYSCTL_FILE_NAME) });
  t.equal(readFileSync(proc('nf_conntrack_acct'), 'utf8'), '1\n');
  t.equal(readFileSync(join(sysctlDir, AUDIT_SYSCTL_FILE_NAME), 'utf8'), '# Written by cachenat (audit: enabled): byte counts and timestamps for each connection.\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_timestamp = 1\n');
  t.same(await ensureAuditSysctls({ procRoot, sysctlDir }), { setNow: [], persistedIn: undefined }, 'nothing to do the second time');
  writeFileSync(proc('nf_conntrack_timestamp'), '0\n');
  t.same(await ensureAuditSysctls({ procRoot, sysctlDir }), { setNow: ['net.netfilter.nf_conntrack_timestamp'], persistedIn: undefined }, 'set back to 0 by someone: set again');
});

t.test('nf_conntrack not loaded: an error that says so', async (t) => {
  await t.rejects(ensureAuditSysctls({ procRoot: join(dir, 'empty'), sysctlDir }), /nf_conntrack_acct does not exist: the nf_conntrack module is not loaded yet/);
});
