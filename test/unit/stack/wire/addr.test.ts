import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  BROADCAST_MAC,
  broadcastOf,
  inSubnet,
  ipv4ToString,
  isBroadcastMac,
  isIpv4Loopback,
  isIpv4Multicast,
  isMulticastMac,
  macToString,
  maskToPrefix,
  networkOf,
  parseCidr,
  parseIpv4,
  parseMac,
  prefixToMask,
} from "../../../../src/stack/wire/addr.js";
import { arbMac, arbU32 } from "./arbitraries.js";

describe("IPv4 text", () => {
  test("formats and parses the slirp defaults", () => {
    expect(ipv4ToString(0x0a00020f)).toBe("10.0.2.15");
    expect(ipv4ToString(0xffffffff)).toBe("255.255.255.255");
    expect(ipv4ToString(0)).toBe("0.0.0.0");
    expect(parseIpv4("10.0.2.2")).toBe(0x0a000202);
    expect(parseIpv4("255.255.255.255")).toBe(0xffffffff);
  });

  test.each([
    "",
    "10.0.2",
    "10.0.2.2.1",
    "10.0.2.256",
    "010.0.2.2",
    "10.0.2.-1",
    " 10.0.2.2",
    "a.b.c.d",
    "10..2.2",
    "1e1.0.0.0",
    // inet_aton would take these; usernet wants one spelling per address
    "10.2",
    "0x0a.0.2.2",
    "10.0.2.2.",
  ])("rejects %j", (s) => {
    expect(parseIpv4(s)).toBeUndefined();
  });

  test.prop([arbU32])("parse(format(a)) is a", (a) => {
    expect(parseIpv4(ipv4ToString(a))).toBe(a);
  });

  test.prop([fc.string()])("parse never throws and returns a uint32 or undefined", (s) => {
    const a = parseIpv4(s);
    if (a !== undefined) expect(a >>> 0).toBe(a);
  });
});

describe("MAC text", () => {
  test("formats lower case with colons; parses colons or dashes", () => {
    expect(macToString(Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]))).toBe("52:54:00:12:34:56");
    expect(macToString(Buffer.from([9, 0x52, 0x55, 0x0a, 0, 2, 2]), 1)).toBe("52:55:0a:00:02:02");
    expect(parseMac("52:55:0A:00:02:02")?.toString("hex")).toBe("52550a000202");
    expect(parseMac("52-54-00-12-34-56")?.toString("hex")).toBe("525400123456");
  });

  test.each([
    "",
    "52:54:00:12:34",
    "52:54:00:12:34:56:78",
    "52:54-00:12:34:56",
    "5254.0012.3456",
    "g2:54:00:12:34:56",
    "2:54:00:12:34:56",
  ])("rejects %j", (s) => {
    expect(parseMac(s)).toBeUndefined();
  });

  test.prop([arbMac])("parse(format(m)) is m", (m) => {
    expect(parseMac(macToString(m))?.equals(m)).toBe(true);
  });

  test("broadcast and multicast", () => {
    expect(isBroadcastMac(BROADCAST_MAC)).toBe(true);
    expect(isMulticastMac(BROADCAST_MAC)).toBe(true);
    expect(isBroadcastMac(Buffer.from("ffffffffff00", "hex"))).toBe(false);
    expect(isMulticastMac(Buffer.from("01005e000001", "hex"))).toBe(true);
    expect(isMulticastMac(Buffer.from("525400123456", "hex"))).toBe(false);
  });
});

describe("prefixes", () => {
  test("masks of common prefixes", () => {
    expect(prefixToMask(0)).toBe(0);
    expect(prefixToMask(8)).toBe(0xff000000);
    expect(prefixToMask(24)).toBe(0xffffff00);
    expect(prefixToMask(32)).toBe(0xffffffff);
    expect(() => prefixToMask(33)).toThrow(RangeError);
    expect(() => prefixToMask(-1)).toThrow(RangeError);
    expect(() => prefixToMask(1.5)).toThrow(RangeError);
  });

  test.prop([fc.integer({ min: 0, max: 32 })])("maskToPrefix inverts prefixToMask", (p) => {
    expect(maskToPrefix(prefixToMask(p))).toBe(p);
  });

  test("non-contiguous masks have no prefix", () => {
    expect(maskToPrefix(0xff00ff00)).toBeUndefined();
    expect(maskToPrefix(0x00ffffff)).toBeUndefined();
    expect(maskToPrefix(0xfffffffe)).toBe(31);
  });

  test("the slirp network 10.0.2.0/24", () => {
    const net = 0x0a000200;
    expect(inSubnet(0x0a00020f, net, 24)).toBe(true);
    expect(inSubnet(0x0a000302, net, 24)).toBe(false);
    expect(inSubnet(0xc0a80001, net, 0)).toBe(true);
    expect(networkOf(0x0a00020f, 24)).toBe(net);
    expect(broadcastOf(0x0a00020f, 24)).toBe(0x0a0002ff);
    expect(broadcastOf(0x0a00020f, 32)).toBe(0x0a00020f);
    expect(networkOf(0xffffffff, 0)).toBe(0);
  });

  test.prop([arbU32, arbU32, fc.integer({ min: 0, max: 32 })])(
    "inSubnet agrees with comparing network addresses",
    (a, b, p) => {
      expect(inSubnet(a, b, p)).toBe(networkOf(a, p) === networkOf(b, p));
      expect(inSubnet(broadcastOf(a, p), a, p)).toBe(true);
    },
  );

  test("CIDR text in both of QEMU's forms", () => {
    expect(parseCidr("10.0.2.0/24")).toEqual({ address: 0x0a000200, prefix: 24 });
    expect(parseCidr("10.0.2.0/255.255.255.0")).toEqual({ address: 0x0a000200, prefix: 24 });
    expect(parseCidr("192.168.76.0/0")).toEqual({ address: 0xc0a84c00, prefix: 0 });
    for (const bad of [
      "10.0.2.0",
      "10.0.2.0/33",
      "10.0.2.0/",
      "10.0.2.0/255.0.255.0",
      "10.0.2/24",
      "10.0.2.0/024",
    ]) {
      expect(parseCidr(bad)).toBeUndefined();
    }
  });

  test("address classes", () => {
    expect(isIpv4Multicast(0xe0000001)).toBe(true);
    expect(isIpv4Multicast(0xefffffff)).toBe(true);
    expect(isIpv4Multicast(0xf0000000)).toBe(false);
    expect(isIpv4Loopback(0x7f000001)).toBe(true);
    expect(isIpv4Loopback(0x0a000202)).toBe(false);
  });
});
