// TLS in the lab: a throwaway test CA made with openssl, a server certificate
// for a cache's DNS name (as ElastiCache's certificates name the endpoint,
// not an address), and a redis-server that speaks only TLS with it. Started
// through the lab, so lab.down() stops the server and removes the files.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import type { LabProcess } from './process.js';
import { run } from './netns.js';

export interface TestCa {
  dir: string;
  caFile: string;
}

const openssl = (args: readonly string[]) => run('openssl', args);

/** A CA whose certificate clients are given as their only trust anchor. */
export async function makeTestCa(dir: string): Promise<TestCa> {
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, 'ca.pem');
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=cachenat lab CA', '-keyout', join(dir, 'ca.key'), '-out', caFile]);
  return { dir, caFile };
}

/**
 * A key and certificate for `name` (subjectAltName DNS:name), and for
 * `alsoNames` when given, signed by the CA.
 */
export async function issueCertificate(ca: TestCa, name: string, alsoNames: readonly string[] = []): Promise<{ certFile: string; keyFile: string }> {
  const base = join(ca.dir, name);
  const [keyFile, csrFile, certFile, extFile] = [`${base}.key`, `${base}.csr`, `${base}.pem`, `${base}.ext`];
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', csrFile]);
  writeFileSync(extFile, `subjectAltName=${[name, ...alsoNames].map((n) => `DNS:${n}`).join(',')}\n`);
  await openssl(['x509', '-req', '-in', csrFile, '-CA', ca.caFile, '-CAkey', join(ca.dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', extFile, '-out', certFile]);
  return { certFile, keyFile };
}

export interface TlsRedisOptions {
  /** Add `ip` to the redis namespace first (default true); false when another server already holds it. */
  addAddress?: boolean;
  /** More redis-server arguments (e.g. `--replicaof IP PORT`). */
  args?: readonly string[];
  label?: string;
}

/** A redis-server on a new address of the redis namespace that accepts TLS only, on `port`. */
export async function startTlsRedis(lab: Lab, ip: string, port: number, cert: { certFile: string; keyFile: string }, ca: TestCa, options: TlsRedisOptions = {}): Promise<LabProcess> {
  if (options.addAddress !== false) await lab.exec(lab.ns.redis, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  const server = lab.spawnIn(
    lab.ns.redis,
    'redis-server',
    ['--bind', ip, ...tlsServerArgs(port, cert, ca), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...(options.args ?? [])],
    { label: options.label ?? `tls redis ${ip}:${port}` },
  );
  await server.waitForLine(/Ready to accept connections/, 10_000);
  return server;
}

/** redis-server arguments for TLS only on `port`, as ElastiCache with in-transit encryption: no client certificates asked for. */
export const tlsServerArgs = (port: number, cert: { certFile: string; keyFile: string }, ca: TestCa): string[] => [
  '--port', '0',
  '--tls-port', String(port),
  '--tls-cert-file', cert.certFile,
  '--tls-key-file', cert.keyFile,
  '--tls-ca-cert-file', ca.caFile,
  '--tls-auth-clients', 'no',
];

/**
 * A stand-in for an ElastiCache Serverless cache: one name, one address, TLS
 * on 6379 (the endpoint: a primary) and 6380 (the reader endpoint: a replica
 * of it), one certificate for that name. ROLE tells the two apart.
 */
export async function startServerlessLike(lab: Lab, ip: string, name: string, ca: TestCa): Promise<{ primary: LabProcess; reader: LabProcess }> {
  const cert = await issueCertificate(ca, name);
  // Each its own directory: a replica's full sync writes an RDB file there.
  const dir = (port: number) => {
    const path = join(lab.tmpDir, `serverless-${ip}-${port}`);
    mkdirSync(path, { recursive: true });
    return ['--dir', path];
  };
  const primary = await startTlsRedis(lab, ip, 6379, cert, ca, { args: dir(6379), label: `serverless ${name}:6379` });
  const reader = await startTlsRedis(lab, ip, 6380, cert, ca, {
    addAddress: false,
    args: [...dir(6380), '--replicaof', ip, '6379', '--tls-replication', 'yes'],
    label: `serverless ${name}:6380 (reader)`,
  });
  return { primary, reader };
}
