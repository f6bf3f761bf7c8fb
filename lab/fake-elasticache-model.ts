// What the fake ElastiCache API knows and says, without any I/O: the topology
// it serves, the XML of its answers (Query protocol, API version 2015-02-02),
// paging, and the faults it can be told to produce. The HTTP server around it
// lives in fake-elasticache.ts.

import { z } from 'zod';
import { el, esc, text } from './fake-http.js';

export const XML_NAMESPACE = 'http://elasticache.amazonaws.com/doc/2015-02-02/';

/** Items per page when the caller sends no MaxRecords: small, so every test pages. */
export const DEFAULT_PAGE_SIZE = 2;

/**
 * A topology for the fake to serve. Values are sent as given (XML-escaped), so a
 * test can serve hostile data; only the JSON shape is checked.
 */
export interface FakeTopology {
  clusters?: FakeCluster[];
  replicationGroups?: FakeReplicationGroup[];
  serverlessCaches?: FakeServerlessCache[];
}

export interface FakeServerlessCache {
  name: string;
  /** valkey (default), redis, memcached. */
  engine?: string;
  /** Defaults to "available". */
  status?: string;
  endpoint?: FakeEndpoint;
  reader?: FakeEndpoint;
}

export interface FakeCluster {
  id: string;
  /** redis (default), valkey, memcached, or anything else to test rejection. */
  engine?: string;
  /** Defaults to "available", or "creating" when no node has an endpoint. */
  status?: string;
  replicationGroupId?: string;
  nodes?: FakeNode[];
  /** Memcached's `.cfg.` endpoint. */
  configurationEndpoint?: FakeEndpoint;
  /** TransitEncryptionEnabled; left out of the answer when absent. */
  tls?: boolean;
}

export interface FakeNode {
  id: string;
  /** Defaults to "available" with an endpoint, "creating" without. */
  status?: string;
  /** Leave address and port out to model a node that is being created or removed. */
  address?: string;
  port?: number | string;
}

export interface FakeEndpoint {
  address: string;
  port: number | string;
}

export interface FakeReplicationGroup {
  id: string;
  /** Left out of the answer when absent, as older groups do. */
  engine?: string;
  status?: string;
  clusterEnabled?: boolean;
  /** Member cache cluster ids; the first is reported as the primary. */
  members?: string[];
  primary?: FakeEndpoint;
  reader?: FakeEndpoint;
  configurationEndpoint?: FakeEndpoint;
  /** TransitEncryptionEnabled; left out of the answer when absent. */
  tls?: boolean;
}

const portValue = z.union([z.number(), z.string()]);
const endpointSchema = z.strictObject({ address: z.string(), port: portValue });

export const fakeTopologySchema: z.ZodType<FakeTopology> = z.strictObject({
  clusters: z
    .array(
      z.strictObject({
        id: z.string(),
        engine: z.string().optional(),
        status: z.string().optional(),
        replicationGroupId: z.string().optional(),
        nodes: z
          .array(
            z.strictObject({
              id: z.string(),
              status: z.string().optional(),
              address: z.string().optional(),
              port: portValue.optional(),
            }),
          )
          .optional(),
        configurationEndpoint: endpointSchema.optional(),
        tls: z.boolean().optional(),
      }),
    )
    .optional(),
  replicationGroups: z
    .array(
      z.strictObject({
        id: z.string(),
        engine: z.string().optional(),
        status: z.string().optional(),
        clusterEnabled: z.boolean().optional(),
        members: z.array(z.string()).optional(),
        primary: endpointSchema.optional(),
        reader: endpointSchema.optional(),
        configurationEndpoint: endpointSchema.optional(),
        tls: z.boolean().optional(),
      }),
    )
    .optional(),
  serverlessCaches: z
    .array(
      z.strictObject({
        name: z.string(),
        engine: z.string().optional(),
        status: z.string().optional(),
        endpoint: endpointSchema.optional(),
        reader: endpointSchema.optional(),
      }),
    )
    .optional(),
});

/** Checks parsed JSON; the error names the offending path. */
export function parseFakeTopology(value: unknown): FakeTopology | { error: string } {
  const parsed = fakeTopologySchema.safeParse(value);
  return parsed.success ? parsed.data : { error: z.prettifyError(parsed.error) };
}

export const FAULT_KINDS = [
  'none', // answer normally
  'throttling', // 400 Throttling
  'internal-error', // 500 InternalFailure
  'unavailable', // 503 ServiceUnavailable
  'malformed-xml', // 200 with a truncated body
  'access-denied', // 403 AccessDenied
  'expired-token', // 403 ExpiredToken
  'hang', // read the request, never answer
  'second-page-fails', // 500 InternalFailure, only for requests that carry a Marker
  'empty', // a valid answer listing nothing
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** A fault, permanent until cleared or for the next `count` requests it applies to (only to `action` when given). */
export interface Fault {
  kind: FaultKind;
  count?: number;
  action?: Action;
}

export const ACTIONS = ['DescribeCacheClusters', 'DescribeReplicationGroups', 'DescribeServerlessCaches'] as const;
export type Action = (typeof ACTIONS)[number];

export const faultSchema: z.ZodType<Fault> = z.strictObject({
  kind: z.enum(FAULT_KINDS),
  count: z.number().int().positive().optional(),
  action: z.enum(ACTIONS).optional(),
});

export interface Answer {
  status: number;
  body: string;
}

const ERRORS = {
  throttling: { status: 400, type: 'Sender', code: 'Throttling', message: 'Rate exceeded' },
  'internal-error': { status: 500, type: 'Receiver', code: 'InternalFailure', message: 'The request processing has failed because of an unknown error.' },
  'second-page-fails': { status: 500, type: 'Receiver', code: 'InternalFailure', message: 'The request processing has failed because of an unknown error.' },
  unavailable: { status: 503, type: 'Receiver', code: 'ServiceUnavailable', message: 'Service is unavailable.' },
  'access-denied': { status: 403, type: 'Sender', code: 'AccessDenied', message: 'User is not authorized to perform this ElastiCache action.' },
  'expired-token': { status: 403, type: 'Sender', code: 'ExpiredToken', message: 'The security token included in the request is expired.' },
} as const;

/** The answer to one API request, with `fault` ('none' to answer normally; not 'hang'). */
export function answer(params: URLSearchParams, topology: FakeTopology, fault: Exclude<FaultKind, 'hang'>, requestId: string): Answer {
  const action = params.get('Action') ?? '';
  if (action === '') return errorAnswer(400, 'Sender', 'MissingAction', 'The request must contain the parameter Action.', requestId);
  if (!(ACTIONS as readonly string[]).includes(action)) {
    return errorAnswer(400, 'Sender', 'InvalidAction', `The action ${action} is not valid for this web service.`, requestId);
  }
  if (fault !== 'none' && fault !== 'empty' && fault !== 'malformed-xml') {
    const e = ERRORS[fault];
    return errorAnswer(e.status, e.type, e.code, e.message, requestId);
  }
  if (fault === 'malformed-xml') {
    return { status: 200, body: `<${action}Response xmlns="${XML_NAMESPACE}"><${action}Result><Marker>tok</Mar` };
  }
  const served = fault === 'empty' ? {} : topology;
  if (action === 'DescribeServerlessCaches') return describeServerlessCaches(params, served, requestId);
  return action === 'DescribeCacheClusters'
    ? describeCacheClusters(params, served, requestId)
    : describeReplicationGroups(params, served, requestId);
}

export function errorAnswer(status: number, type: string, code: string, message: string, requestId: string): Answer {
  const body =
    `<ErrorResponse xmlns="${XML_NAMESPACE}"><Error><Type>${type}</Type><Code>${esc(code)}</Code>` +
    `<Message>${esc(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
  return { status, body };
}

function describeCacheClusters(params: URLSearchParams, topology: FakeTopology, requestId: string): Answer {
  let clusters = topology.clusters ?? [];
  const wanted = params.get('CacheClusterId');
  if (wanted !== null) {
    clusters = clusters.filter((c) => c.id === wanted);
    if (clusters.length === 0) return errorAnswer(404, 'Sender', 'CacheClusterNotFound', `CacheCluster not found: ${wanted}`, requestId);
  }
  if (params.get('ShowCacheClustersNotInReplicationGroups') === 'true') {
    clusters = clusters.filter((c) => c.replicationGroupId === undefined);
  }
  const page = pageOf(clusters, params);
  if ('error' in page) return errorAnswer(400, 'Sender', 'InvalidParameterValue', page.error, requestId);
  const withNodes = params.get('ShowCacheNodeInfo') === 'true';
  const items = page.items.map((c) => el('CacheCluster', clusterXml(c, withNodes))).join('');
  return okAnswer('DescribeCacheClusters', page.marker, el('CacheClusters', items), requestId);
}

function describeReplicationGroups(params: URLSearchParams, topology: FakeTopology, requestId: string): Answer {
  let groups = topology.replicationGroups ?? [];
  const wanted = params.get('ReplicationGroupId');
  if (wanted !== null) {
    groups = groups.filter((g) => g.id === wanted);
    if (groups.length === 0) {
      return errorAnswer(404, 'Sender', 'ReplicationGroupNotFoundFault', `ReplicationGroup not found: ${wanted}`, requestId);
    }
  }
  const page = pageOf(groups, params);
  if ('error' in page) return errorAnswer(400, 'Sender', 'InvalidParameterValue', page.error, requestId);
  const items = page.items.map((g) => el('ReplicationGroup', groupXml(g, topology))).join('');
  return okAnswer('DescribeReplicationGroups', page.marker, el('ReplicationGroups', items), requestId);
}

// Serverless answers page with NextToken/MaxResults instead of Marker/MaxRecords,
// and their list items are <member> elements.
function describeServerlessCaches(params: URLSearchParams, topology: FakeTopology, requestId: string): Answer {
  let caches = topology.serverlessCaches ?? [];
  const wanted = params.get('ServerlessCacheName');
  if (wanted !== null) {
    caches = caches.filter((c) => c.name === wanted);
    if (caches.length === 0) return errorAnswer(404, 'Sender', 'ServerlessCacheNotFoundFault', `ServerlessCache not found: ${wanted}`, requestId);
  }
  const paging = new URLSearchParams();
  for (const [from, to] of [['MaxResults', 'MaxRecords'], ['NextToken', 'Marker']] as const) {
    const value = params.get(from);
    if (value !== null) paging.set(to, value);
  }
  const page = pageOf(caches, paging);
  if ('error' in page) return errorAnswer(400, 'Sender', 'InvalidParameterValue', page.error, requestId);
  const items = page.items.map((c) => el('member', serverlessXml(c))).join('');
  const body =
    `<DescribeServerlessCachesResponse xmlns="${XML_NAMESPACE}"><DescribeServerlessCachesResult>` +
    (page.marker === undefined ? '' : el('NextToken', esc(page.marker))) +
    el('ServerlessCaches', items) +
    `</DescribeServerlessCachesResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></DescribeServerlessCachesResponse>`;
  return { status: 200, body };
}

function serverlessXml(cache: FakeServerlessCache): string {
  return (
    text('ServerlessCacheName', cache.name) +
    text('Status', cache.status ?? 'available') +
    text('Engine', cache.engine ?? 'valkey') +
    (cache.endpoint ? endpointXml('Endpoint', cache.endpoint) : '') +
    (cache.reader ? endpointXml('ReaderEndpoint', cache.reader) : '')
  );
}

/**
 * One page of `items`. MaxRecords is honoured from 1 to 100 (AWS accepts 20 to
 * 100; smaller pages keep tests short). Markers are "page-<offset>".
 */
export function pageOf<T>(items: T[], params: URLSearchParams): { items: T[]; marker?: string } | { error: string } {
  const maxText = params.get('MaxRecords');
  let size = DEFAULT_PAGE_SIZE;
  if (maxText !== null) {
    if (!/^\d{1,3}$/.test(maxText) || Number(maxText) < 1 || Number(maxText) > 100) {
      return { error: `MaxRecords must be between 1 and 100, got ${maxText}` };
    }
    size = Number(maxText);
  }
  let offset = 0;
  const marker = params.get('Marker');
  if (marker !== null && marker !== '') {
    const match = /^page-(\d{1,6})$/.exec(marker);
    if (!match || Number(match[1]) > items.length) return { error: `Invalid marker: ${marker}` };
    offset = Number(match[1]);
  }
  const end = offset + size;
  return end < items.length ? { items: items.slice(offset, end), marker: `page-${end}` } : { items: items.slice(offset) };
}

function okAnswer(action: string, marker: string | undefined, list: string, requestId: string): Answer {
  const body =
    `<${action}Response xmlns="${XML_NAMESPACE}"><${action}Result>` +
    (marker === undefined ? '' : el('Marker', esc(marker))) +
    list +
    `</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
  return { status: 200, body };
}

function clusterXml(cluster: FakeCluster, withNodes: boolean): string {
  const nodes = cluster.nodes ?? [];
  const anyEndpoint = nodes.some((n) => n.address !== undefined || n.port !== undefined);
  const status = cluster.status ?? (nodes.length > 0 && !anyEndpoint ? 'creating' : 'available');
  return (
    text('CacheClusterId', cluster.id) +
    (cluster.configurationEndpoint ? endpointXml('ConfigurationEndpoint', cluster.configurationEndpoint) : '') +
    text('Engine', cluster.engine ?? 'redis') +
    text('CacheClusterStatus', status) +
    el('NumCacheNodes', String(nodes.length)) +
    (cluster.replicationGroupId === undefined ? '' : text('ReplicationGroupId', cluster.replicationGroupId)) +
    (cluster.tls === undefined ? '' : el('TransitEncryptionEnabled', String(cluster.tls))) +
    (withNodes ? el('CacheNodes', nodes.map((n) => el('CacheNode', nodeXml(n))).join('')) : '')
  );
}

function nodeXml(node: FakeNode): string {
  const hasEndpoint = node.address !== undefined || node.port !== undefined;
  const endpoint =
    (node.address === undefined ? '' : text('Address', node.address)) + (node.port === undefined ? '' : text('Port', String(node.port)));
  return (
    text('CacheNodeId', node.id) +
    text('CacheNodeStatus', node.status ?? (hasEndpoint ? 'available' : 'creating')) +
    (hasEndpoint ? el('Endpoint', endpoint) : '')
  );
}

/** The shard of a cluster-mode member, as ElastiCache names them: `<group>-000N-00M` is in node group 000N. */
const shardOf = (clusterId: string): string => /-(\d{4})-\d{3}$/.exec(clusterId)?.[1] ?? '0001';

function groupXml(group: FakeReplicationGroup, topology: FakeTopology): string {
  const members = group.members ?? [];
  const enabled = group.clusterEnabled === true;
  const memberXml = (ids: string[]) =>
    ids
      .map((clusterId, index) => {
        const node = topology.clusters?.find((c) => c.id === clusterId)?.nodes?.[0];
        const read = !enabled && node?.address !== undefined && node.port !== undefined;
        return el(
          'NodeGroupMember',
          text('CacheClusterId', clusterId) +
            (node ? text('CacheNodeId', node.id) : '') +
            (read ? endpointXml('ReadEndpoint', { address: node.address as string, port: node.port as number | string }) : '') +
            (enabled ? '' : text('CurrentRole', index === 0 ? 'primary' : 'replica')),
        );
      })
      .join('');
  // Cluster mode: one node group per shard; otherwise the one group.
  const shards = enabled ? [...new Set(members.map(shardOf))] : ['0001'];
  const nodeGroups = shards
    .map((shard) =>
      el(
        'NodeGroup',
        text('NodeGroupId', shard) +
          text('Status', group.status ?? 'available') +
          (group.primary ? endpointXml('PrimaryEndpoint', group.primary) : '') +
          (group.reader ? endpointXml('ReaderEndpoint', group.reader) : '') +
          el('NodeGroupMembers', memberXml(enabled ? members.filter((id) => shardOf(id) === shard) : members)),
      ),
    )
    .join('');
  return (
    text('ReplicationGroupId', group.id) +
    text('Description', `fake group ${group.id}`) +
    text('Status', group.status ?? 'available') +
    el('MemberClusters', members.map((id) => text('ClusterId', id)).join('')) +
    el('NodeGroups', nodeGroups) +
    (group.configurationEndpoint ? endpointXml('ConfigurationEndpoint', group.configurationEndpoint) : '') +
    el('ClusterEnabled', String(enabled)) +
    el('ClusterMode', enabled ? 'enabled' : 'disabled') +
    (group.tls === undefined ? '' : el('TransitEncryptionEnabled', String(group.tls))) +
    (group.engine === undefined ? '' : text('Engine', group.engine))
  );
}

const endpointXml = (name: string, e: FakeEndpoint) => el(name, text('Address', e.address) + text('Port', String(e.port)));
