// `cachenat ha init`: creates the pair's DynamoDB table. `cachenat ha handover`:
// asks the running leader to give up the lease (SIGUSR2) and waits until the
// standby holds it.

import { setTimeout as delay } from 'node:timers/promises';
import { ConfigError } from '../../config/load.js';
import type { Config } from '../../core/config/schema.js';
import { readSnapshotFile } from '../../daemon/snapshot-file.js';
import { EXIT } from '../exit-codes.js';
import type { CommandModule, CommandOptions } from '../command.js';
import type { CliIo } from '../io.js';
import { configPathOf, loadFor, print, regionFor } from './shared.js';

/** How long `ha handover` waits for the standby, beyond one lease. */
const HANDOVER_SLACK_MS = 5000;
const POLL_MS = 200;

export const command: CommandModule = {
  flags: [],
  words: [{ name: 'action', help: 'init: create the DynamoDB table; handover: give the lease to the standby', choices: ['init', 'handover'] }],
  details: `init creates the ha.table DynamoDB table (partition key pk, on-demand) if it is missing and waits
until it is ACTIVE; a table of that name with another key is refused. It needs dynamodb:CreateTable
and dynamodb:DescribeTable.
handover, run on the leader, asks the daemon (SIGUSR2) to release the lease and waits until the
standby holds it (at most one lease and 5 s).

Exit codes: 0 done, 1 AWS refused or failed / nobody took the lease / not the leader,
78 bad config or no ha section.`,
  run: haCommand,
};

async function haCommand(options: CommandOptions, io: CliIo): Promise<number> {
  const { config } = await loadFor(options, io);
  const ha = config.ha;
  if (!ha) throw new ConfigError(configPathOf(options, io), [{ path: 'ha', message: 'no ha section in this config; add one (table, group, lease, elasticIp) to run an HA pair' }]);
  return options.words[0] === 'init' ? init(await regionFor(config, configPathOf(options, io), io), ha, io) : handover(config, ha, io);
}

async function init(region: string, ha: NonNullable<Config['ha']>, io: CliIo): Promise<number> {
  const { DynamoHaStore } = await import('../../ha/dynamo-store.js');
  const store = new DynamoHaStore({ region, table: ha.table, group: ha.group, timeoutMs: 10_000, ...(ha.endpoint ? { endpoint: ha.endpoint } : {}) });
  try {
    const outcome = await store.ensureTable();
    print(io.stdout, outcome === 'created' ? `created DynamoDB table ${ha.table} (partition key pk, on-demand); it is ACTIVE` : `DynamoDB table ${ha.table} exists with the right key; nothing to do`);
    return EXIT.ok;
  } catch (err) {
    io.stderr.write(`cachenat: ha init: cannot create or check table ${ha.table} in ${region}: ${(err as Error).message}. The instance role (or your credentials) needs dynamodb:CreateTable and dynamodb:DescribeTable on it (ami/iam-policy-ha-setup.json)\n`);
    return EXIT.failure;
  } finally {
    store.close();
  }
}

async function handover(config: Config, ha: NonNullable<Config['ha']>, io: CliIo): Promise<number> {
  const before = await readSnapshotFile(config.state.statusFile);
  if (!before || !io.isAlive(before.pid)) {
    io.stderr.write(`cachenat: ha handover: cachenat is not running here (no live daemon in ${config.state.statusFile}); nothing to hand over\n`);
    return EXIT.failure;
  }
  if (before.ha?.role !== 'leader') {
    const holder = before.ha?.lease?.holder;
    io.stderr.write(`cachenat: ha handover: this instance is ${before.ha?.role ?? 'not in an HA pair'}${holder ? `; the leader is ${holder}: run it there` : ''}\n`);
    return EXIT.failure;
  }
  const self = before.ha.instanceId;
  io.signal(before.pid, 'SIGUSR2');
  const started = io.now();
  const deadline = started + ha.lease + HANDOVER_SLACK_MS;
  while (io.now() < deadline) {
    await delay(POLL_MS);
    const now = await readSnapshotFile(config.state.statusFile);
    const holder = now?.ha?.lease?.holder;
    if (now?.ha?.role === 'standby' && holder && holder !== self) {
      print(io.stdout, `handed over: ${holder} holds the lease (term ${now.ha.lease?.term ?? '?'}) after ${Math.round(io.now() - started)} ms; this instance is the standby`);
      return EXIT.ok;
    }
  }
  io.stderr.write(`cachenat: ha handover: no other instance took the lease within ${Math.round((deadline - started) / 1000)} s; is the standby running (cachenat status on it)? This instance takes the lease back if nobody does\n`);
  return EXIT.failure;
}
