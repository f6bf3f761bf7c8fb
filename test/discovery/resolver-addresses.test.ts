import t from 'tap';
import { SystemResolver } from '../../src/discovery/resolver.js';

t.test('the resolver returns every usable address, in a stable order', async (t) => {
  const resolver = (answer: string[]) => new SystemResolver({ timeoutMs: 1000, lookup: async () => answer });
  t.same(await resolver(['10.0.3.9', '10.0.1.5', '10.0.1.5', '10.0.20.1']).resolve('s1.example'), { ok: true, ip: '10.0.1.5', ips: ['10.0.1.5', '10.0.3.9', '10.0.20.1'] });
  t.same(await resolver(['169.254.169.254', '10.0.1.5']).resolve('s1.example'), { ok: true, ip: '10.0.1.5' }, 'an unusable address is dropped');
  t.match(await resolver(['127.0.0.1']).resolve('s1.example'), { ok: false, error: /^s1\.example resolves to / });
  t.match(await resolver([]).resolve('s1.example'), { ok: false, error: /no IPv4 address/ });
});
