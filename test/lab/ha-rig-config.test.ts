// The config an HA lab daemon runs with parses under the real schema, with
// the ha section as the lab fills it in (no namespaces needed).

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { HA_IDS, HA_PORTS } from '../../lab/lab.js';
import { haConfigYaml, HA_LEASE_DEFAULT } from '../../lab/ha-rig.js';
import { labConfig } from '../../lab/rig.js';

t.test('lab config plus the ha section', async (t) => {
  const ha = haConfigYaml({
    table: 'cachenat',
    group: 'lab',
    lease: HA_LEASE_DEFAULT,
    dynamoUrl: `http://198.20.0.10:${HA_PORTS.dynamo}`,
    ec2Url: `http://198.20.0.10:${HA_PORTS.ec2}`,
    imdsUrl: `http://127.0.0.1:${HA_PORTS.imds}`,
  });
  const { config } = parseConfig(labConfig('http://198.20.0.10:4566', '/tmp/x', { publicAddress: '198.18.0.100', extra: ha }), 'lab');
  t.same(config.ha, {
    table: 'cachenat',
    group: 'lab',
    lease: 4000,
    elasticIp: HA_IDS.allocationId,
    endpoint: 'http://198.20.0.10:8000',
    ec2Endpoint: 'http://198.20.0.10:8001',
    imdsEndpoint: 'http://127.0.0.1:9169',
  });
  t.equal(config.forward.publicAddress, '198.18.0.100');
});

t.test('the lab instance ids fit the grammar', async (t) => {
  const { instanceIdProblem, networkInterfaceIdProblem, allocationIdProblem } = await import('../../src/core/grammar.js');
  t.equal(allocationIdProblem(HA_IDS.allocationId), undefined);
  for (const which of ['nat', 'nat2'] as const) {
    t.equal(instanceIdProblem(HA_IDS[which].instanceId), undefined);
    t.equal(networkInterfaceIdProblem(HA_IDS[which].eni), undefined);
  }
});
