import t from 'tap';
import { configFingerprint, fingerprintDiff, FINGERPRINT_KEYS } from '../../../src/core/ha/fingerprint.js';
import { configSchema, type Config } from '../../../src/core/config/schema.js';

const config = (over: Record<string, unknown> = {}): Config =>
  configSchema.parse({ aws: { region: 'us-east-1' }, forward: { allowedSources: ['198.51.100.0/24'] }, ha: { table: 'cachenat', group: 'g', elasticIp: 'eipalloc-0123456789abcdef0' }, ...over });

t.test('the same config, the same fingerprint: a digest per HA-relevant key', async (t) => {
  const a = configFingerprint(config());
  t.same(Object.keys(a), [...FINGERPRINT_KEYS]);
  t.ok(Object.values(a).every((d) => /^[0-9a-f]{16}$/.test(d)));
  t.same(configFingerprint(config()), a);
});

t.test('a difference is named by its key; what is per instance (private addresses, interfaces, logging) is not compared', async (t) => {
  const a = configFingerprint(config());
  t.same(fingerprintDiff(a, configFingerprint(config({ ports: { reuseAfter: '1h' } }))), ['ports.reuseAfter']);
  t.same(fingerprintDiff(a, configFingerprint(config({ discovery: { removalGrace: '1m', include: ['prod-*'] } }))), ['discovery.include', 'discovery.removalGrace']);
  t.same(fingerprintDiff(a, configFingerprint(config({ ha: { table: 'cachenat', group: 'g' } }))), ['ha.elasticIp']);
  t.same(fingerprintDiff(a, configFingerprint(config({ forward: { allowedSources: ['0.0.0.0/0'], inboundInterface: 'ens6' }, log: { level: 'debug' } }))), [], 'per-instance settings are not compared');
  const pairs = (base: string) => ({ forward: { allowedSources: ['198.51.100.0/24'], listenAddresses: [{ address: `${base}.21`, public: '203.0.113.21', allocationId: 'eipalloc-0000000000000aa21' }] }, ha: { table: 'cachenat', group: 'g' } });
  t.same(fingerprintDiff(configFingerprint(config(pairs('10.0.1'))), configFingerprint(config(pairs('10.0.2')))), [], 'each instance its own private addresses, the same Elastic IPs');
  const missing = { forward: { allowedSources: ['198.51.100.0/24'], listenAddresses: [{ address: '10.0.2.21', public: '203.0.113.21' }] }, ha: { table: 'cachenat', group: 'g' } };
  t.same(fingerprintDiff(configFingerprint(config(pairs('10.0.1'))), configFingerprint(config(missing))), ['forward.listenAddresses'], 'a listen address without its allocationId differs');
  t.same(fingerprintDiff(a, { 'ports.reuseAfter': a['ports.reuseAfter']! }), [], 'a key only one side carries (another release) is not compared');
});
