import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { guestNames, LocalNames, normaliseName } from "../../../../src/services/dns/local-names.js";

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

  it("keeps IPv6 addresses of configured names beside their IPv4 ones", () => {
    const t = new LocalNames([["host.usernet.internal", "10.0.2.2"]]);
    expect(t.set6("HOST.usernet.internal", "fec0::2")).toBe(true);
    expect(t.set6("bad name", "fec0::2")).toBe(false);
    expect(t.set6("ok", "10.0.2.2")).toBe(false);
    expect(t.lookup("host.usernet.internal")).toBe(0x0a000202);
    expect(t.lookup6("host.usernet.internal.")?.toString("hex")).toBe("fec00000000000000000000000000002");
    expect(t.has("host.usernet.internal")).toBe(true);
    expect(t.entries()).toEqual([
      { name: "host.usernet.internal", address: "10.0.2.2" },
      { name: "host.usernet.internal", address: "fec0::2" },
    ]);
    // a guest cannot take a name that has only an IPv6 address either
    t.set6("v6name", "fec0::5");
    expect(t.syncGuests([{ owner: "52:54:00:00:00:01", hostname: "v6name", address: 0x0a00020f }])).toEqual([
      "reserved",
    ]);
    expect(t.delete("host.usernet.internal")).toBe(true);
    expect(t.has("host.usernet.internal")).toBe(false);
  });

  it("is bounded", () => {
    const t = new LocalNames([], 2);
    expect(t.set("a", 1)).toBe(true);
    expect(t.set("b", 2)).toBe(true);
    expect(t.set("c", 3)).toBe(false);
    expect(t.set("a", 4)).toBe(true); // replacing is fine when full
    expect(t.size).toBe(2);
  });

  describe("guests' names", () => {
    const gw = 0x0a000202;
    const a = { owner: "52:54:00:00:00:01", address: 0x0a00020f };
    const b = { owner: "52:54:00:00:00:02", address: 0x0a000210 };
    const configured = () => new LocalNames([["host.usernet.internal", gw]]);

    it("gives a guest its label, bare and under the domain", () => {
      const t = configured();
      expect(t.syncGuests([{ ...a, hostname: "Guest-1" }], "lab.test")).toEqual([]);
      expect(t.lookup("guest-1")).toBe(a.address);
      expect(t.lookup("GUEST-1.lab.test.")).toBe(a.address);
      expect(t.lookup("guest-1.other.test")).toBeUndefined();
    });

    it("refuses dots, bad characters and overlong labels, once per claim", () => {
      for (const bad of ["github.com", "host.usernet.internal", "a_b", "-a", "a-", "", "x".repeat(64), "é"]) {
        const t = configured();
        expect(t.syncGuests([{ ...a, hostname: bad }], "usernet.internal")).toEqual(["invalid"]);
        expect(t.syncGuests([{ ...a, hostname: bad }], "usernet.internal")).toEqual([]);
        expect(t.entries()).toEqual([{ name: "host.usernet.internal", address: "10.0.2.2" }]);
        expect(t.lookup("github.com")).toBeUndefined();
      }
      expect(guestNames("x".repeat(63))).toEqual(["x".repeat(63)]);
    });

    it("never overrides a configured name", () => {
      const t = configured();
      expect(t.syncGuests([{ ...a, hostname: "host" }], "usernet.internal")).toEqual(["reserved"]);
      expect(t.lookup("host.usernet.internal")).toBe(gw);
      expect(t.lookup("host")).toBeUndefined();
      expect(t.syncGuests([{ ...b, hostname: "localhost" }])).toEqual(["reserved"]);
      expect(t.lookup("localhost")).toBeUndefined();
    });

    it("keeps a name with its first holder while its lease lives, then lets the next have it", () => {
      const t = configured();
      expect(t.syncGuests([{ ...a, hostname: "web" }], "lab.test")).toEqual([]);
      const both = [
        { ...a, hostname: "web" },
        { ...b, hostname: "WEB" },
      ];
      expect(t.syncGuests(both, "lab.test")).toEqual(["taken"]);
      expect(t.syncGuests(both, "lab.test")).toEqual([]);
      expect(t.lookup("web")).toBe(a.address);
      expect(t.lookup("web.lab.test")).toBe(a.address);
      // a's lease is gone: its names go, b's standing claim is granted
      expect(t.syncGuests([{ ...b, hostname: "WEB" }], "lab.test")).toEqual([]);
      expect(t.lookup("web.lab.test")).toBe(b.address);
      // and all of it goes when b's lease does
      expect(t.syncGuests([], "lab.test")).toEqual([]);
      expect(t.lookup("web")).toBeUndefined();
      expect(t.entries()).toEqual([{ name: "host.usernet.internal", address: "10.0.2.2" }]);
    });

    it("follows a guest that renames itself or moves", () => {
      const t = configured();
      t.syncGuests([{ ...a, hostname: "one" }]);
      t.syncGuests([{ ...a, hostname: "two" }]);
      expect(t.lookup("one")).toBeUndefined();
      expect(t.lookup("two")).toBe(a.address);
      t.syncGuests([{ ...a, hostname: "two", address: 0x0a000211 }]);
      expect(t.lookup("two")).toBe(0x0a000211);
    });

    it("gives a guest nothing when only part of its names is free", () => {
      const t = new LocalNames([["db.lab.test", gw]]);
      expect(t.syncGuests([{ ...a, hostname: "db" }], "lab.test")).toEqual(["reserved"]);
      expect(t.lookup("db")).toBeUndefined();
    });

    it("lets a configured name displace a guest's", () => {
      const t = configured();
      t.syncGuests([{ ...a, hostname: "web" }], "lab.test");
      t.set("web.lab.test", gw);
      expect(t.lookup("web")).toBeUndefined();
      expect(t.lookup("web.lab.test")).toBe(gw);
    });

    it("keeps IPv6 addresses of configured names beside their IPv4 ones", () => {
      const t = new LocalNames([["host.usernet.internal", "10.0.2.2"]]);
      expect(t.set6("HOST.usernet.internal", "fec0::2")).toBe(true);
      expect(t.set6("bad name", "fec0::2")).toBe(false);
      expect(t.set6("ok", "10.0.2.2")).toBe(false);
      expect(t.lookup("host.usernet.internal")).toBe(0x0a000202);
      expect(t.lookup6("host.usernet.internal.")?.toString("hex")).toBe("fec00000000000000000000000000002");
      expect(t.has("host.usernet.internal")).toBe(true);
      expect(t.entries()).toEqual([
        { name: "host.usernet.internal", address: "10.0.2.2" },
        { name: "host.usernet.internal", address: "fec0::2" },
      ]);
      // a guest cannot take a name that has only an IPv6 address either
      t.set6("v6name", "fec0::5");
      expect(t.syncGuests([{ owner: "52:54:00:00:00:01", hostname: "v6name", address: 0x0a00020f }])).toEqual(
        ["reserved"],
      );
      expect(t.delete("host.usernet.internal")).toBe(true);
      expect(t.has("host.usernet.internal")).toBe(false);
    });

    it("is bounded", () => {
      const t = new LocalNames([], 3);
      expect(t.syncGuests([{ ...a, hostname: "a" }], "d")).toEqual([]);
      expect(
        t.syncGuests(
          [
            { ...a, hostname: "a" },
            { ...b, hostname: "b" },
          ],
          "d",
        ),
      ).toEqual(["full"]);
      expect(t.size).toBe(2);
    });

    fcTest.prop([
      fc.array(
        fc.record({ owner: fc.constantFrom("m1", "m2", "m3"), hostname: fc.string(), address: fc.nat() }),
      ),
    ])("never throws and never gives two guests one name", (claims) => {
      const t = configured();
      t.syncGuests(claims, "usernet.internal");
      expect(t.lookup("host.usernet.internal")).toBe(gw);
      const names = t.entries().map((e) => e.name);
      expect(new Set(names).size).toBe(names.length);
    });
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
