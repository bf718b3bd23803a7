/**
 * UDP datagrams (RFC 768) over IPv4.
 *
 * Theory of operation: decode takes the IP payload and the IP addresses (for the
 * pseudo-header), checks that the length field lies between 8 and the bytes present,
 * trims the payload to it, and verifies the checksum per policy — a received checksum
 * of 0 means the sender computed none and is accepted. Encode writes the header and
 * payload and fills the checksum over pseudo-header, header and data; a computed 0 is
 * sent as 0xffff (the same value in ones'-complement) because 0 would mean "none".
 *
 * Not handled: UDP-Lite, jumbograms, fragments (decode the reassembled datagram).
 */
import {
  type ChecksumPolicy,
  checksumFull,
  onesSum,
  type PseudoHeader,
  pseudoHeaderSum,
} from "./checksum.js";
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);

const F = { srcPort: 0, dstPort: 2, length: 4, checksum: 6, data: 8 } as const;

const PROTO_UDP = 17;

export const udpHeaderLength = 8;
/** The most payload the 16-bit length field allows. */
export const udpMaxPayload = 65535 - udpHeaderLength;

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
  /** the checksum as received (0: none); on encode used only when the policy does not fill */
  checksum?: number | undefined;
}

const TRUNCATED = fail("udp-truncated");
const BAD_LENGTH = fail("udp-bad-length");
const BAD_CHECKSUM = fail("udp-bad-checksum");

export function decodeUdp(
  b: Buffer,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): Result<UdpDatagram> {
  if (b.length < udpHeaderLength) return TRUNCATED;
  const length = u16(b, F.length);
  if (length < udpHeaderLength || length > b.length) return BAD_LENGTH;
  const checksum = u16(b, F.checksum);
  if (
    policy.verifyRx &&
    checksum !== 0 &&
    onesSum(b, 0, length, pseudoHeaderSum(ip.src, ip.dst, PROTO_UDP, length)) !== 0xffff
  ) {
    return BAD_CHECKSUM;
  }
  return ok({
    srcPort: u16(b, F.srcPort),
    dstPort: u16(b, F.dstPort),
    payload: b.subarray(F.data, length),
    checksum,
  });
}

/** Total bytes `encodeUdp` writes. */
export function udpEncodingLength(d: UdpDatagram): number {
  return udpHeaderLength + d.payload.length;
}

/**
 * Writes the datagram at out[at..] with the checksum for addresses `ip`; returns bytes
 * written. Throws RangeError for a payload over 65527 bytes or a too small `out`.
 */
export function encodeUdp(
  d: UdpDatagram,
  out: Buffer,
  at: number,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): number {
  const total = udpHeaderLength + d.payload.length;
  if (d.payload.length > udpMaxPayload)
    throw new RangeError(`encodeUdp: payload of ${d.payload.length} bytes`);
  if (at < 0 || out.length - at < total) throw new RangeError("encodeUdp: output buffer too small");
  out.writeUInt16BE(d.srcPort, at + F.srcPort);
  out.writeUInt16BE(d.dstPort, at + F.dstPort);
  out.writeUInt16BE(total, at + F.length);
  const p = d.payload;
  if (p.buffer !== out.buffer || p.byteOffset !== out.byteOffset + at + F.data) p.copy(out, at + F.data);
  if (policy.fillTx) {
    out[at + F.checksum] = 0;
    out[at + F.checksum + 1] = 0;
    const c = ~onesSum(out, at, at + total, pseudoHeaderSum(ip.src, ip.dst, PROTO_UDP, total)) & 0xffff;
    out.writeUInt16BE(c === 0 ? 0xffff : c, at + F.checksum);
  } else {
    out.writeUInt16BE(d.checksum ?? 0, at + F.checksum);
  }
  return total;
}
