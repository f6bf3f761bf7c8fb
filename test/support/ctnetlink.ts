// ctnetlink event messages as the kernel builds them (nf_conntrack_netlink.c,
// ctnetlink_conntrack_event), from a FlowEvent: for tests of the Python
// reader's decoder, without a kernel. Attribute order follows the kernel's;
// `rotate` reorders the top-level attributes, which a decoder must not mind.

import type { FlowEvent } from '../../src/core/audit/reader-lines.js';
import { TCP_STATES } from '../../src/core/audit/reader-lines.js';

const align = (n: number) => (n + 3) & ~3;

function attr(type: number, payload: Buffer, nested = false): Buffer {
  const out = Buffer.alloc(align(4 + payload.length));
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type | (nested ? 0x8000 : 0), 2);
  payload.copy(out, 4);
  return out;
}
const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const be64 = (n: bigint | number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const ipv4 = (text: string) => Buffer.from(text.split('.').map(Number));

function tuple(type: number, t: FlowEvent['orig'], protocol: number): Buffer {
  const ip = attr(1, Buffer.concat([attr(1, ipv4(t.src)), attr(2, ipv4(t.dst))]), true);
  const proto = attr(2, Buffer.concat([attr(1, Buffer.from([protocol])), attr(2, be16(t.sport)), attr(3, be16(t.dport))]), true);
  return attr(type, Buffer.concat([ip, proto]), true);
}

export interface MessageOptions {
  /** Address family in nfgenmsg (2 = AF_INET). */
  family?: number;
  /** The top-level attributes rotated by this many places (a decoder must not rely on their order). */
  rotate?: number;
  /** An attribute type the decoder does not know, added at the end. */
  unknownAttribute?: boolean;
}

/** One netlink message (nlmsghdr + nfgenmsg + attributes) for the event. */
export function ctnetlinkMessage(e: FlowEvent, options: MessageOptions = {}): Buffer {
  const top: Buffer[] = [tuple(1, e.orig, e.protocol), tuple(2, e.reply, e.protocol), attr(3, be32(0x18e))];
  if (e.tcpState !== undefined) top.push(attr(4, attr(1, attr(1, Buffer.from([TCP_STATES.indexOf(e.tcpState)])), true), true));
  if (e.counters) {
    top.push(attr(9, Buffer.concat([attr(1, be64(e.counters.origPackets)), attr(2, be64(e.counters.origBytes))]), true));
    top.push(attr(10, Buffer.concat([attr(1, be64(e.counters.replyPackets)), attr(2, be64(e.counters.replyBytes))]), true));
  }
  if (e.mark !== 0) top.push(attr(8, be32(e.mark)));
  if (e.id !== undefined) top.push(attr(12, be32(e.id)));
  const ns = (ms: number) => be64(BigInt(ms) * 1_000_000n);
  if (e.startMs !== undefined || e.stopMs !== undefined) {
    top.push(attr(20, Buffer.concat([...(e.startMs === undefined ? [] : [attr(1, ns(e.startMs))]), ...(e.stopMs === undefined ? [] : [attr(2, ns(e.stopMs))])]), true));
  }
  if (options.unknownAttribute) top.push(attr(26, be32(7)));
  const k = (options.rotate ?? 0) % top.length;
  const attrs = Buffer.concat([...top.slice(k), ...top.slice(0, k)]);
  const header = Buffer.alloc(20);
  header.writeUInt32LE(20 + attrs.length, 0);
  header.writeUInt16LE(e.kind === 'end' ? 0x102 : 0x100, 4);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(0, 8);
  header.writeUInt32LE(e.portid, 12);
  header[16] = options.family ?? 2;
  header[17] = 0;
  return Buffer.concat([header, attrs]);
}
