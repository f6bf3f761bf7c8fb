// A one-socket DNS server for a lab namespace, on 127.0.0.1:53 (where the
// lab's resolv.conf points): 'nxdomain' answers every query "no such name",
// as a VPC resolver does for a deleted record; 'drop' never answers, as a
// resolver that is down. Without it, a name the lab's hosts file lacks fails
// with EAI_AGAIN (nothing listens), which the daemon treats as silence.

import type { Lab } from './lab.js';
import type { LabProcess } from './process.js';

const SCRIPT = `
const mode = process.argv[1];
const socket = require('node:dgram').createSocket('udp4');
socket.on('message', (query, peer) => {
  if (mode === 'drop' || query.length < 12) return;
  const reply = Buffer.from(query);
  reply[2] = 0x80 | (query[2] & 0x01); // QR, RD copied
  reply[3] = 0x80 | 3;                 // RA, RCODE 3 = NXDOMAIN
  reply.writeUInt16BE(0, 6); reply.writeUInt16BE(0, 8); reply.writeUInt16BE(0, 10);
  socket.send(reply, peer.port, peer.address);
});
socket.bind(53, '127.0.0.1', () => console.log('dns stub ' + mode + ' listening'));
`;

/** Starts the stub in namespace `ns` and resolves once it listens. Stop it when done. */
export async function startDnsStub(lab: Lab, ns: string, mode: 'nxdomain' | 'drop'): Promise<LabProcess> {
  const stub = lab.spawnIn(ns, process.execPath, ['-e', SCRIPT, mode], { label: `dns stub ${mode}`, env: { NODE_OPTIONS: '' } });
  await stub.waitForLine(/listening/, 10_000);
  return stub;
}
