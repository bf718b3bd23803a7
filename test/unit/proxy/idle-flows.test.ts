import { describe, expect, it } from "vitest";
import { IdleFlows } from "../../../src/proxy/idle-flows.js";

const flow = (key: string, lastActive: number) => ({ key, lastActive });

describe("IdleFlows", () => {
  it("keeps flows in order of last activity: deadline, expiry and eviction follow it", () => {
    const t = new IdleFlows<{ key: string; lastActive: number }>(100, 2);
    const a = flow("a", 0);
    const b = flow("b", 10);
    t.add(a);
    t.add(b);
    expect(t.nextDeadline()).toBe(100);
    expect(t.victim()).toBe(a);
    expect(t.touch("a", 50)).toBe(a);
    expect(t.nextDeadline()).toBe(110);
    expect(t.victim()).toBe(b);
    expect(t.idle(109)).toEqual([]);
    expect(t.idle(150)).toEqual([b, a]);
  });

  it("a replaced flow is no longer held, and deleting it leaves the new one", () => {
    const t = new IdleFlows<{ key: string; lastActive: number }>(100, 8);
    const old = flow("k", 0);
    t.add(old);
    const fresh = flow("k", 5);
    t.add(fresh);
    expect(t.holds(old)).toBe(false);
    t.delete(old);
    expect(t.holds(fresh)).toBe(true);
    expect(t.victim()).toBeUndefined();
    expect(t.touch("missing", 1)).toBeUndefined();
  });
});
