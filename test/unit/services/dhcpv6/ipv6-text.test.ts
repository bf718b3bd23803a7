import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ipv6ToString, parseIpv6, samePrefix } from "../../../../src/services/dhcpv6/ipv6-text.js";

const addr = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));

describe("IPv6 text", () => {
  test.prop([addr])("canonical text parses back", (a) => {
    expect(parseIpv6(ipv6ToString(a))).toEqual(a);
  });

  test.prop([fc.string({ maxLength: 50 })])("never throws", (s) => {
    parseIpv6(s);
  });

  it("writes RFC 5952 text", () => {
    const t = (s: string) => ipv6ToString(parseIpv6(s) as Buffer);
    expect(t("fec0:0:0:0:0:0:0:3")).toBe("fec0::3");
    expect(t("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(t("2001:0db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1");
    expect(t("::")).toBe("::");
    expect(t("::1")).toBe("::1");
    expect(t("64:ff9b::192.0.2.33")).toBe("64:ff9b::c000:221");
  });

  it("refuses what is not an address", () => {
    for (const s of [
      "",
      ":",
      "1:2:3:4:5:6:7",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "::g",
      "1.2.3.4",
      "fe80::1%eth0",
      "::1/64",
      "::1.2.3.256",
    ])
      expect(parseIpv6(s), s).toBeUndefined();
  });

  it("compares prefixes bit by bit", () => {
    const a = parseIpv6("fec0::1") as Buffer;
    expect(samePrefix(a, parseIpv6("fec0::ffff") as Buffer, 64)).toBe(true);
    expect(samePrefix(a, parseIpv6("fec1::") as Buffer, 15)).toBe(true);
    expect(samePrefix(a, parseIpv6("fec1::") as Buffer, 16)).toBe(false);
  });
});
