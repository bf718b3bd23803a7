/**
 * Ethernet II frames, optionally with one 802.1Q VLAN tag.
 *
 * Theory of operation: decode checks the 14-byte minimum (18 with a tag) and returns
 * the addresses and payload as views into the frame. The payload keeps any trailing
 * padding up to the 60-byte minimum frame: Ethernet has no length field, so the layer
 * above trims it (IPv4 by its total length, ARP by its fixed size). Encode writes the
 * header and copies the payload after it unless the payload already sits there (a
 * caller that built the frame back to front in one buffer pays no copy).
 *
 * Not handled: 802.3 length-field frames (type < 0x0600, e.g. LLC/STP) are rejected;
 * only one tag is parsed (a second 0x8100 stays as the ethertype for the caller to
 * count); no FCS (transports hand frames over without it); no minimum-size padding on
 * encode (TAPs and QEMU pad themselves).
 */
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);

const F = { dst: 0, src: 6, type: 12, tci: 14, innerType: 16 } as const;

export const EtherType = {
  ipv4: 0x0800,
  arp: 0x0806,
  vlan: 0x8100,
  ipv6: 0x86dd,
} as const;

/** Bytes of an untagged header. */
export const ethernetHeaderLength = 14;
/** Extra bytes an 802.1Q tag adds. */
export const vlanTagLength = 4;
/** The smallest ethertype; smaller values are 802.3 lengths. */
const MIN_ETHERTYPE = 0x0600;

export interface VlanTag {
  /** priority code point 0..7 */
  pcp: number;
  /** drop eligible indicator */
  dei: boolean;
  /** VLAN id 0..4095 */
  vid: number;
}

export interface EthernetFrame {
  dst: Buffer;
  src: Buffer;
  /** present when the frame carries an 802.1Q tag */
  vlan?: VlanTag | undefined;
  /** the (inner, when tagged) ethertype */
  ethertype: number;
  /** view of the rest of the frame, padding included */
  payload: Buffer;
}

const TRUNCATED = fail("ethernet-truncated");
const LENGTH_FIELD = fail("ethernet-8023-length-field");

export function decodeEthernet(b: Buffer): Result<EthernetFrame> {
  if (b.length < ethernetHeaderLength) return TRUNCATED;
  let ethertype = u16(b, F.type);
  let vlan: VlanTag | undefined;
  let start = ethernetHeaderLength;
  if (ethertype === EtherType.vlan) {
    if (b.length < ethernetHeaderLength + vlanTagLength) return TRUNCATED;
    const tci = u16(b, F.tci);
    vlan = { pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, vid: tci & 0x0fff };
    ethertype = u16(b, F.innerType);
    start += vlanTagLength;
  }
  if (ethertype < MIN_ETHERTYPE) return LENGTH_FIELD;
  return ok({
    dst: b.subarray(F.dst, F.dst + 6),
    src: b.subarray(F.src, F.src + 6),
    vlan,
    ethertype,
    payload: b.subarray(start),
  });
}

/** Header bytes for this frame: 14, or 18 with a VLAN tag. */
export function ethernetHeaderLengthOf(f: Pick<EthernetFrame, "vlan">): number {
  return f.vlan ? ethernetHeaderLength + vlanTagLength : ethernetHeaderLength;
}

/** Total bytes `encodeEthernet` writes. */
export function ethernetEncodingLength(f: EthernetFrame): number {
  return ethernetHeaderLengthOf(f) + f.payload.length;
}

/**
 * Writes header and payload at out[at..]; returns bytes written. Throws RangeError if
 * `out` is too small (a caller's sizing bug, never guest input).
 */
export function encodeEthernet(f: EthernetFrame, out: Buffer, at = 0): number {
  const hl = ethernetHeaderLengthOf(f);
  const total = hl + f.payload.length;
  if (at < 0 || out.length - at < total) throw new RangeError("encodeEthernet: output buffer too small");
  f.dst.copy(out, at + F.dst, 0, 6);
  f.src.copy(out, at + F.src, 0, 6);
  if (f.vlan) {
    out.writeUInt16BE(EtherType.vlan, at + F.type);
    const v = f.vlan;
    out.writeUInt16BE(((v.pcp & 7) << 13) | (v.dei ? 0x1000 : 0) | (v.vid & 0x0fff), at + F.tci);
    out.writeUInt16BE(f.ethertype, at + F.innerType);
  } else {
    out.writeUInt16BE(f.ethertype, at + F.type);
  }
  const p = f.payload;
  if (p.buffer !== out.buffer || p.byteOffset !== out.byteOffset + at + hl) p.copy(out, at + hl);
  return total;
}
