import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { DeadlineQueue } from "../../../src/stack/deadline-queue.js";

describe("DeadlineQueue", () => {
  it("gives the earliest deadline and the keys that are due, once", () => {
    const q = new DeadlineQueue<string>();
    q.set("a", 30);
    q.set("b", 10);
    q.set("c", 20);
    expect(q.peek()).toBe(10);
    expect(q.due(20)).toEqual(["b", "c"]);
    expect(q.due(20)).toEqual([]);
    expect(q.peek()).toBe(30);
  });

  it("re-arming moves a key and disarming removes it", () => {
    const q = new DeadlineQueue<string>();
    q.set("a", 10);
    q.set("a", 50);
    q.set("b", 20);
    q.set("b", undefined);
    expect(q.peek()).toBe(50);
    expect(q.due(49)).toEqual([]);
    expect(q.due(50)).toEqual(["a"]);
    expect(q.size).toBe(0);
  });

  test.prop([
    fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.option(fc.integer({ min: 0, max: 1000 }))), {
      maxLength: 300,
    }),
  ])("agrees with a plain map after any sequence of set calls", (ops) => {
    const q = new DeadlineQueue<number>();
    const model = new Map<number, number>();
    for (const [key, at] of ops) {
      q.set(key, at ?? undefined);
      if (at === null) model.delete(key);
      else model.set(key, at);
    }
    const min = model.size === 0 ? undefined : Math.min(...model.values());
    expect(q.peek()).toBe(min);
    const due = q.due(500).sort((a, b) => a - b);
    expect(due).toEqual(
      [...model]
        .filter(([, at]) => at <= 500)
        .map(([k]) => k)
        .sort((a, b) => a - b),
    );
  });
});
