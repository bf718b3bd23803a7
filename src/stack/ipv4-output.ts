/**
 * Builds outgoing Ethernet+IPv4 frames for the stack, fragmenting to the link MTU.
 *
 * The caller gives the finished transport payload (an ICMP message, a UDP datagram
 * with its header, a TCP segment); this module adds the IPv4 header (TTL 64, a fresh
 * id per datagram) and the Ethernet header, and splits datagrams larger than the MTU
 * into fragments whose data lengths are multiples of 8 (RFC 791). DF datagrams larger
 * than the MTU are the caller's mistake and are fragmented anyway: the stack only
 * sends DF on TCP, which it sizes to the MSS.
 */

import type { ChecksumPolicy } from "./wire/checksum.js";
import { EtherType, encodeEthernet, ethernetHeaderLength } from "./wire/ethernet.js";
import { encodeIpv4, IpProto, ipv4HeaderLength, ipv4MaxLength } from "./wire/ipv4.js";
import { encodeTcp, type TcpSegment, tcpEncodingLength } from "./wire/tcp.js";

export interface Ipv4Out {
  srcMac: Buffer;
  dstMac: Buffer;
  src: number;
  dst: number;
  protocol: number;
  payload: Buffer;
  tos?: number;
  ttl?: number;
  dontFragment?: boolean;
}

const noOptions = Buffer.alloc(0);
const L4_AT = ethernetHeaderLength + ipv4HeaderLength;

export class Ipv4Output {
  private nextId = 1;

  /** `alloc`: where frames are made (the stack carves them from a FrameSlab) */
  constructor(
    private readonly mtu: number,
    private readonly alloc: (length: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  ) {}

  /** The frames that carry one datagram: one, or its fragments in order. */
  frames(d: Ipv4Out): Buffer[] {
    const maxData = this.mtu - ipv4HeaderLength;
    if (ipv4HeaderLength + d.payload.length > ipv4MaxLength) return [];
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff || 1;
    if (d.payload.length <= maxData) return [this.frame(d, id, 0, false, d.payload)];
    const step = maxData & ~7;
    const out: Buffer[] = [];
    for (let off = 0; off < d.payload.length; off += step) {
      const end = Math.min(off + step, d.payload.length);
      out.push(this.frame(d, id, off, end < d.payload.length, d.payload.subarray(off, end)));
    }
    return out;
  }

  /**
   * The hot path for TCP: one frame holding the segment (or, with `tail`, only its
   * headers; the IPv4 length then counts the tail too). Ethernet and IPv4 headers are
   * written field by field with the header checksum summed inline: no records, no
   * closures, no second pass, for every segment the stack sends.
   */
  tcp(
    srcMac: Buffer,
    dstMac: Buffer,
    src: number,
    dst: number,
    seg: TcpSegment,
    policy: ChecksumPolicy,
    tail?: Buffer,
  ): Buffer {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff || 1;
    const l4 = tcpEncodingLength(seg);
    const out = this.alloc(L4_AT + l4);
    out.set(dstMac, 0);
    out.set(srcMac, 6);
    out[12] = 0x08;
    out[13] = 0x00;
    const total = ipv4HeaderLength + l4 + (tail?.length ?? 0);
    out[14] = 0x45;
    out[15] = 0;
    out[16] = total >>> 8;
    out[17] = total & 0xff;
    out[18] = id >>> 8;
    out[19] = id & 0xff;
    out[20] = 0x40; // DF: TCP is sized to the path
    out[21] = 0;
    out[22] = 64;
    out[23] = IpProto.tcp;
    out.writeUInt32BE(src >>> 0, 26);
    out.writeUInt32BE(dst >>> 0, 30);
    let sum =
      0x4500 +
      total +
      id +
      0x4000 +
      ((64 << 8) | IpProto.tcp) +
      (src >>> 16) +
      (src & 0xffff) +
      (dst >>> 16) +
      (dst & 0xffff);
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    out[24] = c >>> 8;
    out[25] = c & 0xff;
    encodeTcp(seg, out, L4_AT, { src, dst }, policy);
    return out;
  }

  private frame(d: Ipv4Out, id: number, offset: number, more: boolean, data: Buffer): Buffer {
    const out = this.alloc(ethernetHeaderLength + ipv4HeaderLength + data.length);
    encodeIpv4(
      {
        tos: d.tos ?? 0,
        id,
        dontFragment: (d.dontFragment ?? false) && offset === 0 && !more,
        moreFragments: more,
        fragmentOffset: offset,
        ttl: d.ttl ?? 64,
        protocol: d.protocol,
        src: d.src,
        dst: d.dst,
        options: noOptions,
        payload: data,
      },
      out,
      ethernetHeaderLength,
    );
    encodeEthernet(
      {
        dst: d.dstMac,
        src: d.srcMac,
        ethertype: EtherType.ipv4,
        payload: out.subarray(ethernetHeaderLength),
      },
      out,
    );
    return out;
  }
}
