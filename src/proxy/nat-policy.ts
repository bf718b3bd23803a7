/**
 * Where a guest's packet to a virtual address really goes, and how a host address
 * looks from inside the guest: the gateway stands for the host's loopback (unless
 * host-loopback=off, like slirp4netns --disable-host-loopback); restrict=on keeps the
 * guest inside (only built-in services and forwards); loopback, multicast and
 * broadcast destinations are never reached from a guest.
 *
 * IPv6 (`destination6`, `guestSource6`): the same rules, with the IPv6 gateway standing
 * for the host's ::1; link-local (fe80::/10), multicast, ::, ::1 and IPv4-mapped
 * (::ffff:0:0/96, which would reach the host's IPv4 loopback through a dual-stack
 * socket) destinations are never forwarded. Outgoing IPv6 sockets bind to
 * `outboundAddr6` when given.
 *
 * NAT64 (`nat64Prefix`, nat64=on): a guest's IPv6 destination inside the /96 prefix
 * (64:ff9b::/96 by default, RFC 6052) stands for the IPv4 address in its last 32 bits,
 * reached through an IPv4 socket (bound to `outboundAddr`) under the IPv4 rules above;
 * an IPv4 peer shows to the guest as prefix::a.b.c.d. Without nat64 the prefix is an
 * ordinary IPv6 destination.
 */
import { ipv4ToString, isIpv4Loopback, isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";
import {
  type Ipv6Address,
  ipv6Copy,
  ipv6InPrefix,
  ipv6ToString,
  isIpv4Mapped,
  isIpv6LinkLocal,
  isIpv6Loopback,
  isIpv6Multicast,
  isIpv6Unspecified,
  parseIpv6,
  sameIpv6,
} from "../stack/wire/ipv6-addr.js";

export interface NatPolicyConfig {
  /** the gateway address (uint32) */
  host: number;
  hostLoopback: boolean;
  restrict: boolean;
  /** the host address outgoing sockets bind to */
  outboundAddr?: string | undefined;
  /** the IPv6 gateway address (absent: no IPv6) */
  host6?: Ipv6Address | undefined;
  /** the host IPv6 address outgoing IPv6 sockets bind to */
  outboundAddr6?: string | undefined;
  /** nat64=on: the /96 prefix whose addresses stand for IPv4 ones */
  nat64Prefix?: Ipv6Address | undefined;
}

export type Destination = { ok: true; address: string; family?: 4 | 6 } | { ok: false; reason: string };

/** An IPv6 destination: the host address and its family (4 for a NAT64 address). */
export type Destination6 = { ok: true; address: string; family: 4 | 6 } | { ok: false; reason: string };

const loopback = "127.0.0.1";
const loopback6 = "::1";

export class NatPolicy {
  constructor(readonly config: NatPolicyConfig) {}

  /** The host address a guest's packet to `dst` is sent to, or why it is not. */
  destination(dst: number): Destination {
    if (this.config.restrict) return { ok: false, reason: "restricted" };
    if (dst === this.config.host) {
      return this.config.hostLoopback
        ? { ok: true, address: loopback }
        : { ok: false, reason: "host-loopback-off" };
    }
    return this.outside4(dst);
  }

  private outside4(dst: number): Destination {
    if (isIpv4Loopback(dst) || isIpv4Multicast(dst) || dst === 0xffffffff || dst === 0) {
      return { ok: false, reason: "destination-not-forwarded" };
    }
    return { ok: true, address: ipv4ToString(dst) };
  }

  /** How a host source address appears to the guest. */
  guestSource(address: string): number | undefined {
    const a = parseIpv4(address.startsWith("::ffff:") ? address.slice(7) : address);
    if (a === undefined) return undefined;
    if (isIpv4Loopback(a)) return this.config.hostLoopback ? this.config.host : undefined;
    return a;
  }

  /** The host address (and its family) a guest's IPv6 packet to `dst` is sent to, or why not. */
  destination6(dst: Ipv6Address): Destination6 {
    const c = this.config;
    if (c.restrict) return { ok: false, reason: "restricted" };
    if (c.host6 !== undefined && sameIpv6(dst, c.host6)) {
      return c.hostLoopback
        ? { ok: true, address: loopback6, family: 6 }
        : { ok: false, reason: "host-loopback-off" };
    }
    if (c.nat64Prefix !== undefined && ipv6InPrefix(dst, c.nat64Prefix, 96)) {
      const d = this.outside4(dst.readUInt32BE(12));
      return d.ok ? { ok: true, address: d.address, family: 4 } : d;
    }
    if (
      isIpv6Loopback(dst) ||
      isIpv6Unspecified(dst) ||
      isIpv6Multicast(dst) ||
      isIpv6LinkLocal(dst) ||
      isIpv4Mapped(dst)
    ) {
      return { ok: false, reason: "destination-not-forwarded" };
    }
    return { ok: true, address: ipv6ToString(dst), family: 6 };
  }

  /**
   * How a host source address appears to an IPv6 guest: ::1 as the gateway, an IPv4
   * address (a NAT64 flow's peer) inside the NAT64 prefix; undefined when it must not
   * show at all. A new address each call: the caller may keep it.
   */
  guestSource6(address: string): Ipv6Address | undefined {
    const c = this.config;
    if (!address.includes(":") || address.startsWith("::ffff:")) {
      const v4 = parseIpv4(address.startsWith("::ffff:") ? address.slice(7) : address);
      if (v4 === undefined || c.nat64Prefix === undefined || isIpv4Loopback(v4)) return undefined;
      const a = ipv6Copy(c.nat64Prefix);
      a.writeUInt32BE(v4, 12);
      return a;
    }
    const a = parseIpv6(address.split("%")[0] as string);
    if (a === undefined) return undefined;
    if (isIpv6Loopback(a)) return c.hostLoopback && c.host6 !== undefined ? ipv6Copy(c.host6) : undefined;
    return a;
  }

  /** The address outgoing sockets of `family` bind to. */
  outbound(family: 4 | 6): string | undefined {
    return family === 4 ? this.config.outboundAddr : this.config.outboundAddr6;
  }
}
