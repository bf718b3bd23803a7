import { isIPv6 } from "node:net";
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  ipToString,
  ipv4Mapped,
  ipv6FromKey,
  ipv6InPrefix,
  ipv6Join,
  ipv6Key,
  ipv6MulticastMac,
  ipv6Of,
  ipv6PrefixOf,
  ipv6ToString,
  ipv6WithSuffix,
  isIpv4Mapped,
  isIpv6LinkLocal,
  isIpv6Multicast,
  linkLocalOfMac,
  parseIp,
  parseIpv6,
  parseIpv6Cidr,
  sameIpv6,
  solicitedNode,
} from "../../../../src/stack/wire/ipv6-addr.js";
import { arbBytes, hex } from "./arbitraries.js";

const arbAddr = fc.oneof(
  arbBytes(16, 16),
  // addresses with zero runs, where "::" placement matters
  fc
    .array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xfec0, 0x2001), { minLength: 8, maxLength: 8 })
    .map((g) => ipv6Of(g)),
);

/** WHATWG URL serialisation of an IPv6 host is RFC 5952's form (but for IPv4-mapped tails). */
const whatwg = (a: Buffer) => new URL(`http://[${ipv6ToString(a)}]/`).hostname.slice(1, -1);

describe("IPv6 text", () => {
  test("formats the libslirp defaults and RFC 5952's examples", () => {
    expect(ipv6ToString(parseIpv6("fec0::2") as Buffer)).toBe("fec0::2");
    expect(ipv6ToString(ipv6Of([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]))).toBe("2001:db8::1:0:0:1");
    expect(ipv6ToString(ipv6Of([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]))).toBe("2001:db8:0:1:1:1:1:1");
    expect(ipv6ToString(ipv6Of([0x2001, 0xdb8, 0, 0, 1, 1, 0, 0]))).toBe("2001:db8::1:1:0:0");
    expect(ipv6ToString(ipv6Of([0, 0, 0, 0, 0, 0, 0, 0]))).toBe("::");
    expect(ipv6ToString(ipv6Of([0, 0, 0, 0, 0, 0, 0, 1]))).toBe("::1");
    expect(ipv6ToString(ipv6Of([0xfe80, 0, 0, 0, 0, 0, 0, 0]))).toBe("fe80::");
    expect(ipv6ToString(ipv4Mapped(0x0a00020f))).toBe("::ffff:10.0.2.15");
    expect(ipv6ToString(hex("20010DB8000000000000000000000ABC"))).toBe("2001:db8::abc");
  });

  test("parses RFC 4291 forms, rejects the rest", () => {
    expect(parseIpv6("::")).toEqual(Buffer.alloc(16));
    expect(parseIpv6("FEC0:0:0:0:0:0:0:3")).toEqual(ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 3]));
    expect(parseIpv6("::ffff:10.0.2.15")).toEqual(ipv4Mapped(0x0a00020f));
    expect(parseIpv6("64:ff9b::192.0.2.33")).toEqual(ipv6Of([0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221]));
    for (const bad of [
      "",
      ":",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "fe80::1%eth0",
      "[::1]",
      "::1.2.3",
      "::256.0.0.1",
      "1.2.3.4::",
      "g::1",
      " ::1",
    ]) {
      expect(parseIpv6(bad), bad).toBeUndefined();
    }
  });

  test.prop([arbAddr])("text round-trips and matches WHATWG's canonical form", (a) => {
    const s = ipv6ToString(a);
    expect(parseIpv6(s)).toEqual(a);
    expect(isIPv6(s)).toBe(true);
    if (!isIpv4Mapped(a)) expect(s).toBe(whatwg(a));
  });

  test.prop([fc.string({ maxLength: 50 })])("random text never throws", (s) => {
    const a = parseIpv6(s);
    if (a !== undefined) expect(isIPv6(s)).toBe(true);
  });

  test("either family", () => {
    expect(parseIp("10.0.2.2")).toBe(0x0a000202);
    expect(parseIp("fec0::2")).toEqual(ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 2]));
    expect(parseIp("fec0::2::")).toBeUndefined();
    expect(ipToString(0x0a000202)).toBe("10.0.2.2");
    expect(ipToString(ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 2]))).toBe("fec0::2");
  });

  test("CIDR", () => {
    expect(parseIpv6Cidr("fec0::/64")).toEqual({ address: parseIpv6("fec0::"), prefix: 64 });
    expect(parseIpv6Cidr("fec0::/129")).toBeUndefined();
    expect(parseIpv6Cidr("fec0::/064")).toBeUndefined();
    expect(parseIpv6Cidr("fec0::")).toBeUndefined();
  });
});

describe("IPv6 keys and comparisons", () => {
  test.prop([arbAddr, arbAddr])("keys are equal exactly when addresses are", (a, b) => {
    expect(ipv6Key(a) === ipv6Key(b)).toBe(a.equals(b));
    expect(sameIpv6(a, b)).toBe(a.equals(b));
    expect(ipv6FromKey(ipv6Key(a))).toEqual(a);
    expect(ipv6Key(a).length).toBe(8);
  });

  test("keys and comparisons read at an offset", () => {
    const frame = Buffer.concat([Buffer.alloc(3), ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 2])]);
    expect(ipv6Key(frame, 3)).toBe(ipv6Key(ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 2])));
    expect(sameIpv6(frame, ipv6Of([0xfec0, 0, 0, 0, 0, 0, 0, 2]), 3)).toBe(true);
  });
});

describe("IPv6 prefixes and special addresses", () => {
  test.prop([arbAddr, fc.integer({ min: 0, max: 128 })])("an address lies in its own prefix", (a, len) => {
    const p = ipv6PrefixOf(a, len);
    expect(ipv6InPrefix(a, p, len)).toBe(true);
    expect(ipv6Join(p, len, a)).toEqual(a);
  });

  test("prefix membership", () => {
    const fec0 = parseIpv6("fec0::") as Buffer;
    expect(ipv6InPrefix(parseIpv6("fec0::1234:5678") as Buffer, fec0, 64)).toBe(true);
    expect(ipv6InPrefix(parseIpv6("fec0:0:0:1::1") as Buffer, fec0, 64)).toBe(false);
    expect(ipv6InPrefix(parseIpv6("fec1::1") as Buffer, fec0, 15)).toBe(true);
    expect(ipv6InPrefix(parseIpv6("fec2::1") as Buffer, fec0, 15)).toBe(false);
    expect(() => ipv6InPrefix(fec0, fec0, 129)).toThrow(RangeError);
    expect(ipv6ToString(ipv6PrefixOf(parseIpv6("2001:db8:ffff::1") as Buffer, 36))).toBe("2001:db8:f000::");
    expect(ipv6ToString(ipv6WithSuffix(fec0, 2))).toBe("fec0::2");
  });

  test("link-local, multicast, solicited-node", () => {
    const mac = hex("525400123456");
    const ll = linkLocalOfMac(mac);
    expect(ipv6ToString(ll)).toBe("fe80::5054:ff:fe12:3456");
    expect(isIpv6LinkLocal(ll)).toBe(true);
    expect(isIpv6LinkLocal(parseIpv6("fec0::2") as Buffer)).toBe(false);
    const sn = solicitedNode(ll);
    expect(ipv6ToString(sn)).toBe("ff02::1:ff12:3456");
    expect(isIpv6Multicast(sn)).toBe(true);
    expect(ipv6MulticastMac(sn).toString("hex")).toBe("3333ff123456");
  });
});
