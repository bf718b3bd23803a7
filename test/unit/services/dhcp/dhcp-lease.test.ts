import { describe, expect, test } from "vitest";
import {
  type Lease,
  MemoryLeaseStore,
  parseLeases,
  sanitizeHostname,
} from "../../../../src/services/dhcp/dhcp-lease.js";

const lease: Lease = { mac: "52:54:00:12:34:56", ip: "10.0.2.15", state: "bound", expiresAt: 1000 };

describe("MemoryLeaseStore", () => {
  test("keeps copies, counts saves", () => {
    const store = new MemoryLeaseStore([lease]);
    const loaded = store.load();
    expect(loaded).toEqual([lease]);
    (loaded[0] as Lease).ip = "10.0.2.99";
    expect(store.load()).toEqual([lease]);
    const saved = [{ ...lease, state: "released" as const }];
    store.save(saved);
    (saved[0] as Lease).ip = "10.0.2.99";
    expect(store.load()).toEqual([{ ...lease, state: "released" }]);
    expect(store.saves).toBe(1);
  });
});

describe("parseLeases", () => {
  test("accepts well-formed leases and canonicalises them", () => {
    const r = parseLeases([{ ...lease, mac: "52:54:00:AB:CD:EF", clientId: "01ab", hostname: "vm" }]);
    expect(r).toEqual({
      leases: [{ ...lease, mac: "52:54:00:ab:cd:ef", clientId: "01ab", hostname: "vm" }],
      skipped: 0,
    });
  });

  test("skips what is not a lease", () => {
    expect(parseLeases("x")).toEqual({ leases: [], skipped: 0 });
    const bad = [
      null,
      [],
      { ...lease, ip: "10.0.2" },
      { ...lease, state: "expired" },
      { ...lease, expiresAt: Number.NaN },
      { ...lease, clientId: "01" },
      { ...lease, hostname: "" },
    ];
    expect(parseLeases(bad)).toEqual({ leases: [], skipped: bad.length });
  });
});

describe("sanitizeHostname", () => {
  test("printable ASCII up to 63 bytes, a trailing NUL tolerated", () => {
    expect(sanitizeHostname(Buffer.from("guest"))).toBe("guest");
    expect(sanitizeHostname(Buffer.from("guest\0"))).toBe("guest");
    expect(sanitizeHostname(Buffer.from("a b"))).toBeUndefined();
    expect(sanitizeHostname(Buffer.from("x".repeat(64)))).toBeUndefined();
    expect(sanitizeHostname(Buffer.alloc(0))).toBeUndefined();
    expect(sanitizeHostname(undefined)).toBeUndefined();
  });
});
