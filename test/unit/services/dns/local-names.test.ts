import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { LocalNames, normaliseName } from "../../../../src/services/dns/local-names.js";

describe("LocalNames", () => {
  it("looks names up without case and trailing dot", () => {
    const t = new LocalNames([["host.usernet.internal", "10.0.2.2"]]);
    expect(t.lookup("HOST.usernet.Internal.")).toBe(0x0a000202);
    expect(t.lookup("host.usernet.internal")).toBe(0x0a000202);
    expect(t.lookup("other.usernet.internal")).toBeUndefined();
    expect(t.entries()).toEqual([{ name: "host.usernet.internal", address: "10.0.2.2" }]);
  });

  it("changes at run time", () => {
    const t = new LocalNames();
    expect(t.set("Guest1", 0x0a00020f)).toBe(true);
    expect(t.lookup("guest1")).toBe(0x0a00020f);
    expect(t.set("guest1", "10.0.2.16")).toBe(true);
    expect(t.lookup("GUEST1")).toBe(0x0a000210);
    expect(t.delete("GUEST1.")).toBe(true);
    expect(t.lookup("guest1")).toBeUndefined();
    expect(t.delete("guest1")).toBe(false);
  });

  it("refuses what is not a host name or not IPv4, without throwing", () => {
    const t = new LocalNames();
    for (const bad of ["", ".", "a..b", "-a", "a-", "a b", "ä", "x".repeat(64), `${"a.".repeat(127)}a`]) {
      expect(t.set(bad, "10.0.2.2")).toBe(false);
    }
    expect(t.set("ok", "10.0.2")).toBe(false);
    expect(t.set("ok", -1)).toBe(false);
    expect(t.set("ok", 2 ** 32)).toBe(false);
    expect(t.set("ok", 1.5)).toBe(false);
    expect(t.size).toBe(0);
    expect(t.set("my_host-1.lan", "10.0.2.2")).toBe(true);
  });

  it("is bounded", () => {
    const t = new LocalNames([], 2);
    expect(t.set("a", 1)).toBe(true);
    expect(t.set("b", 2)).toBe(true);
    expect(t.set("c", 3)).toBe(false);
    expect(t.set("a", 4)).toBe(true); // replacing is fine when full
    expect(t.size).toBe(2);
  });

  fcTest.prop([fc.string(), fc.oneof(fc.string(), fc.double(), fc.integer())])(
    "never throws",
    (name, addr) => {
      const t = new LocalNames();
      t.set(name, addr);
      t.lookup(name);
      t.delete(name);
      normaliseName(name);
    },
  );
});
