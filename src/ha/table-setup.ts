// `cachenat ha init`: the pair's DynamoDB table, made once (its own file,
// so its two calls have a policy of their own: ami/iam-policy-ha-setup.json;
// the daemon never calls them).

import { CreateTableCommand, DescribeTableCommand, ResourceInUseException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** How long `ha init` waits for a new table to become ACTIVE. */
const TABLE_ACTIVE_WAIT_MS = 60_000;
const TABLE_POLL_MS = 500;

/** An SDK error's name (the exception class the service named). */
export const nameOf = (err: unknown): string => (err instanceof Error ? err.name : typeof err);

/**
 * Creates the table (partition key "pk", string, on-demand) unless it
 * exists, and waits until it is ACTIVE. Idempotent. Right after
 * CreateTable, DescribeTable may answer ResourceNotFoundException for a
 * while (AWS documents the window): that is asked again, not an error.
 * Throws what the API said when it cannot.
 */
export async function ensureHaTable(client: DynamoDBClient, table: string, options: { waitMs?: number; pollMs?: number } = {}): Promise<'created' | 'exists'> {
  let outcome: 'created' | 'exists' = 'created';
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
    outcome = 'exists';
  }
  const waitMs = options.waitMs ?? TABLE_ACTIVE_WAIT_MS;
  const deadline = Date.now() + waitMs;
  for (;;) {
    let described;
    try {
      ({ Table: described } = await client.send(new DescribeTableCommand({ TableName: table })));
    } catch (err) {
      // Right after CreateTable, DescribeTable may not know the table yet: ask again.
      if (nameOf(err) !== 'ResourceNotFoundException' || outcome !== 'created') throw err;
    }
    if (described !== undefined) {
      const key = described.KeySchema ?? [];
      const pk = described.AttributeDefinitions?.find((a) => a.AttributeName === 'pk');
      if (key.length !== 1 || key[0]?.AttributeName !== 'pk' || key[0]?.KeyType !== 'HASH' || pk?.AttributeType !== 'S') {
        throw new Error(`table ${table} exists but its key is not the partition key "pk" (string) alone; use another ha.table`);
      }
      if (described.TableStatus === 'ACTIVE') return outcome;
    }
    if (Date.now() > deadline) throw new Error(`table ${table} is still ${described?.TableStatus ?? 'unknown to DescribeTable'} after ${Math.round(waitMs / 1000)}s`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? TABLE_POLL_MS));
  }
}
