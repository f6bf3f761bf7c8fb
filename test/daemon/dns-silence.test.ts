// A resolver that stops answering (the reconciler's resolve step): every
// forward keeps its last address however long the silence lasts, each name is
// asked again every pass, the outage is a standing warning (health WARNING)
// logged once, and it clears when answers come back. A definite "no such
// name" still counts towards the removal grace, as before.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { Reconciler, type ReconcilerEdges } from '../../src/daemon/reconciler.js';
import { createLogger } from '../../src/log/logger.js';
import type { DiscoveredTarget, Resolution } from '../../src/core/model.js';
import { StateStore } from '../../src/ports/state-store.js';
import { applyRestore, emptyKernel, saveText } from '../support/kernel-sim.js';
import { scratchDir } from '../support/scratch.js';

const { config } = parseConfig('aws: {region: us-east-1}\nforward: {allowedSources: [198.51.100.27/32], inboundInterface: eth0}\n', 'test');
const MIN = 60_000;

const node = (cluster: string): DiscoveredTarget => ({
  key: `node/${cluster}/0001`, kind: 'node', engine: 'redis', cacheClusterId: cluster, cacheNodeId: '0001', address: `${cluster}.cache.example`, targetPort: 6379,
});

function rig(dns: (name: string) => Resolution) {
  let kernel = emptyKernel();
  let now = 1_000_000;
  const asked: string[] = [];
  const logs: { level: number; msg: string }[] = [];
  const edges: ReconcilerEdges = {
    netfilter: { save: async () => saveText(kernel), saveAll: async () => saveText(kernel), restore: async (text) => void (kernel = applyRestore(kernel, text)) },
    conntrack: { available: true, forgetFlows: async () => 0 },
    source: { describe: async () => ({ targets: [node('a'), node('b')], skipped: [] }) },
    resolver: { resolve: async (name) => (asked.push(name), dns(name)) },
    store: new StateStore(scratchDir(t, 'dns-silence')),
    clock: { now: () => now },
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } }),
  };
  return { edges, asked, logs, advance: (ms: number) => void (now += ms) };
}

const silence: Resolution = { ok: false, error: 'no answer for x within 5000 ms', noAnswer: true };

t.test('silence keeps every last address past the removal grace, asks again each pass, warns once, clears', async (t) => {
  let silent = false;
  const r = rig((name) => (silent ? silence : { ok: true, ip: name.startsWith('a') ? '10.0.1.1' : '10.0.1.2' }));
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  silent = true;
  for (let i = 0; i < 5; i++) {
    r.advance(5 * MIN); // 25 minutes in all: well past the 10 minute removal grace
    const asked = r.asked.length;
    const report = await reconciler.pass({ discover: true, write: true });
    t.same(report.plan.forwards.map((f) => [f.key, f.state, f.targetIp]), [['node/a/0001', 'active', '10.0.1.1'], ['node/b/0001', 'active', '10.0.1.2']], `pass ${i + 2}: the last addresses stand`);
    t.equal(r.asked.length - asked, 2, `pass ${i + 2}: both names asked again`);
    t.same(report.plan.events.map((e) => e.type), [], 'no resolve-failed, no unresolved: silence is not a verdict');
  }
  t.equal(
    reconciler.warnings.get('dns'),
    'DNS: 2 of 2 endpoint names due for a lookup got no answer; their forwards keep their last addresses and the names are asked again next pass. Check the resolver in /etc/resolv.conf (in a VPC, the base address +2)',
  );
  t.equal(r.logs.filter((l) => l.level === 40 && l.msg.startsWith('DNS: ')).length, 1, 'logged once for the episode');

  silent = false;
  r.advance(5 * MIN);
  await reconciler.pass({ discover: true, write: true });
  t.notOk(reconciler.warnings.has('dns'), 'the warning clears');
  t.ok(r.logs.some((l) => l.level === 30 && l.msg === 'DNS answers again: every endpoint name due for a lookup was answered'));
});

t.test('a definite "no such name" still starts the removal grace', async (t) => {
  let gone = false;
  const r = rig((name) => (gone && name.startsWith('b') ? { ok: false, error: 'cannot resolve b.cache.example: ENOTFOUND' } : { ok: true, ip: name.startsWith('a') ? '10.0.1.1' : '10.0.1.2' }));
  const reconciler = new Reconciler(config, r.edges);
  await reconciler.pass({ discover: true, write: true });
  gone = true;
  r.advance(config.discovery.interval); // a node's own name is asked again once per discovery.interval
  const failed = await reconciler.pass({ discover: true, write: true });
  t.same(failed.plan.events.map((e) => e.type), ['resolve-failed']);
  r.advance(11 * MIN);
  const after = await reconciler.pass({ discover: true, write: true });
  t.same(after.plan.forwards.map((f) => f.state), ['active', 'unresolved']);
  t.notOk(reconciler.warnings.has('dns'), 'an answer, even "no such name", is not an outage');
});

t.test('a name never answered stays unresolved until it is', async (t) => {
  const r = rig(() => silence);
  const reconciler = new Reconciler(config, r.edges);
  const first = await reconciler.pass({ discover: true, write: true });
  t.same(first.plan.forwards.map((f) => f.state), ['unresolved', 'unresolved']);
  t.match(reconciler.warnings.get('dns'), /^DNS: 2 of 2 /);
});
