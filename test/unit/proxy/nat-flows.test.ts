import { describe, expect, it } from "vitest";
import { type IdleNatFlow, IdleNatFlows, NatFlows } from "../../../src/proxy/nat-flows.js";

type Flow = IdleNatFlow;
const flow = (key: string, lastActive: number, guest = 1): Flow => ({
  key,
  guest,
  lastActive,
  created: lastActive,
});

/** A table that records what it was asked to evict (and evicts it, as the NATs do). */
function table(maxFlows: number, maxFlowsPerGuest = maxFlows, idleTimeoutMs = 100) {
  const t = new IdleNatFlows<Flow>({ idleTimeoutMs, maxFlows, maxFlowsPerGuest });
  const evicted: Flow[] = [];
  const evict = (f: Flow) => {
    evicted.push(f);
    t.delete(f);
  };
  return { t, evicted, evict };
}

describe("NatFlows", () => {
  it("holds a flow until it is deleted or replaced, and deletes only the live one", () => {
    const t = new NatFlows<object, { key: object; created: number }>();
    const conn = {};
    const a = { key: conn, created: 0 };
    t.add(a);
    expect(t.holds(a)).toBe(true);
    expect(t.get(conn)).toBe(a);
    const b = { key: conn, created: 5 };
    t.add(b);
    expect(t.holds(a)).toBe(false);
    expect(t.delete(a)).toBe(false);
    expect(t.size).toBe(1);
    expect(t.delete(b)).toBe(true);
    expect(t.delete(b)).toBe(false);
    expect(t.size).toBe(0);
  });

  it("lists every flow with its age", () => {
    const t = new NatFlows<string, { key: string; created: number }>();
    t.add({ key: "a", created: 10 });
    t.add({ key: "b", created: 40 });
    expect(t.list(100, (f, ageMs) => `${f.key}:${ageMs}`)).toEqual(["a:90", "b:60"]);
  });
});

describe("IdleNatFlows", () => {
  it("keeps flows in order of last activity: deadline, expiry and eviction follow it", () => {
    const { t, evicted, evict } = table(2);
    const a = flow("a", 0);
    const b = flow("b", 10);
    t.add(a);
    t.add(b);
    expect(t.nextDeadline()).toBe(100);
    expect(t.touch("a", 50)).toBe(a);
    expect(t.nextDeadline()).toBe(110);
    expect(t.idle(109)).toEqual([]);
    expect(t.idle(150)).toEqual([b, a]);
    // the table is full: room for a third evicts the least recently active
    expect(t.room(2, evict)).toBe(true);
    expect(evicted).toEqual([b]);
    expect(t.size).toBe(1);
  });

  it("a replaced flow is no longer held, and deleting it leaves the new one", () => {
    const { t, evicted, evict } = table(8);
    const old = flow("k", 0);
    t.add(old);
    const fresh = flow("k", 5);
    t.add(fresh);
    expect(t.holds(old)).toBe(false);
    t.delete(old);
    expect(t.holds(fresh)).toBe(true);
    expect(t.room(1, evict)).toBe(true);
    expect(evicted).toEqual([]);
    expect(t.touch("missing", 1)).toBeUndefined();
  });

  it("refuses a guest at its bound without evicting anyone, and counts each flow back once", () => {
    const { t, evicted, evict } = table(3, 2);
    const a = flow("a", 0, 7);
    const b = flow("b", 1, 7);
    t.add(a);
    t.add(b);
    expect(t.room(7, evict)).toBe(false);
    expect(t.room(8, evict)).toBe(true);
    expect(evicted).toEqual([]);
    expect(t.delete(a)).toBe(true);
    expect(t.delete(a)).toBe(false);
    expect(t.room(7, evict)).toBe(true);
    // a replaced flow's count goes with it
    t.add(flow("b", 2, 7));
    expect(t.room(7, evict)).toBe(true);
    expect(t.limits).toEqual({ maxFlows: 3, maxFlowsPerGuest: 2 });
  });

  it("caps the per-guest bound at the table's", () => {
    expect(table(4, 10).t.limits).toEqual({ maxFlows: 4, maxFlowsPerGuest: 4 });
  });

  it("has no deadline when empty", () => {
    expect(table(1).t.nextDeadline()).toBeUndefined();
  });
});
