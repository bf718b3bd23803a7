/**
 * ARP for IPv4 over Ethernet (RFC 826): the 28-byte request/reply.
 *
 * Theory of operation: decode accepts only hardware type 1 (Ethernet), protocol 0x0800,
 * address lengths 6 and 4, and operations request (1) and reply (2); anything else is
 * a reason for the caller to count. Bytes after the 28 (Ethernet padding) are ignored.
 * MACs come back as views into the packet. Encode always writes exactly 28 bytes.
 *
 * Not handled: RARP, InARP, ARP over other link types; gratuitous ARP and probes are
 * ordinary requests here, the ARP table decides what they mean.
 */
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);
const u32 = (b: Buffer, i: number): number => u16(b, i) * 0x10000 + u16(b, i + 2);

const F = { htype: 0, ptype: 2, hlen: 4, plen: 5, op: 6, sha: 8, spa: 14, tha: 18, tpa: 24 } as const;

export const ArpOp = { request: 1, reply: 2 } as const;

export const arpPacketLength = 28;

const HTYPE_ETHERNET = 1;
const PTYPE_IPV4 = 0x0800;

export interface ArpPacket {
  /** ArpOp.request or ArpOp.reply */
  op: number;
  senderMac: Buffer;
  senderIp: number;
  /** all zeros in a request */
  targetMac: Buffer;
  targetIp: number;
}

const TRUNCATED = fail("arp-truncated");
const BAD_HTYPE = fail("arp-unsupported-hardware");
const BAD_PTYPE = fail("arp-unsupported-protocol");
const BAD_LENGTHS = fail("arp-bad-address-length");
const BAD_OP = fail("arp-unsupported-op");

export function decodeArp(b: Buffer): Result<ArpPacket> {
  if (b.length < arpPacketLength) return TRUNCATED;
  if (u16(b, F.htype) !== HTYPE_ETHERNET) return BAD_HTYPE;
  if (u16(b, F.ptype) !== PTYPE_IPV4) return BAD_PTYPE;
  if (b[F.hlen] !== 6 || b[F.plen] !== 4) return BAD_LENGTHS;
  const op = u16(b, F.op);
  if (op !== ArpOp.request && op !== ArpOp.reply) return BAD_OP;
  return ok({
    op,
    senderMac: b.subarray(F.sha, F.sha + 6),
    senderIp: u32(b, F.spa),
    targetMac: b.subarray(F.tha, F.tha + 6),
    targetIp: u32(b, F.tpa),
  });
}

/** Writes the 28-byte packet at out[at..]; returns 28. Throws RangeError if `out` is too small. */
export function encodeArp(p: ArpPacket, out: Buffer, at = 0): number {
  if (at < 0 || out.length - at < arpPacketLength) throw new RangeError("encodeArp: output buffer too small");
  out.writeUInt16BE(HTYPE_ETHERNET, at + F.htype);
  out.writeUInt16BE(PTYPE_IPV4, at + F.ptype);
  out[at + F.hlen] = 6;
  out[at + F.plen] = 4;
  out.writeUInt16BE(p.op, at + F.op);
  p.senderMac.copy(out, at + F.sha, 0, 6);
  out.writeUInt32BE(p.senderIp >>> 0, at + F.spa);
  p.targetMac.copy(out, at + F.tha, 0, 6);
  out.writeUInt32BE(p.targetIp >>> 0, at + F.tpa);
  return arpPacketLength;
}
