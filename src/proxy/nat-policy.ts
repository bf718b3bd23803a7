/**
 * Where a guest's packet to a virtual address really goes, and how a host address
 * looks from inside the guest: the gateway stands for the host's loopback (unless
 * host-loopback=off, like slirp4netns --disable-host-loopback); restrict=on keeps the
 * guest inside (only built-in services and forwards); loopback, multicast and
 * broadcast destinations are never reached from a guest.
 */
import { ipv4ToString, isIpv4Loopback, isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";

export interface NatPolicyConfig {
  /** the gateway address (uint32) */
  host: number;
  hostLoopback: boolean;
  restrict: boolean;
  /** the host address outgoing sockets bind to */
  outboundAddr?: string | undefined;
}

export type Destination = { ok: true; address: string } | { ok: false; reason: string };

const loopback = "127.0.0.1";

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
}
