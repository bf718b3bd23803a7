/**
 * The address family of a NAT table (udp-nat.ts, icmp-echo.ts): how the guest-visible
 * addresses of one family are compared, shown, mapped to host addresses and back.
 *
 * Inside a NAT table a guest-visible address is a value compared with `===` and put
 * into string keys as it is: an IPv4 uint32 (the IPv4 paths are exactly as before), or
 * for IPv6 the address's `ipv6Key` (eight UTF-16 code units; stack/wire/ipv6-addr.ts),
 * made once per datagram by the caller from the frame's view. The table never needs
 * the 16 bytes but to open a socket, show a flow, or answer the guest, which the
 * family does here (`toAddress` at the sink, in user-netdev.ts).
 *
 * A destination may lie in the other family (NAT64: an IPv6 guest's datagram to
 * 64:ff9b::a.b.c.d goes out of an IPv4 socket), so `destination` says which family of
 * socket to use, and `guestSource` maps a reply's host address of either family.
 *
 * ICMP errors the host reports are handed on in ICMP (IPv4) numbering whatever the
 * socket's family (host-net.ts normalises ICMPv6 reports); the IPv6 sink turns them
 * into ICMPv6 (`icmp6ErrorOf`).
 */
import { ipv4ToString } from "../stack/wire/addr.js";
import { IcmpType, IcmpUnreachableCode } from "../stack/wire/icmp.js";
import { encodeIpv4Quote, IpProto } from "../stack/wire/ipv4.js";
import { type Ipv6Address, ipv6FromKey, ipv6Key, ipv6ToString } from "../stack/wire/ipv6-addr.js";
import { udpHeaderLength } from "../stack/wire/udp.js";
import type { NatPolicy } from "./nat-policy.js";

/** A destination as a NAT table needs it: the host address and the socket family. */
export type NatDestination = { ok: true; address: string; family?: 4 | 6 } | { ok: false; reason: string };

export interface NatFamily<A extends number | string> {
  readonly v: 4 | 6;
  destination(dst: A): NatDestination;
  /** how a host source address shows to the guest (undefined: hidden, the datagram is dropped) */
  guestSource(address: string): A | undefined;
  show(a: A): string;
  /** an ICMP error's quote of a guest's UDP datagram, rebuilt (IP header and UDP header) */
  udpQuote(src: A, dst: A, srcPort: number, dstPort: number, udpLength: number): Buffer;
}

export function ipv4NatFamily(policy: NatPolicy): NatFamily<number> {
  return {
    v: 4,
    destination: (dst) => policy.destination(dst),
    guestSource: (address) => policy.guestSource(address),
    show: ipv4ToString,
    udpQuote(src, dst, srcPort, dstPort, udpLength) {
      return encodeIpv4Quote(src, dst, IpProto.udp, udpHead(srcPort, dstPort, udpLength), udpLength);
    },
  };
}

export function ipv6NatFamily(policy: NatPolicy): NatFamily<string> {
  return {
    v: 6,
    destination: (dst) => policy.destination6(ipv6FromKey(dst)),
    guestSource(address) {
      const a = policy.guestSource6(address);
      return a === undefined ? undefined : ipv6Key(a);
    },
    show: (k) => ipv6ToString(ipv6FromKey(k)),
    udpQuote(src, dst, srcPort, dstPort, udpLength) {
      return encodeIpv6Quote(
        ipv6FromKey(src),
        ipv6FromKey(dst),
        IpProto.udp,
        udpHead(srcPort, dstPort, udpLength),
        udpLength,
      );
    },
  };
}

function udpHead(srcPort: number, dstPort: number, udpLength: number): Buffer {
  const udp = Buffer.alloc(udpHeaderLength);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(Math.min(0xffff, udpLength), 4);
  return udp;
}

/** An IPv6 header (hop limit 64, no extension headers) and `head`, as an ICMPv6 error quotes them. */
export function encodeIpv6Quote(
  src: Ipv6Address,
  dst: Ipv6Address,
  nextHeader: number,
  head: Buffer,
  payloadLength: number,
): Buffer {
  const q = Buffer.alloc(40 + head.length);
  q[0] = 0x60;
  q.writeUInt16BE(Math.min(0xffff, payloadLength), 4);
  q[6] = nextHeader;
  q[7] = 64;
  src.copy(q, 8);
  dst.copy(q, 24);
  head.copy(q, 40);
  return q;
}

/** ICMPv6 type and code of an error given in ICMP numbering (destination unreachable / time exceeded). */
export function icmp6ErrorOf(icmpType: number, icmpCode: number): { type: number; code: number } {
  if (icmpType === IcmpType.timeExceeded) return { type: 3, code: icmpCode === 1 ? 1 : 0 };
  switch (icmpCode) {
    case IcmpUnreachableCode.port:
      return { type: 1, code: 4 };
    case IcmpUnreachableCode.net:
      return { type: 1, code: 0 };
    case IcmpUnreachableCode.adminProhibited:
    case IcmpUnreachableCode.netProhibited:
    case IcmpUnreachableCode.hostProhibited:
      return { type: 1, code: 1 };
    default:
      return { type: 1, code: 3 };
  }
}

/** An ICMPv6 error report (type, code) in ICMP numbering, as the NAT tables read reports. */
export function icmpErrorOf6(type6: number, code6: number): { type: number; code: number } {
  if (type6 === 3) return { type: IcmpType.timeExceeded, code: code6 };
  if (type6 === 2) return { type: IcmpType.destUnreachable, code: IcmpUnreachableCode.fragmentationNeeded };
  if (type6 !== 1) return { type: 255, code: code6 };
  switch (code6) {
    case 4:
      return { type: IcmpType.destUnreachable, code: IcmpUnreachableCode.port };
    case 0:
      return { type: IcmpType.destUnreachable, code: IcmpUnreachableCode.net };
    case 1:
    case 5:
    case 6:
      return { type: IcmpType.destUnreachable, code: IcmpUnreachableCode.adminProhibited };
    default:
      return { type: IcmpType.destUnreachable, code: IcmpUnreachableCode.host };
  }
}
