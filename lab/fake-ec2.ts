// A local stand-in for the EC2 Query API (version 2016-11-15), as far as the
// HA pair uses it: AssociateAddress and DescribeAddresses, with real XML in
// the EC2 namespace and EC2's error document, good enough for the real SDK.
// In the lab it really moves the Elastic IP: when the interfaces of its
// state carry a namespace (`ns`) and a device (`iface`), an association
// deletes publicIp/24 from the old holder's device, adds it to the new
// one's, answers, then sends a gratuitous ARP from the new holder.
//
// Control endpoints on the same port:
//   PUT    /_fake/fault         {"kind":"error","code":"…","status":503,"message"?,"count"?,"action"?}
//                                 | {"kind":"delay","ms":n,"count"?,"action"?} | {"kind":"none"};
//                                 action defaults to AssociateAddress; no count: until cleared.
//                                 delay: the call is applied at once and answered ms later, as a slow
//                                 EC2 does: a caller that gave up on it finds it applied all the same.
//                                 Answers {"ok": true, "at": ms}.
//   GET    /_fake/requests      {"count": n, "requests": [...]}; DELETE forgets them
//   GET    /_fake/associations  {"count": n, "associations": [...]}: every association, with the time
//                                 the call arrived, the time the address was moved, from, to, and arping's result;
//                                 ?settled=true answers only once every gratuitous ARP started so far has finished
//                                 (arping runs after the answer, about 2 s: a reader that does not wait sees none)
//   GET    /_fake/state         the addresses and where each is associated now
//
// Run directly:
//   node dist/lab/fake-ec2.js --listen 127.0.0.1:4567 --state state.json
// prints exactly one line, "fake-ec2 listening on http://HOST:PORT", and exits on SIGTERM.
// state.json: {"addresses": [{"allocationId", "publicIp"}],
//              "interfaces": [{"networkInterfaceId", "instanceId", "privateIps": [...], "ns"?, "iface"?}]}

import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { isIpv4 } from '../src/core/ipv4.js';
import { interfaceProblem } from '../src/core/grammar.js';
import { closeServer, el, listen, onBody, parseListen, send, sendJson, text, runIfMain, UsageError } from './fake-http.js';
import { execIn, run, type ExecResult } from './netns.js';

export const EC2_XML_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';
export const EC2_ACTIONS = ['AssociateAddress', 'DescribeAddresses'] as const;
type Ec2Action = (typeof EC2_ACTIONS)[number];

// ---- state ------------------------------------------------------------------

const NAMESPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const interfaceSchema = z
  .object({
    networkInterfaceId: z.string().min(1),
    instanceId: z.string().min(1),
    privateIps: z.array(z.string().refine(isIpv4, 'expected an IPv4 address')).min(1),
    ns: z.string().regex(NAMESPACE_NAME).optional(),
    iface: z.string().refine((name) => interfaceProblem(name) === undefined && !name.endsWith('+'), 'expected an interface name').optional(),
  })
  .refine((i) => (i.ns === undefined) === (i.iface === undefined), 'give both ns and iface, or neither');

export const fakeEc2StateSchema = z.object({
  addresses: z.array(z.object({ allocationId: z.string().min(1), publicIp: z.string().refine(isIpv4, 'expected an IPv4 address') })),
  interfaces: z.array(interfaceSchema),
});

export type FakeEc2State = z.infer<typeof fakeEc2StateSchema>;
export type FakeInterface = FakeEc2State['interfaces'][number];

export function parseFakeEc2State(json: unknown): FakeEc2State | { error: string } {
  const parsed = fakeEc2StateSchema.safeParse(json);
  return parsed.success ? parsed.data : { error: parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ') };
}

// ---- faults, logs -------------------------------------------------------------

const count = z.number().int().positive().optional();
const action = z.enum(EC2_ACTIONS).default('AssociateAddress');

export const ec2FaultSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }),
  z.object({ kind: z.literal('error'), code: z.string().regex(/^[A-Za-z0-9.]{1,100}$/), status: z.number().int().min(400).max(599), message: z.string().max(1000).optional(), count, action }),
  z.object({ kind: z.literal('delay'), ms: z.number().int().min(0).max(600_000), count, action }),
]);

export type Ec2Fault = z.input<typeof ec2FaultSchema>;
type ParsedFault = z.output<typeof ec2FaultSchema>;

/** One API call as the fake saw it. */
export interface FakeEc2Request {
  /** Milliseconds since the epoch, when the request arrived. */
  at: number;
  action: string;
  params: Record<string, string>;
  /** HTTP status sent (undefined while in progress; 0: applied, but the caller had gone before the answer). */
  status?: number;
  /** The error code sent, if any. */
  code?: string;
  /** The fault it got ("error" or "delay"). */
  fault?: 'error' | 'delay';
}

/** Where an address is (or was) associated. */
export interface Holder {
  networkInterfaceId: string;
  instanceId: string;
  privateIp: string;
  ns?: string;
  iface?: string;
}

/** One successful AssociateAddress, and what moving the address did. */
export interface FakeAssociation {
  allocationId: string;
  publicIp: string;
  associationId: string;
  /** When the call arrived (ms since the epoch). */
  arrivedAt: number;
  /** When the address was on the new interface (or, without namespaces, when the association was recorded). */
  movedAt: number;
  /** When the answer was sent. */
  answeredAt?: number;
  from: Holder | null;
  to: Holder;
  /** The ip commands run, with their outcome. */
  commands: { args: string[]; exitCode: number; stderr: string }[];
  /** The gratuitous ARP from the new holder, once it has finished. */
  arping?: { exitCode: number; finishedAt: number; output: string };
}

export interface FakeEc2 {
  url: string;
  port: number;
  setFault(fault: Ec2Fault): void;
  requests(): FakeEc2Request[];
  clearRequests(): void;
  associations(): FakeAssociation[];
  /** The current holder of each address. */
  holders(): Record<string, Holder | null>;
  /** Resolves once every arping started so far has finished. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: string;
  code?: string;
}

const MAX_BODY_BYTES = 1 << 20;

export function ec2ErrorAnswer(status: number, code: string, message: string, requestId: string): Answer {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Response>${el('Errors', el('Error', text('Code', code) + text('Message', message)))}${text('RequestID', requestId)}</Response>`;
  return { status, body, code };
}

const okAnswer = (action: Ec2Action, inner: string, requestId: string): Answer => ({
  status: 200,
  body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XML_NAMESPACE}">${text('requestId', requestId)}${inner}</${action}Response>`,
});

/** The values of a flattened EC2 list parameter: Name.1, Name.2, … */
function listParam(params: URLSearchParams, name: string): string[] {
  const values: string[] = [];
  for (let i = 1; params.has(`${name}.${i}`); i += 1) values.push(params.get(`${name}.${i}`)!);
  return values;
}

const sameTarget = (a: Holder | null, b: Holder): boolean => a !== null && a.networkInterfaceId === b.networkInterfaceId && a.privateIp === b.privateIp;

// ---- the server ---------------------------------------------------------------

export async function startFakeEc2(options: { host?: string; port?: number; state: FakeEc2State }): Promise<FakeEc2> {
  const host = options.host ?? '127.0.0.1';
  const state = options.state;
  const holders = new Map<string, Holder & { associationId: string }>();
  const requestLog: FakeEc2Request[] = [];
  const associationLog: FakeAssociation[] = [];
  const arpings = new Set<Promise<void>>();
  let fault: ParsedFault = { kind: 'none' };
  // One association at a time, as the address can only be in one place.
  let queue: Promise<unknown> = Promise.resolve();

  const takeFault = (act: string): ParsedFault => {
    if (fault.kind === 'none' || fault.action !== act) return { kind: 'none' };
    const taken = { ...fault };
    if (fault.count !== undefined) {
      fault.count -= 1;
      if (fault.count <= 0) fault = { kind: 'none' };
    }
    return taken;
  };

  const ip = async (ns: string, args: string[], association: FakeAssociation): Promise<ExecResult> => {
    const full = ['-n', ns, ...args];
    const result = await run('ip', full, { reject: false, timeoutMs: 10_000 });
    association.commands.push({ args: full, exitCode: result.exitCode, stderr: result.stderr.trim() });
    return result;
  };

  /** Puts the address on its new holder (and off the old one); throws when the new holder cannot take it. */
  const move = async (publicIp: string, from: Holder | null, to: Holder, association: FakeAssociation): Promise<void> => {
    const cidr = `${publicIp}/24`;
    const fromDevice = from?.ns !== undefined && from.iface !== undefined ? { ns: from.ns, iface: from.iface } : undefined;
    const toDevice = to.ns !== undefined && to.iface !== undefined ? { ns: to.ns, iface: to.iface } : undefined;
    const sameDevice = fromDevice !== undefined && toDevice !== undefined && fromDevice.ns === toDevice.ns && fromDevice.iface === toDevice.iface;
    // "not there" (the old holder died, or never had it) is fine: the address is leaving anyway.
    if (fromDevice !== undefined && !sameDevice) await ip(fromDevice.ns, ['addr', 'del', cidr, 'dev', fromDevice.iface], association);
    if (toDevice === undefined) return;
    const added = await ip(toDevice.ns, ['addr', 'add', cidr, 'dev', toDevice.iface], association);
    // Already there (an association to the instance that holds it): "File exists" from older iproute2, "Address already assigned" from 6.x.
    if (added.exitCode !== 0 && !/File exists|Address already assigned/.test(added.stderr)) {
      throw new Error(`ip -n ${toDevice.ns} addr add ${cidr} dev ${toDevice.iface}: ${added.stderr.trim() || `exit ${added.exitCode}`}`);
    }
  };

  const announce = (association: FakeAssociation) => {
    const { ns, iface } = association.to;
    if (ns === undefined || iface === undefined) return;
    const done = execIn(ns, 'arping', ['-U', '-c', '2', '-w', '2', '-I', iface, association.publicIp], { reject: false, timeoutMs: 10_000 })
      .then((r) => ({ exitCode: r.exitCode, output: `${r.stdout}\n${r.stderr}`.trim().slice(0, 2000) }))
      .catch((err: unknown) => ({ exitCode: -1, output: (err as Error).message }))
      .then((r) => {
        association.arping = { ...r, finishedAt: Date.now() };
      });
    arpings.add(done);
    void done.finally(() => arpings.delete(done));
  };

  const associate = async (params: URLSearchParams, requestId: string, arrivedAt: number): Promise<{ answer: Answer; association?: FakeAssociation }> => {
    const allocationId = params.get('AllocationId');
    const eniId = params.get('NetworkInterfaceId');
    if (allocationId === null) return { answer: ec2ErrorAnswer(400, 'MissingParameter', 'The request must contain the parameter AllocationId', requestId) };
    if (eniId === null) {
      return { answer: ec2ErrorAnswer(400, 'MissingParameter', 'The request must contain the parameter NetworkInterfaceId (this fake does not associate by InstanceId)', requestId) };
    }
    const address = state.addresses.find((a) => a.allocationId === allocationId);
    if (address === undefined) return { answer: ec2ErrorAnswer(400, 'InvalidAllocationID.NotFound', `The allocation ID '${allocationId}' does not exist`, requestId) };
    const eni = state.interfaces.find((i) => i.networkInterfaceId === eniId);
    if (eni === undefined) return { answer: ec2ErrorAnswer(400, 'InvalidNetworkInterfaceID.NotFound', `The networkInterface ID '${eniId}' does not exist`, requestId) };
    const privateIp = params.get('PrivateIpAddress') ?? eni.privateIps[0]!;
    if (!eni.privateIps.includes(privateIp)) {
      return { answer: ec2ErrorAnswer(400, 'InvalidParameterValue', `The specified private IP address ${privateIp} is not assigned to network interface ${eniId}`, requestId) };
    }
    const current = holders.get(allocationId) ?? null;
    const to: Holder = {
      networkInterfaceId: eni.networkInterfaceId,
      instanceId: eni.instanceId,
      privateIp,
      ...(eni.ns === undefined ? {} : { ns: eni.ns }),
      ...(eni.iface === undefined ? {} : { iface: eni.iface }),
    };
    if (current !== null && !sameTarget(current, to) && params.get('AllowReassociation') !== 'true') {
      return { answer: ec2ErrorAnswer(400, 'Resource.AlreadyAssociated', `resource ${allocationId} is already associated with associate-id ${current.associationId}`, requestId) };
    }
    const associationId = `eipassoc-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const from = current === null ? null : (({ associationId: _, ...holder }) => holder)(current);
    const association: FakeAssociation = { allocationId, publicIp: address.publicIp, associationId, arrivedAt, movedAt: 0, from, to, commands: [] };
    try {
      await move(address.publicIp, from, to, association);
    } catch (err) {
      // The old holder may have lost the address already: it is associated nowhere now.
      if (from?.ns !== undefined) holders.delete(allocationId);
      return { answer: ec2ErrorAnswer(500, 'InternalError', `fake-ec2 could not move ${address.publicIp}: ${(err as Error).message}`, requestId) };
    }
    association.movedAt = Date.now();
    holders.set(allocationId, { ...to, associationId });
    associationLog.push(association);
    return { answer: okAnswer('AssociateAddress', text('associationId', associationId), requestId), association };
  };

  const describeAddresses = (params: URLSearchParams, requestId: string): Answer => {
    const ids = listParam(params, 'AllocationId');
    const publicIps = listParam(params, 'PublicIp');
    for (const id of ids) {
      if (!state.addresses.some((a) => a.allocationId === id)) return ec2ErrorAnswer(400, 'InvalidAllocationID.NotFound', `The allocation ID '${id}' does not exist`, requestId);
    }
    const chosen = state.addresses.filter((a) => (ids.length === 0 || ids.includes(a.allocationId)) && (publicIps.length === 0 || publicIps.includes(a.publicIp)));
    const items = chosen.map((a) => {
      const h = holders.get(a.allocationId);
      const association =
        h === undefined
          ? ''
          : text('associationId', h.associationId) +
            text('networkInterfaceId', h.networkInterfaceId) +
            text('networkInterfaceOwnerId', '123456789012') +
            text('privateIpAddress', h.privateIp) +
            text('instanceId', h.instanceId);
      return el('item', text('publicIp', a.publicIp) + text('allocationId', a.allocationId) + text('domain', 'vpc') + association + text('publicIpv4Pool', 'amazon'));
    });
    return okAnswer('DescribeAddresses', el('addressesSet', items.join('')), requestId);
  };

  const handleApi = async (params: URLSearchParams, res: ServerResponse) => {
    const arrivedAt = Date.now();
    const act = params.get('Action') ?? '';
    const entry: FakeEc2Request = { at: arrivedAt, action: act, params: Object.fromEntries(params) };
    requestLog.push(entry);
    const requestId = randomUUID();
    const reply = (answer: Answer) => {
      entry.status = answer.status;
      if (answer.code !== undefined) entry.code = answer.code;
      send(res, answer.status, 'text/xml;charset=UTF-8', answer.body, { 'x-amzn-requestid': requestId });
    };
    if (act === '') return reply(ec2ErrorAnswer(400, 'MissingAction', 'The request must contain the parameter Action', requestId));
    if (!(EC2_ACTIONS as readonly string[]).includes(act)) return reply(ec2ErrorAnswer(400, 'InvalidAction', `The action ${act} is not valid for this web service.`, requestId));
    const taken = takeFault(act);
    if (taken.kind === 'error') {
      entry.fault = 'error';
      return reply(ec2ErrorAnswer(taken.status, taken.code, taken.message ?? `fake-ec2: injected ${taken.code}`, requestId));
    }
    // A slow answer: the call takes effect now, whether or not the caller is still there when the answer goes out.
    const late = async (answer: Answer): Promise<boolean> => {
      if (taken.kind !== 'delay') return true;
      entry.fault = 'delay';
      await new Promise((resolve) => setTimeout(resolve, taken.ms));
      if (res.destroyed) entry.status = 0; // applied; the caller gave up before the answer
      return !res.destroyed;
    };
    if (act === 'DescribeAddresses') {
      const answer = describeAddresses(params, requestId);
      if (await late(answer)) reply(answer);
      return;
    }
    const work = queue.then(() => associate(params, requestId, arrivedAt));
    queue = work.catch(() => undefined);
    const { answer, association } = await work;
    if (association !== undefined && taken.kind === 'delay') announce(association);
    if (await late(answer)) reply(answer);
    if (association !== undefined) {
      association.answeredAt = Date.now();
      if (taken.kind !== 'delay') announce(association);
    }
  };

  /** Every arping started so far has finished (each is bounded by its own 10 s timeout). */
  const settled = async (): Promise<void> => {
    await Promise.all([...arpings]);
  };

  const handleControl = (req: IncomingMessage, url: URL, body: string, res: ServerResponse) => {
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /_fake/requests') return sendJson(res, 200, { count: requestLog.length, requests: requestLog });
    if (route === 'DELETE /_fake/requests') {
      requestLog.length = 0;
      return sendJson(res, 200, { count: 0 });
    }
    if (route === 'GET /_fake/associations') {
      const answer = () => sendJson(res, 200, { count: associationLog.length, associations: associationLog });
      if (url.searchParams.get('settled') === 'true') return void settled().then(answer);
      return answer();
    }
    if (route === 'GET /_fake/state') return sendJson(res, 200, { addresses: state.addresses, interfaces: state.interfaces, holders: holdersView() });
    if (route !== 'PUT /_fake/fault') return sendJson(res, 404, { error: `no control route ${route}` });
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (err) {
      return sendJson(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
    }
    const parsed = ec2FaultSchema.safeParse(json);
    if (!parsed.success) return sendJson(res, 400, { error: parsed.error.message });
    fault = parsed.data;
    return sendJson(res, 200, { ok: true, at: Date.now() });
  };

  const holdersView = (): Record<string, Holder | null> =>
    Object.fromEntries(
      state.addresses.map((a) => {
        const h = holders.get(a.allocationId);
        return [a.allocationId, h === undefined ? null : (({ associationId: _, ...holder }) => holder)(h)];
      }),
    );

  const server = createServer((req, res) => {
    onBody(req, MAX_BODY_BYTES, (body) => {
      const url = new URL(req.url ?? '/', 'http://fake');
      if (url.pathname.startsWith('/_fake/')) return handleControl(req, url, body, res);
      if (url.pathname !== '/') return send(res, 404, 'text/plain', 'not found\n');
      if (req.method === 'POST') return void handleApi(new URLSearchParams(body), res);
      if (req.method === 'GET') return void handleApi(url.searchParams, res);
      return send(res, 405, 'text/plain', `${req.method} is not supported\n`);
    });
  });
  const port = await listen(server, host, options.port ?? 0);

  return {
    url: `http://${host}:${port}`,
    port,
    setFault: (next) => {
      fault = ec2FaultSchema.parse(next);
    },
    requests: () => requestLog.map((entry) => ({ ...entry })),
    clearRequests: () => {
      requestLog.length = 0;
    },
    associations: () => associationLog.map((entry) => ({ ...entry })),
    holders: holdersView,
    settled,
    close: async () => {
      await closeServer(server);
      await Promise.all([...arpings]);
    },
  };
}

// ---- command line ---------------------------------------------------------

const USAGE = 'usage: fake-ec2 --listen HOST:PORT --state FILE.json';

async function main(argv: string[]): Promise<void> {
  let listenAt = '127.0.0.1:4567';
  let stateFile: string | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (flag === '--listen') listenAt = value;
    else if (flag === '--state') stateFile = value;
    else throw new UsageError(`unknown option ${flag}`);
  }
  const address = parseListen(listenAt);
  if (!address) throw new UsageError(`--listen expects IPV4:PORT, got ${listenAt}`);
  if (stateFile === undefined) throw new UsageError('--state is required');
  const state = parseFakeEc2State(JSON.parse(await readFile(stateFile, 'utf8')));
  if ('error' in state) throw new Error(`${stateFile}: ${state.error}`);
  const fake = await startFakeEc2({ ...address, state });
  process.stdout.write(`fake-ec2 listening on ${fake.url}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await runIfMain(import.meta.url, 'fake-ec2', USAGE, main);
