// The AWS edge: reads every page of DescribeCacheClusters (with node info),
// DescribeReplicationGroups and DescribeServerlessCaches through the real SDK
// client, then hands the answers to toTopology. Each source (the two classic
// calls together, Serverless alone) either arrives whole within the time
// budget or is reported as failed, so the planner holds its targets as they
// were: a partial list would look like caches disappearing. When every source
// fails, describe() throws a DiscoveryError.

import {
  ElastiCacheClient,
  paginateDescribeCacheClusters,
  paginateDescribeReplicationGroups,
  paginateDescribeServerlessCaches,
  type CacheCluster,
  type ReplicationGroup,
  type ServerlessCache,
} from '@aws-sdk/client-elasticache';
import { sdkClientConfig, type AwsCredentials } from '../aws/client-settings.js';
import type { TargetSource } from '../core/model.js';
import type { TargetFilter } from '../core/discovery/glob.js';
import { toTopology, type DescribeResults } from '../core/discovery/topology.js';
import { DiscoveryError, type CacheSource, type Discovery, type SourceFailure } from '../core/discovery/types.js';

export interface ElastiCacheSourceOptions {
  region: string;
  /** Overrides the API URL (config aws.endpoint), e.g. a local fake. */
  endpoint?: string;
  /** Budget for one whole describe(), every page of both operations included. */
  timeoutMs: number;
  filter: TargetFilter;
  credentials?: AwsCredentials;
  /** A ready client, used as given (its own timeouts and retries apply per request). */
  client?: ElastiCacheClient;
}

// The daemon backs off between passes itself; inside one pass a single retry
// is enough to ride over a dropped connection or one throttled page.
const MAX_ATTEMPTS = 2;

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'ThrottledException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled', 'SlowDown']);
const EXPIRED = new Set(['ExpiredToken', 'ExpiredTokenException', 'RequestExpired']);
const DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'MissingAuthenticationToken',
  'AuthFailure',
  'OptInRequired',
]);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

export class ElastiCacheSource implements CacheSource {
  readonly #client: ElastiCacheClient;
  readonly #timeoutMs: number;
  readonly #filter: TargetFilter;

  constructor(options: ElastiCacheSourceOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#filter = options.filter;
    this.#client = options.client ?? createElastiCacheClient(options);
  }

  async describe(signal?: AbortSignal): Promise<Discovery> {
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const abortSignal = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    const read = <T>(progress: Progress, work: () => Promise<T>) => this.#readSource(progress, work, abortSignal, deadline, signal);

    const classicProgress = newProgress('DescribeCacheClusters');
    const classic = await read(classicProgress, () => this.#readClassic(abortSignal, classicProgress));
    const serverlessProgress = newProgress('DescribeServerlessCaches');
    const serverless = await read(serverlessProgress, () => this.#readServerless(abortSignal, serverlessProgress));
    if ('error' in classic && 'error' in serverless) throw classic.error;

    const failures: SourceFailure[] = [];
    if ('error' in classic) failures.push({ source: 'classic', error: classic.error });
    if ('error' in serverless) failures.push({ source: 'serverless', error: serverless.error });
    const results: DescribeResults = {
      cacheClusters: 'value' in classic ? classic.value.cacheClusters : [],
      replicationGroups: 'value' in classic ? classic.value.replicationGroups : [],
      ...('value' in serverless ? { serverlessCaches: serverless.value } : {}),
    };
    const topology = toTopology(results, this.#filter);
    if (failures.length === 0) return topology;
    const held: TargetSource[] = failures.map((f) => f.source);
    return { ...topology, held, failures };
  }

  /**
   * One source's calls, every page, as a value or the DiscoveryError saying
   * which call and page failed. Only the caller's own cancellation throws.
   */
  async #readSource<T>(
    progress: Progress,
    work: () => Promise<T>,
    abortSignal: AbortSignal,
    deadline: AbortSignal,
    signal: AbortSignal | undefined,
  ): Promise<{ value: T } | { error: DiscoveryError }> {
    try {
      // The race makes the budget hold even if the SDK were slow to notice the abort.
      return { value: await untilAborted(work(), abortSignal) };
    } catch (err) {
      if (signal?.aborted) throw new DiscoveryError(`${where(progress)} was cancelled`, 'Aborted', true, { cause: err });
      if (deadline.aborted) {
        const error = new DiscoveryError(
          `${where(progress)} did not complete within ${this.#timeoutMs} ms (discovery.apiTimeout); the ElastiCache API or the way to it is slow or unreachable`,
          'Timeout',
          true,
          { cause: err },
        );
        return { error };
      }
      return { error: toDiscoveryError(err, progress) };
    }
  }

  /** Closes the client's idle connections. */
  destroy(): void {
    this.#client.destroy();
  }

  async #readClassic(abortSignal: AbortSignal, progress: Progress): Promise<Omit<DescribeResults, 'serverlessCaches'>> {
    const cacheClusters: CacheCluster[] = [];
    const clusterPages = paginateDescribeCacheClusters({ client: this.#client }, { ShowCacheNodeInfo: true }, { abortSignal });
    for await (const page of clusterPages) {
      checkPage(progress, page.CacheClusters, page.$metadata.requestId);
      cacheClusters.push(...(page.CacheClusters ?? []));
      nextPage(progress, page.Marker);
    }

    progress.operation = 'DescribeReplicationGroups';
    progress.page = 1;
    progress.markers.clear();
    const replicationGroups: ReplicationGroup[] = [];
    const groupPages = paginateDescribeReplicationGroups({ client: this.#client }, {}, { abortSignal });
    for await (const page of groupPages) {
      checkPage(progress, page.ReplicationGroups, page.$metadata.requestId);
      replicationGroups.push(...(page.ReplicationGroups ?? []));
      nextPage(progress, page.Marker);
    }
    return { cacheClusters, replicationGroups };
  }

  async #readServerless(abortSignal: AbortSignal, progress: Progress): Promise<ServerlessCache[]> {
    const caches: ServerlessCache[] = [];
    const pages = paginateDescribeServerlessCaches({ client: this.#client }, {}, { abortSignal });
    for await (const page of pages) {
      checkPage(progress, page.ServerlessCaches, page.$metadata.requestId);
      caches.push(...(page.ServerlessCaches ?? []));
      nextPage(progress, page.NextToken);
    }
    return caches;
  }
}

export type ClientSettings = Pick<ElastiCacheSourceOptions, 'region' | 'endpoint' | 'timeoutMs' | 'credentials'>;

/** An SDK client whose per-request timeouts and retries fit inside one describe()'s budget. */
export const createElastiCacheClient = (settings: ClientSettings): ElastiCacheClient => new ElastiCacheClient(sdkClientConfig(settings, MAX_ATTEMPTS));

/**
 * Sources for a daemon that rebuilds its edges on every reload (SIGHUP). They
 * share one SDK client while region, endpoint, timeout and credentials stay
 * the same; when a reload changes them, the old client is destroyed so its
 * sockets and agents do not pile up, one set per reload.
 */
export class ElastiCacheSources {
  #current: { key: string; client: ElastiCacheClient } | undefined;

  constructor(private readonly newClient: (settings: ClientSettings) => ElastiCacheClient = createElastiCacheClient) {}

  sourceFor(options: Omit<ElastiCacheSourceOptions, 'client'>): ElastiCacheSource {
    const key = JSON.stringify([options.region, options.endpoint ?? null, options.timeoutMs, options.credentials ?? null]);
    if (this.#current?.key !== key) {
      this.#current?.client.destroy();
      this.#current = { key, client: this.newClient(options) };
    }
    return new ElastiCacheSource({ ...options, client: this.#current.client });
  }

  /** Destroys the client in use; the next sourceFor() builds a new one. */
  destroy(): void {
    this.#current?.client.destroy();
    this.#current = undefined;
  }
}

/** Where a describe() is, so an error can say which call and page failed. */
interface Progress {
  operation: 'DescribeCacheClusters' | 'DescribeReplicationGroups' | 'DescribeServerlessCaches';
  /** The page being asked for, from 1. */
  page: number;
  /** Markers seen so far in this listing. */
  markers: Set<string>;
}

const newProgress = (operation: Progress['operation']): Progress => ({ operation, page: 1, markers: new Set() });

const where = (progress: Progress) => `${progress.operation} (page ${progress.page})`;

// An API that hands back a marker it gave before would page forever or, if
// paging stopped there, yield a silently partial answer.
function nextPage(progress: Progress, marker: string | undefined) {
  if (marker !== undefined) {
    if (progress.markers.has(marker)) {
      throw new DiscoveryError(`${where(progress)} returned marker ${JSON.stringify(marker)} a second time`, 'BadResponse', true);
    }
    progress.markers.add(marker);
  }
  progress.page += 1;
}

// The SDK reads any well-formed XML, even an HTML page, as an answer with no
// items. AWS always sends a request id header, so an answer with neither a
// list nor a request id came from something else (a proxy, a captive portal)
// and must not be taken for "no caches".
function checkPage(progress: Progress, list: unknown[] | undefined, requestId: string | undefined) {
  if (list !== undefined || requestId !== undefined) return;
  throw new DiscoveryError(
    `${where(progress)} got an answer with neither a result list nor an AWS request id; something other than the ElastiCache API answered (check aws.endpoint and any proxy)`,
    'BadResponse',
    true,
  );
}

/** Settles like `work`, or rejects with the abort reason as soon as `signal` aborts. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Handled either way: work that fails after the abort must not surface as an unhandled rejection.
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Maps whatever the SDK threw to a DiscoveryError that says who must act. */
function toDiscoveryError(err: unknown, progress: Progress): DiscoveryError {
  if (err instanceof DiscoveryError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: string;
    code?: string;
    Code?: string;
    message?: string;
    $fault?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode;
  // The code on the wire (e.g. InvalidParameterValue) rather than the SDK's
  // class name for it (InvalidParameterValueException); "Unknown" is what the
  // SDK calls an error answer without an AWS error body, such as a proxy page.
  const name = e.Code ?? (e.name === 'Unknown' && status !== undefined ? `HTTP${status}` : (e.name ?? 'Error'));
  const detail = e.name === 'Unknown' ? `HTTP ${status} without an AWS error body` : (e.message ?? String(err)).split('\n')[0];
  const fail = (code: string, retryable: boolean, advice: string) =>
    new DiscoveryError(`${where(progress)} failed: ${code}: ${detail}${advice ? `; ${advice}` : ''}`, code, retryable, { cause: err });

  if (THROTTLING.has(name)) return fail(name, true, 'AWS is rate-limiting this account; the next pass backs off');
  if (EXPIRED.has(name)) return fail(name, true, 'instance-role credentials are renewed automatically; static keys must be replaced');
  if (DENIED.has(name)) {
    if (progress.operation === 'DescribeServerlessCaches') {
      return fail(name, false, 'give the instance role elasticache:DescribeServerlessCaches (see ami/iam-policy.json); until then Serverless caches are not forwarded');
    }
    return fail(name, false, 'give the instance role elasticache:DescribeCacheClusters and elasticache:DescribeReplicationGroups, and check aws.region');
  }
  if (name === 'CredentialsProviderError') {
    return fail('Credentials', true, 'no AWS credentials found: attach an instance role or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  if (name === 'TimeoutError' || e.code === 'ETIMEDOUT') return fail('Timeout', true, 'the API did not answer in time');
  if (e.code !== undefined && NETWORK.has(e.code)) return fail('Network', true, 'check the route, DNS and security groups to the ElastiCache API (or aws.endpoint)');
  if (e.$fault === 'server' || (status !== undefined && status >= 500)) return fail(name, true, 'an error on the AWS side; the next pass retries');
  if (e.$fault === 'client') return fail(name, false, '');
  if (status !== undefined || /deserializ|parse error/i.test(detail ?? '')) {
    return fail('BadResponse', true, `the answer${status === undefined ? '' : ` (HTTP ${status})`} could not be read`);
  }
  return fail('Unexpected', true, '');
}
