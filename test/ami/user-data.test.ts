// ami/user-data.example.yaml is valid cloud-config that writes a config
// cachenat accepts, world-readable and without secrets, and starts the service.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const file = join(root, 'ami/user-data.example.yaml');
const text = readFileSync(file, 'utf8');

interface CloudConfig {
  write_files?: { path: string; content?: string; permissions?: string; owner?: string }[];
  runcmd?: (string | string[])[];
}
const userData = parse(text) as CloudConfig;

t.test('is cloud-config', async (t) => {
  t.equal(text.split('\n', 1)[0], '#cloud-config', 'first line tells cloud-init what this is');
});

t.test('writes a valid /etc/cachenat/config.yaml, 0644', async (t) => {
  const entries = (userData.write_files ?? []).filter((f) => f.path === '/etc/cachenat/config.yaml');
  t.equal(entries.length, 1, 'exactly one entry writes the config');
  const entry = entries[0]!;
  t.equal(entry.permissions, '0644');
  t.equal(entry.owner, 'root:root');
  const { config, warnings } = parseConfig(entry.content ?? '', 'user-data config');
  t.strictSame(warnings, [], 'no risky choices in the example');
  t.equal(config.forward.inboundInterface, 'auto', 'the instance\'s primary interface, whatever the AMI names it (ens5 on Amazon Linux 2023 on Nitro)');
  t.equal(config.aws.region, 'auto', 'the instance\'s own region');
  t.ok(config.forward.publicAddress, 'names the Elastic IP, so `cachenat endpoints` prints dialable addresses');
});

t.test('holds nothing secret', async (t) => {
  // What cloud-init acts on, comments left out: they may say what not to put here.
  const data = JSON.stringify(userData) + JSON.stringify(parse(userData.write_files?.[0]?.content ?? ''));
  t.notMatch(data, /secret|password|passwd|token|access.?key|AKIA[0-9A-Z]{16}/i);
});

t.test('starts the service', async (t) => {
  const commands = (userData.runcmd ?? []).map((c) => (Array.isArray(c) ? c.join(' ') : c));
  t.ok(commands.includes('systemctl enable --now cachenat'), 'runcmd enables and starts cachenat');
});

const hasCloudInit = spawnSync('sh', ['-c', 'command -v cloud-init']).status === 0;
t.test('cloud-init accepts it', { skip: hasCloudInit ? false : 'cloud-init is not installed (apt-get install cloud-init)' }, async (t) => {
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
  t.equal(r.status, 0, 'cloud-init schema --config-file', { output: r.stdout + r.stderr });
});
