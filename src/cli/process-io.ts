// The real CliIo: this process's streams and environment, the host's kernel
// and AWS. The machine part (and with it the AWS SDK) is imported on first use.

import { networkInterfaces } from 'node:os';
import { createLogger } from '../log/logger.js';
import { isProcessAlive } from '../util/process-alive.js';
import type { CliIo } from './io.js';

const IMDS = 'http://169.254.169.254/latest';
const IMDS_TIMEOUT_MS = 1000;

export function processIo(): CliIo {
  const env = process.env;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
    env,
    machine: async () => (await import('./edges.js')).realMachine(),
    logger: (level, to) => (to === 'stdout' ? createLogger({ level }) : createLogger({ level, destination: { write: (line: string) => void process.stderr.write(line) } })),
    publicAddress: {
      imds: () => (env.AWS_EC2_METADATA_DISABLED === 'true' ? Promise.resolve({ reason: 'not asked: AWS_EC2_METADATA_DISABLED=true' }) : imdsPublicIpv4()),
      interfaceIpv4: (name) => networkInterfaces()[name]?.find((a) => a.family === 'IPv4')?.address,
    },
    interfaceAddresses: () =>
      Object.fromEntries(Object.entries(networkInterfaces()).map(([name, list]) => [name, (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)])),
    health: {},
    isAlive: isProcessAlive,
    signal: (pid, signal) => process.kill(pid, signal),
    now: () => Date.now(),
  };
}

async function imdsPublicIpv4(): Promise<{ address: string } | { reason: string }> {
  try {
    const token = await fetch(`${IMDS}/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(IMDS_TIMEOUT_MS),
    });
    if (!token.ok) return { reason: `token request answered HTTP ${token.status}` };
    const answer = await fetch(`${IMDS}/meta-data/public-ipv4`, {
      headers: { 'X-aws-ec2-metadata-token': await token.text() },
      signal: AbortSignal.timeout(IMDS_TIMEOUT_MS),
    });
    // 404: the instance has no public IPv4 (an Elastic IP is associated later, or clients come over a VPN).
    if (!answer.ok) return { reason: `public-ipv4 answered HTTP ${answer.status}` };
    const text = (await answer.text()).trim();
    return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) ? { address: text } : { reason: `public-ipv4 is not an IPv4 address: ${JSON.stringify(text.slice(0, 40))}` };
  } catch (err) {
    return { reason: `no answer (${err instanceof Error ? err.message : String(err)}): not on EC2, or IMDS is turned off` };
  }
}
