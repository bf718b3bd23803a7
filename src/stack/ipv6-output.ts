/**
 * Builds outgoing Ethernet+IPv6 frames for the stack, fragmenting to the link MTU.
 *
 * The caller gives the finished upper-layer payload (an ICMPv6 message, a UDP datagram
 * with its header, a TCP segment); this module adds the IPv6 header (hop limit 64, or
 * 255 for NDP) and the Ethernet header. A packet larger than the MTU is cut into
 * fragments (RFC 8200 §4.5: a fragment header with a fresh 32-bit id, data lengths
 * multiples of 8), as a router may not but the source of a packet may: the stack is
 * the source of what it sends a guest on the NAT's behalf (a large UDP datagram from
 * the host). TCP is sized to the MSS (MTU - 60) and never fragmented.
 */

import type { ChecksumPolicy } from "./wire/checksum.js";
import { pseudoHeader6 } from "./wire/checksum.js";
import { EtherType, ethernetHeaderLength } from "./wire/ethernet.js";
import {
  encodeIpv6,
  Ipv6Next,
  ipv6FragmentHeaderLength,
  ipv6HeaderLength,
  ipv6MaxPayload,
} from "./wire/ipv6.js";
import type { Ipv6Address } from "./wire/ipv6-addr.js";
import { encodeTcp, type TcpSegment, tcpEncodingLength } from "./wire/tcp.js";

export interface Ipv6Out {
  srcMac: Buffer;
  dstMac: Buffer;
  src: Ipv6Address;
  dst: Ipv6Address;
  protocol: number;
  payload: Buffer;
  hopLimit?: number;
}

const L4_AT = ethernetHeaderLength + ipv6HeaderLength;

function writeEthernet(out: Buffer, dstMac: Buffer, srcMac: Buffer): void {
  out.set(dstMac.subarray(0, 6), 0);
  out.set(srcMac.subarray(0, 6), 6);
  out[12] = EtherType.ipv6 >>> 8;
  out[13] = EtherType.ipv6 & 0xff;
}

export class Ipv6Output {
  private nextId = 1;

  /** `alloc`: where frames are made (the stack carves them from a FrameSlab) */
  constructor(
    private readonly mtu: number,
    private readonly alloc: (length: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  ) {}

  /** The frames that carry one packet: one, or its fragments in order; none when it cannot be sent. */
  frames(d: Ipv6Out): Buffer[] {
    if (d.payload.length > ipv6MaxPayload) return [];
    const hopLimit = d.hopLimit ?? 64;
    if (ipv6HeaderLength + d.payload.length <= this.mtu) {
      const out = this.alloc(L4_AT + d.payload.length);
      writeEthernet(out, d.dstMac, d.srcMac);
      encodeIpv6(
        {
          trafficClass: 0,
          flowLabel: 0,
          hopLimit,
          src: d.src,
          dst: d.dst,
          protocol: d.protocol,
          payload: d.payload,
        },
        out,
        ethernetHeaderLength,
      );
      return [out];
    }
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    const step = (this.mtu - ipv6HeaderLength - ipv6FragmentHeaderLength) & ~7;
    if (step <= 0) return [];
    const frames: Buffer[] = [];
    for (let off = 0; off < d.payload.length; off += step) {
      const end = Math.min(off + step, d.payload.length);
      const data = d.payload.subarray(off, end);
      const out = this.alloc(L4_AT + ipv6FragmentHeaderLength + data.length);
      writeEthernet(out, d.dstMac, d.srcMac);
      encodeIpv6(
        {
          trafficClass: 0,
          flowLabel: 0,
          hopLimit,
          src: d.src,
          dst: d.dst,
          protocol: d.protocol,
          fragment: { id, offset: off, more: end < d.payload.length },
          payload: data,
        },
        out,
        ethernetHeaderLength,
      );
      frames.push(out);
    }
    return frames;
  }

  /**
   * One frame holding a TCP segment (or, with `tail`, only its headers; the payload
   * length then counts the tail too).
   */
  tcp(
    srcMac: Buffer,
    dstMac: Buffer,
    src: Ipv6Address,
    dst: Ipv6Address,
    seg: TcpSegment,
    policy: ChecksumPolicy,
    tail?: Buffer,
  ): Buffer {
    const l4 = tcpEncodingLength(seg);
    const out = this.alloc(L4_AT + l4);
    writeEthernet(out, dstMac, srcMac);
    const payloadLength = l4 + (tail?.length ?? 0);
    out[14] = 0x60;
    out[15] = 0;
    out[16] = 0;
    out[17] = 0;
    out[18] = payloadLength >>> 8;
    out[19] = payloadLength & 0xff;
    out[20] = Ipv6Next.tcp;
    out[21] = 64;
    out.set(src.subarray(0, 16), 22);
    out.set(dst.subarray(0, 16), 38);
    encodeTcp(seg, out, L4_AT, pseudoHeader6(src, dst), policy);
    return out;
  }
}
