import { describe, expect, it } from "vitest";
import { isDomainName, isHost, parseDecimal, parseHostPort, parsePort } from "../../../src/cli/inet.js";

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
