/**
 * IPv4 headers (RFC 791).
 *
 * Theory of operation: decode validates once — version 4, IHL 5..15, the header within
 * the buffer, total length between the header length and the buffer length, and (when
 * the policy says) the header checksum — then returns a record whose `options` and
 * `payload` are views. The payload ends at the total length, which drops Ethernet
 * padding. Fragment offsets are in bytes (the wire field times 8). Encode writes the
 * header (options padded with zeros to a 4-byte multiple), fills the checksum, and
 * copies the payload after it unless it already sits there.
 *
 * `decodeIpv4Quote` reads the truncated original datagram quoted inside an ICMP error:
 * same header checks, but the total length may exceed what is there and the checksum
 * is not verified.
 *
 * Not handled here: reassembly (src/stack does it), option semantics (options are kept
 * raw; source routing and the like are the caller's to refuse), the reserved flag bit
 * (ignored on decode, written as 0), address semantics (broadcast, martians).
 */
import { type ChecksumPolicy, checksumFull, onesSum } from "./checksum.js";
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);
const u32 = (b: Buffer, i: number): number => u16(b, i) * 0x10000 + u16(b, i + 2);

const F = {
  verIhl: 0,
  tos: 1,
  totalLength: 2,
  id: 4,
  flagsFragment: 6,
  ttl: 8,
  protocol: 9,
  checksum: 10,
  src: 12,
  dst: 16,
  options: 20,
} as const;

export const IpProto = { icmp: 1, tcp: 6, udp: 17 } as const;

/** Bytes of a header without options. */
export const ipv4HeaderLength = 20;
/** At most 40 bytes of options (IHL 15). */
export const ipv4MaxOptionsLength = 40;
/** The largest datagram the 16-bit total length allows. */
export const ipv4MaxLength = 65535;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const OFFSET_MASK = 0x1fff;

export interface Ipv4Packet {
  /** the whole TOS byte: DSCP (upper 6 bits) and ECN (lower 2) */
  tos: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** in bytes, a multiple of 8 */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  /** raw option bytes (a view; empty when IHL is 5) */
  options: Buffer;
  payload: Buffer;
  /** the header checksum as received; on encode used only when the policy does not fill */
  checksum?: number | undefined;
}

const NO_OPTIONS = Buffer.alloc(0);

const TRUNCATED = fail("ipv4-truncated");
const BAD_VERSION = fail("ipv4-bad-version");
const BAD_IHL = fail("ipv4-bad-header-length");
const BAD_TOTAL = fail("ipv4-bad-total-length");
const BAD_CHECKSUM = fail("ipv4-bad-checksum");

function decodeHeader(b: Buffer, quote: boolean, verify: boolean): Result<Ipv4Packet> {
  if (b.length < ipv4HeaderLength) return TRUNCATED;
  const verIhl = b[F.verIhl] as number;
  if (verIhl >>> 4 !== 4) return BAD_VERSION;
  const hl = (verIhl & 0x0f) * 4;
  if (hl < ipv4HeaderLength) return BAD_IHL;
  if (hl > b.length) return TRUNCATED;
  const total = u16(b, F.totalLength);
  if (total < hl) return BAD_TOTAL;
  if (total > b.length && !quote) return TRUNCATED;
  if (verify && onesSum(b, 0, hl) !== 0xffff) return BAD_CHECKSUM;
  const ff = u16(b, F.flagsFragment);
  return ok({
    tos: b[F.tos] as number,
    id: u16(b, F.id),
    dontFragment: (ff & FLAG_DF) !== 0,
    moreFragments: (ff & FLAG_MF) !== 0,
    fragmentOffset: (ff & OFFSET_MASK) * 8,
    ttl: b[F.ttl] as number,
    protocol: b[F.protocol] as number,
    src: u32(b, F.src),
    dst: u32(b, F.dst),
    options: hl === ipv4HeaderLength ? NO_OPTIONS : b.subarray(F.options, hl),
    payload: b.subarray(hl, Math.min(total, b.length)),
    checksum: u16(b, F.checksum),
  });
}

/** Decodes a datagram; the payload is trimmed to the total length. */
export function decodeIpv4(b: Buffer, policy: ChecksumPolicy = checksumFull): Result<Ipv4Packet> {
  return decodeHeader(b, false, policy.verifyRx);
}

/**
 * Decodes the (usually truncated) original datagram quoted in an ICMP error: the
 * payload is whatever of it is present, the checksum is not checked.
 */
export function decodeIpv4Quote(b: Buffer): Result<Ipv4Packet> {
  return decodeHeader(b, true, false);
}

/** True for any fragment of a fragmented datagram (first, middle or last). */
export function isFragment(p: Pick<Ipv4Packet, "moreFragments" | "fragmentOffset">): boolean {
  return p.moreFragments || p.fragmentOffset !== 0;
}

/** Header bytes `encodeIpv4` writes: 20 plus the options padded to 4 bytes. */
export function ipv4HeaderLengthOf(p: Pick<Ipv4Packet, "options">): number {
  return ipv4HeaderLength + ((p.options.length + 3) & ~3);
}

/** Total bytes `encodeIpv4` writes. */
export function ipv4EncodingLength(p: Ipv4Packet): number {
  return ipv4HeaderLengthOf(p) + p.payload.length;
}

/**
 * Writes header and payload at out[at..]; returns bytes written (the total length).
 * Throws RangeError for what no valid header can hold (options over 40 bytes, a total
 * over 65535, an offset not a multiple of 8) and when `out` is too small.
 */
export function encodeIpv4(
  p: Ipv4Packet,
  out: Buffer,
  at = 0,
  policy: ChecksumPolicy = checksumFull,
): number {
  if (p.options.length > ipv4MaxOptionsLength) throw new RangeError("encodeIpv4: options over 40 bytes");
  if (p.fragmentOffset % 8 !== 0 || p.fragmentOffset < 0 || p.fragmentOffset > OFFSET_MASK * 8) {
    throw new RangeError(`encodeIpv4: bad fragment offset ${p.fragmentOffset}`);
  }
  const hl = ipv4HeaderLengthOf(p);
  const total = hl + p.payload.length;
  if (total > ipv4MaxLength) throw new RangeError(`encodeIpv4: datagram of ${total} bytes`);
  if (at < 0 || out.length - at < total) throw new RangeError("encodeIpv4: output buffer too small");
  out[at + F.verIhl] = 0x40 | (hl >>> 2);
  out[at + F.tos] = p.tos;
  out.writeUInt16BE(total, at + F.totalLength);
  out.writeUInt16BE(p.id, at + F.id);
  out.writeUInt16BE(
    (p.dontFragment ? FLAG_DF : 0) | (p.moreFragments ? FLAG_MF : 0) | (p.fragmentOffset >>> 3),
    at + F.flagsFragment,
  );
  out[at + F.ttl] = p.ttl;
  out[at + F.protocol] = p.protocol;
  out.writeUInt32BE(p.src >>> 0, at + F.src);
  out.writeUInt32BE(p.dst >>> 0, at + F.dst);
  if (p.options.length > 0) {
    p.options.copy(out, at + F.options);
    out.fill(0, at + F.options + p.options.length, at + hl);
  }
  const pl = p.payload;
  if (pl.buffer !== out.buffer || pl.byteOffset !== out.byteOffset + at + hl) pl.copy(out, at + hl);
  if (policy.fillTx) {
    out[at + F.checksum] = 0;
    out[at + F.checksum + 1] = 0;
    out.writeUInt16BE(~onesSum(out, at, at + hl) & 0xffff, at + F.checksum);
  } else {
    out.writeUInt16BE(p.checksum ?? 0, at + F.checksum);
  }
  return total;
}

/**
 * What an ICMP error quotes of a datagram (RFC 792): its IPv4 header, rebuilt (TTL, id
 * and checksum are not the original's; receivers match on addresses, protocol and
 * ports), then `head`, the first 8 bytes of its payload. The total length field says
 * what was sent (`payloadLength` bytes of payload), not the quote's length.
 */
export function encodeIpv4Quote(
  src: number,
  dst: number,
  protocol: number,
  head: Buffer,
  payloadLength: number,
): Buffer {
  const q = Buffer.alloc(ipv4HeaderLength + head.length);
  encodeIpv4(
    {
      tos: 0,
      id: 0,
      dontFragment: false,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 64,
      protocol,
      src,
      dst,
      options: Buffer.alloc(0),
      payload: head,
    },
    q,
  );
  q.writeUInt16BE(Math.min(0xffff, ipv4HeaderLength + payloadLength), 2);
  return q;
}
