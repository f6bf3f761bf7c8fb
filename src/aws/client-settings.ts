// The settings every AWS SDK client of cachenat shares (ElastiCache, DynamoDB,
// EC2), and the one credentials type. Each request has a budget, connecting a
// shorter one; retries are few because the daemon's loop is the retry, with
// its own backoff.

/** Fixed credentials; by default the SDK's chain (environment, profile, instance role). */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface AwsClientOptions {
  region: string;
  /** An endpoint override: a local DynamoDB, a fake EC2 or ElastiCache API (tests, the lab). */
  endpoint?: string;
  /** Budget of one call, every attempt included. */
  timeoutMs: number;
  credentials?: AwsCredentials;
}

const MAX_CONNECT_MS = 3000;
const MIN_ATTEMPT_MS = 100;

/**
 * The SDK client configuration: `attempts` tries within `timeoutMs` (each
 * gets an equal share). The HA clients make one attempt: an SDK retry of a
 * conditional write whose first attempt landed would be refused by its own write.
 */
export function sdkClientConfig(options: AwsClientOptions, attempts = 1) {
  const attemptMs = Math.max(MIN_ATTEMPT_MS, Math.floor(options.timeoutMs / attempts));
  return {
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: attempts,
    requestHandler: {
      connectionTimeout: Math.min(attemptMs, MAX_CONNECT_MS),
      requestTimeout: attemptMs,
      throwOnRequestTimeout: true,
    },
  };
}

/** One attempt per request: the HA clients (DynamoDB, EC2). */
export const singleAttemptClientConfig = (options: AwsClientOptions) => sdkClientConfig(options, 1);
