// A DNS server for the benchmark's NAT namespace, standing in for the VPC's
// Route 53 Resolver: A records from a JSON file of name → address, answered
// over UDP on 127.0.0.1:53 (where the lab's resolv.conf points). With it, a
// lookup costs the daemon what it costs on EC2 (a small /etc/hosts read and
// one UDP exchange) instead of a scan of a hosts file as long as the fleet.
//
//   node dist/bench/fake-dns.js --names FILE [--ttl SECONDS] [--port 53]
//
// Prints "listening" once bound. A name it does not know gets NXDOMAIN; any
// other query type than A gets an empty answer (NOERROR).

import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const TYPE_A = 1;
const CLASS_IN = 1;

interface Question {
  name: string;
  type: number;
  /** Offset just past the question (its end in the query). */
  end: number;
}

/** The first question of a query, or undefined when the packet is not one we can read. */
export function readQuestion(packet: Buffer): Question | undefined {
  if (packet.length < 12 || packet.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const length = packet[at];
    if (length === undefined || length > 63) return undefined;
    at++;
    if (length === 0) break;
    labels.push(packet.toString('latin1', at, at + length));
    at += length;
  }
  if (at + 4 > packet.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: packet.readUInt16BE(at), end: at + 4 };
}

/** The answer to `query`: the question echoed, and an A record when the name is known. */
export function answer(query: Buffer, names: ReadonlyMap<string, string>, ttl: number): Buffer | undefined {
  const q = readQuestion(query);
  if (q === undefined) return undefined;
  const address = names.get(q.name);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  const rd = query[2]! & 0x01;
  header[2] = 0x84 | rd; // response, authoritative, recursion desired as asked
  header[3] = 0x80 | (address === undefined ? 3 : 0); // recursion available; NXDOMAIN when unknown
  header.writeUInt16BE(1, 4);
  const withRecord = address !== undefined && q.type === TYPE_A;
  header.writeUInt16BE(withRecord ? 1 : 0, 6);
  const question = query.subarray(12, q.end);
  if (!withRecord) return Buffer.concat([header, question]);
  const record = Buffer.alloc(16);
  record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  record.writeUInt16BE(TYPE_A, 2);
  record.writeUInt16BE(CLASS_IN, 4);
  record.writeUInt32BE(ttl, 6);
  record.writeUInt16BE(4, 10);
  address.split('.').forEach((octet, i) => (record[12 + i] = Number(octet)));
  return Buffer.concat([header, question, record]);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { names: { type: 'string' }, ttl: { type: 'string', default: '60' }, port: { type: 'string', default: '53' } } });
  if (values.names === undefined) {
    process.stderr.write('usage: fake-dns --names FILE [--ttl SECONDS] [--port 53]\n');
    process.exit(2);
  }
  const file = values.names;
  const ttl = Number(values.ttl);
  const load = () => new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>).map(([n, ip]) => [n.toLowerCase(), ip]));
  let names = load();
  // SIGHUP: read the names again (a benchmark changing an answer).
  process.on('SIGHUP', () => (names = load()));
  const socket = createSocket('udp4');
  socket.on('message', (query, from) => {
    const reply = answer(query, names, ttl);
    if (reply) socket.send(reply, from.port, from.address);
  });
  socket.bind(Number(values.port), '127.0.0.1', () => process.stdout.write('listening\n'));
}
