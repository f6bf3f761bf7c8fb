// The settings every AWS SDK client of the HA code shares: one attempt per
// request (the daemon's beat is the retry, with its own backoff), a request
// budget, and a shorter connect budget.

export interface AwsClientOptions {
  region: string;
  /** An endpoint override: a local DynamoDB, a fake EC2 API (tests, the lab). */
  endpoint?: string;
  /** Budget of one request. */
  timeoutMs: number;
  /** Fixed credentials; by default the SDK's chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

const MAX_CONNECT_MS = 3000;

export function singleAttemptClientConfig(options: AwsClientOptions) {
  return {
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: Math.min(options.timeoutMs, MAX_CONNECT_MS),
      requestTimeout: options.timeoutMs,
      throwOnRequestTimeout: true,
    },
  };
}
