import t from 'tap';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enableIpForward, readIpForward } from '../../src/netfilter/ip-forward.js';

async function scratch(t: { teardown: (fn: () => unknown) => void }, procValue: string) {
  const dir = await mkdtemp(join(tmpdir(), 'cachenat-ipfwd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const procPath = join(dir, 'ip_forward');
  await writeFile(procPath, procValue);
  return { procPath, sysctlDir: join(dir, 'sysctl.d') };
}

t.test('reads 0 and 1', async (t) => {
  const off = await scratch(t, '0\n');
  t.equal(await readIpForward(off.procPath), false);
  const on = await scratch(t, '1\n');
  t.equal(await readIpForward(on.procPath), true);
});

t.test('enables, persists, and the second call changes nothing', async (t) => {
  const paths = await scratch(t, '0\n');
  const first = await enableIpForward(paths);
  t.same(first, { enabledNow: true, persisted: true, sysctlFile: join(paths.sysctlDir, '90-cachenat.conf') });
  t.equal(await readIpForward(paths.procPath), true);
  const conf = await readFile(first.sysctlFile, 'utf8');
  t.match(conf, /^net\.ipv4\.ip_forward = 1$/m);
  t.equal((await stat(first.sysctlFile)).mode & 0o777, 0o644);

  const mtime = (await stat(first.sysctlFile)).mtimeMs;
  t.same(await enableIpForward(paths), { enabledNow: false, persisted: false, sysctlFile: first.sysctlFile });
  t.equal((await stat(first.sysctlFile)).mtimeMs, mtime, 'file not rewritten');
});

t.test('corrects a sysctl file with other content', async (t) => {
  const paths = await scratch(t, '1\n');
  await enableIpForward(paths);
  await writeFile(join(paths.sysctlDir, '90-cachenat.conf'), 'net.ipv4.ip_forward = 0\n');
  t.match(await enableIpForward(paths), { enabledNow: false, persisted: true });
  t.match(await readFile(join(paths.sysctlDir, '90-cachenat.conf'), 'utf8'), /ip_forward = 1/);
});

t.test('CACHENAT_SYSCTL_DIR is the default directory', async (t) => {
  const paths = await scratch(t, '1\n');
  const saved = process.env.CACHENAT_SYSCTL_DIR;
  process.env.CACHENAT_SYSCTL_DIR = paths.sysctlDir;
  t.teardown(() => {
    if (saved === undefined) delete process.env.CACHENAT_SYSCTL_DIR;
    else process.env.CACHENAT_SYSCTL_DIR = saved;
  });
  const result = await enableIpForward({ procPath: paths.procPath });
  t.equal(result.sysctlFile, join(paths.sysctlDir, '90-cachenat.conf'));
});
