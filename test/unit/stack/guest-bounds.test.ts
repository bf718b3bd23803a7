import { describe, expect, it } from "vitest";
import { ByteBudget, GuestCounts, GuestIdentities } from "../../../src/stack/guest-bounds.js";

describe("GuestCounts", () => {
  it("says which bound one more would pass, and gives places back on release", () => {
    const c = new GuestCounts({ max: 3, perGuest: 2 });
    c.take(1);
    c.take(1);
    expect(c.over(1)).toBe("per-guest");
    expect(c.over(2)).toBeUndefined();
    c.take(2);
    expect(c.over(3)).toBe("total");
    c.release(1);
    expect(c.of(1)).toBe(1);
    expect(c.over(3)).toBeUndefined();
    // a release of what was never taken changes nothing
    c.release(9);
    expect(c.total).toBe(2);
  });
});

describe("GuestIdentities", () => {
  const mac = (n: number) => Buffer.from([0x52, 0x54, 0, 0, n >> 8, n & 0xff]);

  it("gives each (hub port, MAC) its own id, and the same id again", () => {
    const g = new GuestIdentities();
    const a = g.identify(1, mac(1), 0);
    const b = g.identify(1, mac(2), 0);
    const c = g.identify(2, mac(1), 0);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(Math.min(a, b, c)).toBeGreaterThan(0);
    expect(g.identify(1, mac(1), 5)).toBe(a);
    expect(g.identify(2, mac(1), 5)).toBe(c);
    expect(g.size).toBe(3);
  });

  it("caps identities per port: a MAC-cycling port is refused, counted, and other ports are not", () => {
    const g = new GuestIdentities({ maxPerPort: 4, idleMs: 60_000 });
    const ids = [];
    for (let i = 0; i < 1000; i++) ids.push(g.identify(1, mac(i), i));
    expect(ids.filter((id) => id > 0)).toHaveLength(4);
    expect(g.counters.refused).toBe(996);
    expect(g.identify(2, mac(5000), 1000)).toBeGreaterThan(0);
    // the first four keep their ids
    expect(g.identify(1, mac(0), 1000)).toBe(ids[0]);
  });

  it("lets a new MAC replace one silent for idleMs, with a fresh id never used before", () => {
    const g = new GuestIdentities({ maxPerPort: 2, idleMs: 1000 });
    const a = g.identify(1, mac(1), 0);
    const b = g.identify(1, mac(2), 500);
    expect(g.identify(1, mac(3), 900)).toBe(0);
    const c = g.identify(1, mac(3), 1000);
    expect(c).toBeGreaterThan(Math.max(a, b));
    expect(g.counters.replaced).toBe(1);
    // mac(1) was the one replaced: it comes back as someone new, if there is room
    expect(g.identify(1, mac(1), 1001)).toBe(0);
    expect(g.identify(1, mac(2), 1002)).toBe(b);
  });

  it("forgets a port's identities when it leaves; its MACs come back with new ids", () => {
    const g = new GuestIdentities();
    const a = g.identify(1, mac(1), 0);
    expect(g.portLeft(1)).toEqual([a]);
    expect(g.portLeft(1)).toEqual([]);
    const again = g.identify(1, mac(1), 1);
    expect(again).not.toBe(a);
    expect(again).toBeGreaterThan(0);
  });
});

describe("ByteBudget waiters", () => {
  it("wakes a guest's waiters once when that guest has room, never for another guest's release", () => {
    const b = new ByteBudget({ max: 1000, perGuest: 100 });
    let w1 = 0;
    let w2 = 0;
    b.take(1, 100);
    b.take(2, 150);
    b.wait(1, () => w1++);
    b.wait(2, () => w2++);
    b.release(2, 10);
    expect([w1, w2]).toEqual([0, 0]);
    b.release(2, 50);
    expect([w1, w2]).toEqual([0, 1]);
    b.release(1, 1);
    expect([w1, w2]).toEqual([1, 1]);
    b.release(1, 1);
    expect([w1, w2]).toEqual([1, 1]);
    expect(b.waiting).toBe(0);
  });

  it("wakes waiters held back by the overall bound on any guest's release", () => {
    const b = new ByteBudget({ max: 200, perGuest: 150 });
    let w1 = 0;
    let w3 = 0;
    b.take(1, 150);
    b.take(2, 60); // soft: past the overall bound by 10
    b.wait(1, () => w1++); // its own bound
    b.wait(3, () => w3++); // holds nothing: only the overall bound holds it back
    b.release(1, 10); // room of its own, none overall: it now waits for the overall bound
    expect([w1, w3]).toEqual([0, 0]);
    b.release(2, 20);
    expect([w1, w3]).toEqual([1, 1]);
    expect(b.waiting).toBe(0);
  });
});
