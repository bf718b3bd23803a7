import { describe, expect, it } from "vitest";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { parseIpv4 } from "../../../src/stack/wire/addr.js";

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
