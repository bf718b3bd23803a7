/**
 * The IPv6 side of one user netdev's NAT: where the stack's IPv6 hooks (udp6, echo6,
 * tcp6; stack/user-stack.ts) go, and the NAT tables that carry them to host sockets.
 * user-netdev.ts builds one when the netdev has IPv6 and hands it the hooks' calls.
 *
 * - UDP: replies on host forwards first (hostfwd= with an IPv6 guest); then a
 *   destination inside the netdev's own prefix other than the gateway, or link-local,
 *   is a virtual address nothing listens on: ICMPv6 port unreachable, counted
 *   "udp6-no-service" (what a real host answers); multicast is not forwarded
 *   ("udp6-multicast-not-forwarded"); anything else is the UDP NAT (its IPv6 table;
 *   the gateway stands for ::1, NAT64 destinations go out of IPv4 sockets).
 * - Echo: the ICMP echo NAT's IPv6 table (ICMPv6 ping sockets; IPv4 ones for NAT64).
 * - TCP: `tcpRoute` says whether a new connection is for the relay or refused (a
 *   virtual address in the prefix: RST at once, counted "tcp6-no-service").
 *
 * Addresses in the NAT tables are ipv6Key strings (nat-family.ts): made once per
 * datagram here from the frame's views, turned back into 16 bytes only to answer.
 * The bounds are the IPv4 tables' (udp-max-sockets=, icmp-max-ids= and their
 * per-guest forms), counted separately for IPv6.
 */
import type { UserNetdevConfig } from "./config.js";
import type { Logger } from "./log.js";
import type { HostForwarder } from "./proxy/host-forward.js";
import type { HostNet } from "./proxy/host-net.js";
import { IcmpEchoNat } from "./proxy/icmp-echo.js";
import { icmp6ErrorOf, ipv6NatFamily } from "./proxy/nat-family.js";
import type { NatPolicy } from "./proxy/nat-policy.js";
import { UdpNat } from "./proxy/udp-nat.js";
import type { Ipv6StackConfig } from "./stack/config.js";
import type { DropCounters } from "./stack/drop-counters.js";
import type { EchoReplyToGuest6, GuestEcho6, GuestUdp6, UdpToGuest6 } from "./stack/user-stack.js";
import { IcmpType } from "./stack/wire/icmp.js";
import {
  type Ipv6Address,
  ipv6FromKey,
  ipv6InPrefix,
  ipv6Key,
  isIpv6LinkLocal,
  isIpv6Multicast,
  sameIpv6,
} from "./stack/wire/ipv6-addr.js";

/** An ICMPv6 error as the stack sends it (stack/ipv6-gateway.ts Icmp6ErrorKind). */
type Icmp6Error = { kind: "dest-unreachable"; code: number } | { kind: "time-exceeded"; code: number };

/** The stack's ways back in for IPv6. */
export interface Nat6Stack {
  sendUdp6(d: UdpToGuest6): unknown;
  sendEchoReply6(e: EchoReplyToGuest6): unknown;
  sendIcmp6Error(to: Ipv6Address, from: Ipv6Address, e: Icmp6Error, quote: Buffer): unknown;
}

export interface UserNat6Options {
  config: UserNetdevConfig;
  ipv6: Ipv6StackConfig;
  stack: Nat6Stack;
  hostNet: HostNet;
  policy: NatPolicy;
  forwards: HostForwarder;
  drops: DropCounters;
  log: Logger;
  now(): number;
  /** after sending to a guest from outside `input` (the timer driver re-reads deadlines) */
  sent(): void;
}

const icmp6PortUnreachable = 4;

export class UserNat6 {
  readonly udp: UdpNat<string>;
  readonly icmp: IcmpEchoNat<string>;
  private readonly ipv6: Ipv6StackConfig;

  constructor(private readonly o: UserNat6Options) {
    this.ipv6 = o.ipv6;
    const family = ipv6NatFamily(o.policy);
    const error = (type: number, to: string, from: string, code: number, quote: Buffer) => {
      const e = icmp6ErrorOf(type, code);
      o.stack.sendIcmp6Error(
        ipv6FromKey(to),
        ipv6FromKey(from),
        e.type === 3 ? { kind: "time-exceeded", code: e.code } : { kind: "dest-unreachable", code: e.code },
        quote,
      );
      o.sent();
    };
    this.udp = new UdpNat<string>(
      o.hostNet,
      o.policy,
      {
        toGuest: (d) => {
          o.stack.sendUdp6({
            src: ipv6FromKey(d.src),
            srcPort: d.srcPort,
            dst: ipv6FromKey(d.dst),
            dstPort: d.dstPort,
            payload: d.payload,
          });
          o.sent();
        },
        unreachable: (to, from, code, quote) => error(IcmpType.destUnreachable, to, from, code, quote),
        timeExceeded: (to, from, code, quote) => error(IcmpType.timeExceeded, to, from, code, quote),
      },
      o.log.child({ proxy: "udp6" }),
      {
        family,
        now: o.now,
        maxFlows: o.config.udpMaxSockets,
        maxFlowsPerGuest: o.config.udpMaxSocketsPerGuest,
      },
    );
    this.icmp = new IcmpEchoNat<string>(
      o.hostNet,
      o.policy,
      (e) => {
        o.stack.sendEchoReply6({
          src: ipv6FromKey(e.src),
          dst: ipv6FromKey(e.dst),
          id: e.id,
          seq: e.seq,
          payload: e.payload,
        });
        o.sent();
      },
      o.log.child({ proxy: "icmp6" }),
      { family, maxFlows: o.config.icmpMaxIds, maxFlowsPerGuest: o.config.icmpMaxIdsPerGuest },
    );
  }

  /** A guest's UDP datagram over IPv6 (the stack's udp6 hook). */
  udp6(d: GuestUdp6): void {
    if (isIpv6Multicast(d.dst)) return this.o.drops.drop("udp6-multicast-not-forwarded");
    const src = ipv6Key(d.src);
    const dst = ipv6Key(d.dst);
    if (this.o.forwards.fromGuestUdp(src, d.srcPort, dst, d.dstPort, d.payload)) return;
    if (this.isVirtual(d.dst)) {
      this.o.drops.drop("udp6-no-service");
      this.o.stack.sendIcmp6Error(
        d.src,
        d.dst,
        { kind: "dest-unreachable", code: icmp6PortUnreachable },
        d.quote(),
      );
      return;
    }
    this.udp.fromGuest(
      {
        guest: d.guest,
        src,
        srcPort: d.srcPort,
        dst,
        dstPort: d.dstPort,
        payload: d.payload,
        quote: () => d.quote(),
      },
      this.o.now(),
    );
  }

  /** A guest's echo request over IPv6 to an address outside the stack's own (the echo6 hook). */
  echo6(e: GuestEcho6): void {
    this.icmp.fromGuest(
      { guest: e.guest, src: ipv6Key(e.src), dst: ipv6Key(e.dst), id: e.id, seq: e.seq, payload: e.payload },
      this.o.now(),
    );
    this.o.sent();
  }

  /** Whether a new guest TCP connection to `dst` goes to the relay (else it is refused). */
  tcpToRelay(dst: Ipv6Address): boolean {
    if (!this.isVirtual(dst)) return true;
    this.o.drops.drop("tcp6-no-service");
    return false;
  }

  nextDeadline(): number | undefined {
    const a = this.udp.nextDeadline();
    const b = this.icmp.nextDeadline();
    return a === undefined ? b : b === undefined ? a : Math.min(a, b);
  }

  expire(now: number): void {
    this.udp.expire(now);
    this.icmp.expire(now);
  }

  closeAll(): void {
    this.udp.closeAll();
    this.icmp.closeAll();
  }

  drops(): Record<string, number> {
    return { ...this.udp.drops.toJSON(), ...this.icmp.drops.toJSON() };
  }

  /** an address of the netdev's own (in its prefix, or link-local) that is not the gateway */
  private isVirtual(a: Ipv6Address): boolean {
    if (sameIpv6(a, this.ipv6.host)) return false;
    return isIpv6LinkLocal(a) || ipv6InPrefix(a, this.ipv6.prefix, this.ipv6.prefixLength);
  }
}
