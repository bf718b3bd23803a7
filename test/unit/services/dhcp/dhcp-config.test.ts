import { describe, expect, test } from "vitest";
import { defaultUserNetdev } from "../../../../src/cli/netdev-user.js";
import type { UserNetdevConfig } from "../../../../src/config.js";
import {
  type DhcpServerConfig,
  dhcpConfigFromNetdev,
  fitsSname,
  resolveDhcpConfig,
} from "../../../../src/services/dhcp/dhcp-config.js";
import { ip } from "./fixtures.js";

/** QEMU's `-netdev user,id=n0` */
const netdev: UserNetdevConfig = defaultUserNetdev("n0", 0);

const base: DhcpServerConfig = {
  serverAddress: ip("10.0.2.2"),
  netmask: ip("255.255.255.0"),
  dns: [ip("10.0.2.3")],
  poolStart: ip("10.0.2.15"),
  poolSize: 16,
};

describe("dhcpConfigFromNetdev", () => {
  test("QEMU's defaults", () => {
    expect(dhcpConfigFromNetdev(netdev)).toEqual({
      ...base,
      router: ip("10.0.2.2"),
      nextServer: ip("10.0.2.2"),
      restricted: false,
      mtu: 1500,
    });
  });

  test("carries the optional settings", () => {
    const c = dhcpConfigFromNetdev({
      ...netdev,
      net: "192.168.76.0",
      prefixLength: 22,
      host: "192.168.76.1",
      dhcpStart: "192.168.77.10",
      dhcpCount: 100,
      dns: "192.168.76.53",
      dnsSearch: ["a.example", "b.example"],
      domainName: "lab",
      hostname: "vm",
      tftpServerName: "tftp",
      bootfile: "boot.ipxe",
      restrict: true,
      mtu: 65520,
    });
    expect(c).toMatchObject({
      serverAddress: ip("192.168.76.1"),
      netmask: ip("255.255.252.0"),
      poolStart: ip("192.168.77.10"),
      poolSize: 100,
      dns: [ip("192.168.76.53")],
      dnsSearch: ["a.example", "b.example"],
      domainName: "lab",
      hostname: "vm",
      tftpServerName: "tftp",
      bootfile: "boot.ipxe",
      restricted: true,
      mtu: 65520,
    });
    expect(() => resolveDhcpConfig(c)).not.toThrow();
  });

  test("a bad address names the setting", () => {
    expect(() => dhcpConfigFromNetdev({ ...netdev, dhcpStart: "10.0.2" })).toThrow(/dhcpstart/);
  });
});

describe("resolveDhcpConfig", () => {
  test("fills libslirp's defaults", () => {
    const r = resolveDhcpConfig(base);
    expect(r).toMatchObject({
      network: ip("10.0.2.0"),
      broadcast: ip("10.0.2.255"),
      router: ip("10.0.2.2"),
      nextServer: ip("10.0.2.2"),
      leaseTime: 86400,
      mtu: 1500,
      restricted: false,
      offerHoldMs: 60_000,
      declineHoldMs: 600_000,
      replyMode: "broadcast",
      dnsSearch: undefined,
    });
  });

  test.each([
    [{ netmask: ip("255.0.255.0") }, /netmask/],
    [{ netmask: ip("255.255.255.254") }, /netmask/],
    [{ serverAddress: ip("10.0.2.0") }, /server address/],
    [{ poolSize: 0 }, /pool size/],
    [{ poolStart: ip("10.0.2.250") }, /pool/],
    [{ poolStart: ip("10.0.3.15") }, /pool/],
    [{ mtu: 100 }, /mtu/],
    [{ leaseTime: 0 }, /lease time/],
    [{ leaseTime: 1.5 }, /lease time/],
    [{ hostname: "" }, /hostname/],
    [{ domainName: "x".repeat(256) }, /domain name/],
    [{ bootfile: "a\nb" }, /bootfile/],
    [{ dnsSearch: ["ok.example", "bad..example"] }, /dns search/],
    [{ staticLeases: [{ mac: "zz", ip: ip("10.0.2.9") }] }, /MAC/],
    [{ staticLeases: [{ mac: "52:54:00:00:00:01", ip: ip("10.0.3.9") }] }, /static lease/],
    [{ staticLeases: [{ mac: "52:54:00:00:00:01", ip: ip("10.0.2.2") }] }, /static lease/],
    [
      {
        staticLeases: [
          { mac: "52:54:00:00:00:01", ip: ip("10.0.2.9") },
          { mac: "52:54:00:00:00:01", ip: ip("10.0.2.10") },
        ],
      },
      /twice/,
    ],
    [
      {
        staticLeases: [
          { mac: "52:54:00:00:00:01", ip: ip("10.0.2.9") },
          { mac: "52:54:00:00:00:02", ip: ip("10.0.2.9") },
        ],
      },
      /two clients/,
    ],
  ] as [Partial<DhcpServerConfig>, RegExp][])("refuses %o", (patch, message) => {
    expect(() => resolveDhcpConfig({ ...base, ...patch })).toThrow(message);
  });

  test("static leases are indexed both ways by canonical MAC", () => {
    const r = resolveDhcpConfig({
      ...base,
      staticLeases: [{ mac: "52-54-00-AA-BB-CC", ip: ip("10.0.2.100"), hostname: "db" }],
    });
    expect(r.staticByMac.get("52:54:00:aa:bb:cc")).toEqual({ ip: ip("10.0.2.100"), hostname: "db" });
    expect(r.staticByIp.get(ip("10.0.2.100"))).toBe("52:54:00:aa:bb:cc");
  });

  test("sname fits 63 characters", () => {
    expect(fitsSname("x".repeat(63))).toBe(true);
    expect(fitsSname("x".repeat(64))).toBe(false);
  });
});
