// `npm run demo`: the end-to-end lab for a person to watch. Builds the
// namespaces, serves a fake ElastiCache topology, runs the real daemon, and
// shows real client traffic crossing the NAT host — then a failover, a node
// added, and a clean flush. Everything is torn down at the end, even on error.

import { NAME, baseTopology, startRig, type LabRig } from './rig.js';

const started = Date.now();
const say = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}`);
const indent = (text: string) => text.trimEnd().split('\n').map((l) => `          ${l}`).join('\n');

async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function showClients(rig: LabRig, ports: number[]): Promise<void> {
  for (const port of ports) {
    const value = await rig.probe('client', port);
    say(`  client 198.18.0.10 → 198.18.0.1:${port}  ${value ? `answered "${value}"` : 'NO ANSWER'}`);
  }
}

async function main(): Promise<void> {
  say('building the lab: client + rogue client (198.18.0.0/24), NAT host, cache hosts (198.19.0.0/24) with real redis-server and memcached');
  const rig = await startRig();
  const stop = async () => {
    say('tearing the lab down');
    await rig.down();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    const { lab } = rig;
    say(`lab ${lab.prefix} up; fake ElastiCache API at ${rig.apiUrl} inside the NAT host`);
    say('topology served: replication group "orders" (primary redis-11, replica redis-12), valkey cluster "sessions" (redis-13), memcached cluster "mc" (memc-21..23)');
    say(`starting: cachenat run --config ${rig.configPath}`);
    const daemon = await rig.start();
    say('daemon is READY; cachenat status:');
    console.log(indent((await rig.cli(['status'])).stdout));
    say('cachenat endpoints:');
    console.log(indent((await rig.cli(['endpoints'])).stdout));
    say('real traffic from the allowed client, through DNAT + MASQUERADE:');
    await showClients(rig, [6379, 6380, 6381, 6382, 6383, 11211, 11212, 11213]);
    const rogue = await rig.probe('rogue', 6379, 'redis', 1000);
    say(`  rogue 198.18.0.20 (not in allowedSources) → 198.18.0.1:6379  ${rogue ? `answered "${rogue}" (WRONG)` : 'no answer, as it should be'}`);
    say("cachenat's chains in the NAT host's kernel (iptables-save -t nat, our lines only):");
    console.log(indent((await rig.save('nat')).split('\n').filter((l) => l.includes('CACHENAT')).join('\n')));

    say(`failover: DNS for ${NAME.primary} now answers 198.19.0.12 (the promoted replica)`);
    const t0 = Date.now();
    lab.setHost(NAME.primary, '198.19.0.12');
    await until(async () => ((await rig.probe('client', 6379, 'redis', 500)) === 'redis-12' ? true : undefined));
    say(`  port 6379 reaches redis-12 after ${Date.now() - t0} ms (dns.interval is 500ms in the lab); the port did not change`);

    say('a node is added in the API: sessions/0002 (redis-14)');
    const topology = baseTopology();
    topology.clusters.find((c) => c.id === 'sessions')?.nodes?.push({ id: '0002', address: NAME.sessions2, port: 6379 });
    const t1 = Date.now();
    await rig.setTopology(topology);
    const added = await until(async () => (await rig.status()).forwards.find((f) => f.key === 'node/sessions/0002' && f.state === 'active'));
    say(`  forwarded on port ${added.listenPort} after ${Date.now() - t1} ms (discovery.interval is 1s in the lab)`);
    await showClients(rig, [added.listenPort]);

    say('daemon log, last lines:');
    console.log(indent(daemon.process.output.slice(-6).join('\n')));
    say('stopping the daemon (SIGTERM): forwards stay installed');
    daemon.process.kill('SIGTERM');
    await daemon.process.exited;
    await showClients(rig, [6379]);
    say('cachenat flush: removes every cachenat chain and jump, nothing else');
    console.log(indent((await rig.cli(['flush'])).stdout));
    await showClients(rig, [6379]);
  } finally {
    await stop();
  }
  say('done');
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
