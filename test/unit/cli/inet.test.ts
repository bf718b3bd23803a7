import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  formatIpv4,
  isDomainName,
  isHost,
  isMulticast,
  maskPrefix,
  parseDecimal,
  parseHostPort,
  parseIpv4,
  parsePort,
  prefixMask,
} from "../../../src/cli/inet.js";

describe("parseIpv4", () => {
  test.prop([fc.nat({ max: 0xffffffff })])("round-trips every address", (n) => {
    expect(parseIpv4(formatIpv4(n))).toBe(n);
  });

  it.each(["10.0.2.15", "0.0.0.0", "255.255.255.255"])("accepts %s", (s) => {
    expect(parseIpv4(s)).toBeDefined();
  });

  // inet_aton would take some of these; usernet wants one spelling per address
  it.each([
    "10.2",
    "10.0.2",
    "10.0.2.256",
    "010.0.2.15",
    "0x0a.0.2.2",
    " 10.0.2.2",
    "10.0.2.2.",
    "a.b.c.d",
    "",
  ])("refuses %j", (s) => {
    expect(parseIpv4(s)).toBeUndefined();
  });
});

describe("ports and numbers", () => {
  it("takes plain decimal ports in range", () => {
    expect(parsePort("22")).toBe(22);
    expect(parsePort("65535")).toBe(65535);
    expect(parsePort("0")).toBeUndefined();
    expect(parsePort("0", 0)).toBe(0);
    expect(parsePort("65536")).toBeUndefined();
    expect(parsePort("022")).toBeUndefined();
    expect(parsePort("0x16")).toBeUndefined();
    expect(parsePort("+22")).toBeUndefined();
    expect(parsePort("")).toBeUndefined();
  });

  it("bounds decimals", () => {
    expect(parseDecimal("16", 1, 20)).toBe(16);
    expect(parseDecimal("21", 1, 20)).toBeUndefined();
    expect(parseDecimal("99999999999", 0, 2 ** 40)).toBeUndefined();
    expect(parseDecimal("-1", -5, 5)).toBeUndefined();
  });
});

describe("names", () => {
  it.each(["example.com", "a", "my-host.lan", "_srv.x"])("domain %s", (s) =>
    expect(isDomainName(s)).toBe(true),
  );
  it.each(["", "b..com", "-a.com", "a-.com", "a.com.", "sp ace", "x".repeat(64)])("not a domain %j", (s) =>
    expect(isDomainName(s)).toBe(false),
  );
  it("treats all-numeric names as addresses", () => {
    expect(isHost("127.0.0.1")).toBe(true);
    expect(isHost("localhost")).toBe(true);
    expect(isHost("1.2.3.400")).toBe(false);
    expect(isHost("1234")).toBe(false);
  });
});

describe("masks", () => {
  test.prop([fc.integer({ min: 0, max: 32 })])("prefix ↔ mask", (p) => {
    expect(maskPrefix(prefixMask(p))).toBe(p);
  });
  it("refuses non-contiguous masks", () => {
    expect(maskPrefix(parseIpv4("255.0.255.0") ?? 0)).toBeUndefined();
  });
  it("knows multicast", () => {
    expect(isMulticast(parseIpv4("224.0.0.1") ?? 0)).toBe(true);
    expect(isMulticast(parseIpv4("239.255.255.255") ?? 0)).toBe(true);
    expect(isMulticast(parseIpv4("240.0.0.1") ?? 0)).toBe(false);
    expect(isMulticast(parseIpv4("223.255.255.255") ?? 0)).toBe(false);
  });
});

describe("parseHostPort", () => {
  it("splits at the last colon", () => {
    expect(parseHostPort("127.0.0.1:8010")).toEqual({ host: "127.0.0.1", port: 8010 });
    expect(parseHostPort(":8010")).toEqual({ host: "", port: 8010 });
    expect(parseHostPort("localhost:1")).toEqual({ host: "localhost", port: 1 });
  });
  it.each(["8010", "127.0.0.1:", "127.0.0.1:0", "1.2.3.400:5", "a b:5", "::1:80"])("refuses %j", (s) => {
    expect(parseHostPort(s)).toBeUndefined();
  });
});
