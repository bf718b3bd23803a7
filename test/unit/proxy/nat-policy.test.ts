import { describe, expect, it } from "vitest";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { parseIpv4 } from "../../../src/stack/wire/addr.js";
import { parseIpv6 } from "../../../src/stack/wire/ipv6-addr.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;
const policy = (over: Partial<ConstructorParameters<typeof NatPolicy>[0]> = {}) =>
  new NatPolicy({ host: ip("10.0.2.2"), hostLoopback: true, restrict: false, ...over });

describe("NatPolicy", () => {
  it("maps the gateway to the host's loopback, and back", () => {
    expect(policy().destination(ip("10.0.2.2"))).toEqual({ ok: true, address: "127.0.0.1" });
    expect(policy().guestSource("127.0.0.1")).toBe(ip("10.0.2.2"));
    expect(policy().guestSource("::ffff:127.0.0.1")).toBe(ip("10.0.2.2"));
  });

  it("refuses the gateway with host-loopback=off and hides loopback sources", () => {
    const p = policy({ hostLoopback: false });
    expect(p.destination(ip("10.0.2.2"))).toEqual({ ok: false, reason: "host-loopback-off" });
    expect(p.guestSource("127.0.0.1")).toBeUndefined();
  });

  it("passes outside addresses through and never reaches loopback, multicast or broadcast", () => {
    expect(policy().destination(ip("198.51.100.1"))).toEqual({ ok: true, address: "198.51.100.1" });
    expect(policy().guestSource("198.51.100.1")).toBe(ip("198.51.100.1"));
    for (const a of ["127.0.0.1", "224.0.0.251", "255.255.255.255", "0.0.0.0"]) {
      expect(policy().destination(ip(a)).ok).toBe(false);
    }
  });

  it("with restrict=on lets nothing out", () => {
    expect(policy({ restrict: true }).destination(ip("198.51.100.1"))).toEqual({
      ok: false,
      reason: "restricted",
    });
    expect(policy({ restrict: true }).destination(ip("10.0.2.2"))).toEqual({
      ok: false,
      reason: "restricted",
    });
  });
});

describe("NatPolicy on IPv6", () => {
  const ip6 = (s: string) => parseIpv6(s) as Buffer;
  const policy6 = (over: Partial<ConstructorParameters<typeof NatPolicy>[0]> = {}) =>
    policy({ host6: ip6("fec0::2"), ...over });

  it("maps the IPv6 gateway to the host's ::1, and ::1 back to the gateway", () => {
    expect(policy6().destination6(ip6("fec0::2"))).toEqual({ ok: true, address: "::1", family: 6 });
    expect(policy6().guestSource6("::1")).toEqual(ip6("fec0::2"));
    expect(policy6({ hostLoopback: false }).destination6(ip6("fec0::2"))).toEqual({
      ok: false,
      reason: "host-loopback-off",
    });
    expect(policy6({ hostLoopback: false }).guestSource6("::1")).toBeUndefined();
  });

  it("passes global addresses through and never reaches loopback, link-local, multicast or IPv4-mapped ones", () => {
    expect(policy6().destination6(ip6("2001:db8::1"))).toEqual({
      ok: true,
      address: "2001:db8::1",
      family: 6,
    });
    expect(policy6().guestSource6("2001:db8::1")).toEqual(ip6("2001:db8::1"));
    for (const a of ["::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:198.51.100.1"]) {
      expect(policy6().destination6(ip6(a))).toEqual({ ok: false, reason: "destination-not-forwarded" });
    }
    expect(policy6({ restrict: true }).destination6(ip6("2001:db8::1")).ok).toBe(false);
  });

  it("with NAT64 sends the prefix's addresses to IPv4 and shows IPv4 peers inside the prefix", () => {
    const p = policy6({ nat64Prefix: ip6("64:ff9b::") });
    expect(p.destination6(ip6("64:ff9b::198.51.100.1"))).toEqual({
      ok: true,
      address: "198.51.100.1",
      family: 4,
    });
    expect(p.guestSource6("198.51.100.1")).toEqual(ip6("64:ff9b::c633:6401"));
    // the IPv4 rules hold behind the prefix: no loopback, no broadcast
    expect(p.destination6(ip6("64:ff9b::127.0.0.1")).ok).toBe(false);
    expect(p.destination6(ip6("64:ff9b::255.255.255.255")).ok).toBe(false);
    expect(p.guestSource6("127.0.0.1")).toBeUndefined();
    // without nat64 the prefix is an ordinary destination, and IPv4 sources do not show
    expect(policy6().destination6(ip6("64:ff9b::198.51.100.1"))).toEqual({
      ok: true,
      address: "64:ff9b::c633:6401",
      family: 6,
    });
    expect(policy6().guestSource6("198.51.100.1")).toBeUndefined();
  });

  it("binds outgoing sockets of each family to their own outbound address", () => {
    const p = policy6({ outboundAddr: "192.0.2.7", outboundAddr6: "2001:db8::7" });
    expect(p.outbound(4)).toBe("192.0.2.7");
    expect(p.outbound(6)).toBe("2001:db8::7");
  });
});
