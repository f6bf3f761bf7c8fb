// A TLS-only redis-server behind `cachenat run`, with a certificate for its
// DNS name from a test CA: through the forward, redis-cli with --sni and
// ioredis with tls.servername get PONG; ioredis without the right servername
// is refused (the certificate does not name what it checked).

import t from 'tap';
import { join } from 'node:path';
import { compiledLabFile } from '../../lab/lab.js';
import { startRig, stretch, waitFor } from '../../lab/rig.js';
import { issueCertificate, makeTestCa, startTlsRedis } from '../../lab/tls.js';
import type { ClientRequest } from '../../lab/cluster-client.js';

const NAME = 'secure-001.abc123.0001.use1.cache.amazonaws.com';
const IP = '198.19.0.41';
const PORT = 6379;

t.test('TLS through the forward: the client sends the cache name as SNI', async (t) => {
  const topology = { clusters: [{ id: 'secure-001', engine: 'redis', tls: true, nodes: [{ id: '0001', address: NAME, port: PORT }] }] };
  const rig = await startRig({ lab: { redis: 0, memcached: 0 }, topology, hosts: { [NAME]: IP } });
  t.teardown(() => rig.down());
  const { lab } = rig;
  const ca = await makeTestCa(join(lab.tmpDir, 'tls'));
  await startTlsRedis(lab, IP, PORT, await issueCertificate(ca, NAME), ca);
  await rig.start();

  const forward = await waitFor('node/secure-001/0001 active', async () => (await rig.status()).forwards.find((f) => f.key === 'node/secure-001/0001' && f.state === 'active'));
  const status = (await rig.status()).forwards.find((f) => f.key === forward.key) as unknown as { tls: boolean; sni?: string };
  t.same({ tls: status.tls, sni: status.sni }, { tls: true, sni: NAME }, 'status names the SNI clients must send');

  const host = lab.addr.natExt;
  const port = String(forward.listenPort);
  const inClient = (file: string, args: string[]) => lab.exec(lab.ns.client, file, args, { env: { NODE_OPTIONS: '' }, reject: false, timeoutMs: stretch(20_000) });
  const ioredisPing = (servername?: string) => {
    const request: ClientRequest = { client: 'tls-ping', host, port: forward.listenPort, caFile: ca.caFile, ...(servername === undefined ? {} : { servername }) };
    return inClient(process.execPath, [compiledLabFile('cluster-client.js'), JSON.stringify(request)]);
  };

  const cli = await inClient('redis-cli', ['--tls', '--sni', NAME, '--cacert', ca.caFile, '-h', host, '-p', port, 'PING']);
  t.equal(cli.stdout.trim(), 'PONG', `redis-cli --tls --sni: ${cli.stdout}${cli.stderr}`);

  const named = await ioredisPing(NAME);
  t.equal(named.stdout.trim(), 'PONG', `ioredis with tls.servername: ${named.stdout}${named.stderr}`);

  for (const servername of [undefined, 'other.cache.amazonaws.com']) {
    const refused = await ioredisPing(servername);
    t.equal(refused.exitCode, 1, `ioredis with servername ${servername ?? '(the address)'} is refused`);
    t.match(refused.stdout, /^refused: ERR_TLS_CERT_ALTNAME_INVALID/, refused.stdout);
  }

  const plain = await inClient('redis-cli', ['-h', host, '-p', port, 'PING']);
  t.not(plain.stdout.trim(), 'PONG', 'a plaintext client gets no answer: the forward does not strip TLS');
});
