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

import { internetChecksum } from "./wire/checksum.js";
import { EtherType, encodeEthernet, ethernetHeaderLength } from "./wire/ethernet.js";
import { encodeIpv4, ipv4HeaderLength, ipv4MaxLength } from "./wire/ipv4.js";

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

export class Ipv4Output {
  private nextId = 1;

  constructor(private readonly mtu: number) {}

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
   * One unfragmented frame whose transport payload (`length` bytes) `fill` writes in
   * place at `at`: no intermediate buffer, one allocation per frame.
   */
  single(d: Omit<Ipv4Out, "payload">, length: number, fill: (buf: Buffer, at: number) => void): Buffer {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff || 1;
    const out = Buffer.allocUnsafe(ethernetHeaderLength + ipv4HeaderLength + length);
    const l4At = ethernetHeaderLength + ipv4HeaderLength;
    fill(out, l4At);
    return this.frame({ ...d, payload: out.subarray(l4At) }, id, 0, false, out.subarray(l4At), out);
  }

  /**
   * The headers of one unfragmented frame whose transport header (`length` bytes,
   * written by `fill` at `at`) is followed by `tailLength` payload bytes kept in a
   * Buffer of their own: the IPv4 total length counts them, the frame does not hold
   * them (see FrameOffload.tail).
   */
  headersOnly(
    d: Omit<Ipv4Out, "payload">,
    length: number,
    tailLength: number,
    fill: (buf: Buffer, at: number) => void,
  ): Buffer {
    const out = this.single(d, length, fill);
    const ip = out.subarray(ethernetHeaderLength, ethernetHeaderLength + ipv4HeaderLength);
    ip.writeUInt16BE(ipv4HeaderLength + length + tailLength, 2);
    ip.writeUInt16BE(0, 10);
    ip.writeUInt16BE(internetChecksum(ip), 10);
    return out;
  }

  private frame(
    d: Ipv4Out,
    id: number,
    offset: number,
    more: boolean,
    data: Buffer,
    out = Buffer.allocUnsafe(ethernetHeaderLength + ipv4HeaderLength + data.length),
  ): Buffer {
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
