// The audit section: off without it, its keys checked like every other.

import t from 'tap';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

const minimal = 'aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32]}\n';

t.test('absent: off; present: its defaults', async (t) => {
  t.equal(parseConfig(minimal, 'x').config.audit, undefined);
  t.same(parseConfig(`${minimal}audit: {enabled: true}\n`, 'x').config.audit, { enabled: true, starts: false, receiveBuffer: 16 * 1024 ** 2 });
  t.same(parseConfig(`${minimal}audit: {enabled: true, file: /var/log/cachenat/audit.jsonl, starts: true, receiveBuffer: 64MiB}\n`, 'x').config.audit, {
    enabled: true,
    file: '/var/log/cachenat/audit.jsonl',
    starts: true,
    receiveBuffer: 64 * 1024 ** 2,
  });
  t.equal(parseConfig(`${minimal}audit: {enabled: true, receiveBuffer: 65536}\n`, 'x').config.audit?.receiveBuffer, 65536, 'plain bytes');
});

t.test('mistakes are refused with the key named', async (t) => {
  const cases: [string, RegExp][] = [
    ['audit: {file: /var/log/a.jsonl}', /audit\.enabled: required: true to write/],
    ['audit: {enabled: yes please}', /audit\.enabled/],
    ['audit: {enabled: true, file: relative.jsonl}', /audit\.file: expected an absolute path/],
    ['audit: {enabled: true, file: /proc/audit}', /audit\.file: must not be under \/proc/],
    ['audit: {enabled: true, receiveBuffer: 1KiB}', /audit\.receiveBuffer: expected a size from 64KiB to 1GiB/],
    ['audit: {enabled: true, receiveBuffer: 2GiB}', /audit\.receiveBuffer/],
    ['audit: {enabled: true, receiveBuffer: 16MB}', /audit\.receiveBuffer/],
    ['audit: {enabled: true, rotate: daily}', /audit/],
  ];
  for (const [yaml, message] of cases) {
    const err = t.throws(() => parseConfig(`${minimal}${yaml}\n`, 'x')) as unknown as ConfigError;
    t.type(err, ConfigError);
    t.match(err.message, message, yaml);
  }
});
