/**
 * The routing table: which built-in service, address class or the NAT a guest's
 * datagram or connection goes to, from its destination alone.
 */
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ipv6Defaults, type StackConfig } from "../../../src/stack/config.js";
import { type RoutedServices, RouteTable } from "../../../src/stack/routes.js";
import { parseIpv4, prefixToMask } from "../../../src/stack/wire/addr.js";
import { parseIpv6 } from "../../../src/stack/wire/ipv6-addr.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;
const config: StackConfig = {
  net: ip("10.0.2.0"),
  mask: prefixToMask(24),
  host: ip("10.0.2.2"),
  dns: ip("10.0.2.3"),
  smb: ip("10.0.2.4"),
  extraAddresses: [ip("10.0.2.100")],
  mtu: 1500,
};
const all: RoutedServices = {
  dns: true,
  tftp: true,
  smb: true,
  guestfwd: [{ addr: ip("10.0.2.100"), port: 4321 }],
};

describe("RouteTable", () => {
  it("sends guest UDP to DHCP, DNS and TFTP at their addresses and ports", () => {
    const t = new RouteTable(config, all);
    expect(t.udp(ip("255.255.255.255"), 67)).toBe("dhcp");
    expect(t.udp(ip("10.0.2.2"), 67)).toBe("dhcp");
    expect(t.udp(ip("10.0.2.3"), 53)).toBe("dns");
    expect(t.udp(ip("10.0.2.2"), 69)).toBe("tftp");
  });

  it("classifies the rest by address: broadcasts, the gateway, virtual addresses, the outside", () => {
    const t = new RouteTable(config, all);
    expect(t.udp(ip("255.255.255.255"), 53)).toBe("broadcast");
    expect(t.udp(ip("10.0.2.255"), 67)).toBe("broadcast");
    expect(t.udp(ip("10.0.2.2"), 53)).toBe("gateway");
    expect(t.udp(ip("10.0.2.3"), 54)).toBe("no-service");
    expect(t.udp(ip("10.0.2.4"), 445)).toBe("no-service");
    expect(t.udp(ip("10.0.2.100"), 4321)).toBe("no-service");
    expect(t.udp(ip("192.0.2.1"), 53)).toBe("outside");
    expect(t.udp(ip("10.0.2.15"), 53)).toBe("outside");
  });

  it("sends new guest TCP to DNS, SMB and guestfwd servers, and refuses other virtual ports", () => {
    const t = new RouteTable(config, all);
    expect(t.tcp(ip("10.0.2.3"), 53)).toBe("dns");
    expect(t.tcp(ip("10.0.2.4"), 445)).toBe("smb");
    expect(t.tcp(ip("10.0.2.4"), 139)).toBe("smb");
    expect(t.tcp(ip("10.0.2.100"), 4321)).toBe("guestfwd");
    expect(t.tcp(ip("10.0.2.100"), 4322)).toBe("no-service");
    expect(t.tcp(ip("10.0.2.2"), 22)).toBe("gateway");
    expect(t.tcp(ip("198.51.100.1"), 80)).toBe("outside");
  });

  it("has no row for a service that is off", () => {
    const t = new RouteTable(config, { dns: false, tftp: false, smb: false, guestfwd: [] });
    expect(t.udp(ip("10.0.2.3"), 53)).toBe("no-service");
    expect(t.tcp(ip("10.0.2.3"), 53)).toBe("no-service");
    expect(t.udp(ip("10.0.2.2"), 69)).toBe("gateway");
    expect(t.tcp(ip("10.0.2.4"), 445)).toBe("no-service");
    expect(t.hasGuestForwards).toBe(false);
  });

  it("lets a guestfwd= rule take a built-in service's address and port", () => {
    const t = new RouteTable(config, { ...all, guestfwd: [{ addr: ip("10.0.2.3"), port: 53 }] });
    expect(t.tcp(ip("10.0.2.3"), 53)).toBe("guestfwd");
    expect(t.udp(ip("10.0.2.3"), 53)).toBe("dns");
  });

  it("never answers the gateway as a virtual address, even when DNS is the gateway", () => {
    const t = new RouteTable({ ...config, dns: config.host }, all);
    expect(t.udp(config.host, 53)).toBe("dns");
    expect(t.udp(config.host, 54)).toBe("gateway");
  });

  test.prop([fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 65535 })])(
    "every destination has one route, and outside the subnet it is the NAT",
    (dst, port) => {
      const t = new RouteTable(config, all);
      const r = t.udp(dst, port);
      const inside = (dst & config.mask) >>> 0 === config.net;
      if (!inside && dst !== 0xffffffff) expect(r).toBe("outside");
      expect(t.tcp(dst, port)).toBeTypeOf("string");
    },
  );
});

describe("RouteTable on IPv6", () => {
  const v6 = (s: string) => parseIpv6(s) as Buffer;
  const with6: StackConfig = { ...config, ipv6: ipv6Defaults() };

  it("routes DNS at the IPv6 DNS address and DHCPv6 at ff02::1:2 and the gateway when served", () => {
    const t = new RouteTable(with6, { ...all, dhcpv6: true });
    expect(t.udp6(v6("fec0::3"), 53)).toBe("dns");
    expect(t.tcp6(v6("fec0::3"), 53)).toBe("dns");
    expect(t.udp6(v6("ff02::1:2"), 547)).toBe("dhcpv6");
    expect(t.udp6(v6("fe80::2"), 547)).toBe("dhcpv6");
    expect(t.routes6.map((r) => `${r.proto} [${r.addr}]:${r.port} ${r.to}`)).toEqual([
      "udp [fec0::3]:53 dns",
      "tcp [fec0::3]:53 dns",
      "udp [ff02::1:2]:547 dhcpv6",
      "udp [fe80::2]:547 dhcpv6",
      "udp [fec0::2]:547 dhcpv6",
    ]);
  });

  it("classifies the rest: gateway, no-service, multicast as broadcast, the outside", () => {
    const t = new RouteTable(with6, { ...all, dns: false });
    expect(t.udp6(v6("fec0::3"), 53)).toBe("no-service");
    expect(t.udp6(v6("ff02::1:2"), 547)).toBe("broadcast");
    expect(t.udp6(v6("fec0::2"), 8080)).toBe("gateway");
    expect(t.tcp6(v6("fe80::2"), 22)).toBe("gateway");
    expect(t.tcp6(v6("2001:db8::1"), 80)).toBe("outside");
    expect(t.udp6(v6("fec0::99"), 53)).toBe("outside");
    expect(new RouteTable(config, all).routes6).toEqual([]);
  });
});
