/**
 * The VXLAN header (RFC 7348 section 5): 8 bytes before the inner Ethernet frame (no
 * FCS) in a UDP datagram.
 *
 *    0                   1                   2                   3
 *   |R|R|R|R|I|R|R|R|            Reserved                           |
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *
 * Decoding is as strict as Linux's vxlan driver (vxlan_rcv): the I flag must be set
 * and every reserved bit zero, else the datagram is dropped (Linux counts and drops
 * such frames; accepting what Linux refuses would make a usernet VTEP see a LAN that
 * its Linux peers do not). Nothing here throws on datagram bytes.
 */

export const vxlanHeaderLength = 8;
/** the VXLAN's own encapsulation over IPv4: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
export const vxlanOverheadIpv4 = 50;
/** IANA's port; Linux's default without dstport= is 8472 */
export const vxlanIanaPort = 4789;
export const maxVni = 0xffffff;
const flagI = 0x08;

export type VxlanDropReason = "vxlan-too-short" | "vxlan-no-vni-flag" | "vxlan-reserved-bits";

export type VxlanDecoded = { ok: true; vni: number; frame: Buffer } | { ok: false; reason: VxlanDropReason };

/** One datagram: the VNI and a view of the inner frame (no copy). */
export function decodeVxlan(d: Buffer): VxlanDecoded {
  if (d.length < vxlanHeaderLength) return { ok: false, reason: "vxlan-too-short" };
  const flags = d[0] as number;
  if ((flags & flagI) === 0) return { ok: false, reason: "vxlan-no-vni-flag" };
  if (flags !== flagI || d[1] !== 0 || d[2] !== 0 || d[3] !== 0 || d[7] !== 0) {
    return { ok: false, reason: "vxlan-reserved-bits" };
  }
  const vni = ((d[4] as number) << 16) | ((d[5] as number) << 8) | (d[6] as number);
  return { ok: true, vni, frame: d.subarray(vxlanHeaderLength) };
}

/** Writes the header for `vni` (0..2^24-1) at `at`; returns the bytes written (8). */
export function encodeVxlanHeader(vni: number, out: Buffer, at = 0): number {
  out[at] = flagI;
  out[at + 1] = 0;
  out[at + 2] = 0;
  out[at + 3] = 0;
  out[at + 4] = (vni >>> 16) & 0xff;
  out[at + 5] = (vni >>> 8) & 0xff;
  out[at + 6] = vni & 0xff;
  out[at + 7] = 0;
  return vxlanHeaderLength;
}

/** A whole datagram: header then frame (tests and one-off senders; the port sends the two as a list). */
export function encodeVxlan(vni: number, frame: Buffer): Buffer {
  const d = Buffer.allocUnsafe(vxlanHeaderLength + frame.length);
  encodeVxlanHeader(vni, d, 0);
  frame.copy(d, vxlanHeaderLength);
  return d;
}
