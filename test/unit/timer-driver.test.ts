/** The one timer of a user netdev, on a fake clock and vitest's fake timers. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/stack/clock.js";
import { TimerDriver } from "../../src/timer-driver.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A part with a settable deadline that records when it ran. */
function part(name: string, log: string[]) {
  const p = {
    at: undefined as number | undefined,
    nextDeadline: () => p.at,
    fire: (now: number) => {
      log.push(`${name}@${now}`);
      if (p.at !== undefined && p.at <= now) p.at = undefined;
    },
  };
  return p;
}

describe("TimerDriver", () => {
  it("fires at the earliest deadline, runs every part in order with one now, and re-arms", () => {
    const clock = new ManualClock(1000);
    const d = new TimerDriver(clock);
    const log: string[] = [];
    const a = part("a", log);
    const b = part("b", log);
    d.add(a);
    d.add(b);
    d.add({ fire: (now) => log.push(`idle@${now}`) });
    a.at = 1300;
    b.at = 1100;
    d.schedule();
    expect(d.nextDeadline()).toBe(1100);
    clock.advance(100);
    vi.advanceTimersByTime(100);
    expect(log).toEqual(["a@1100", "b@1100", "idle@1100"]);
    log.length = 0;
    clock.advance(200);
    vi.advanceTimersByTime(200);
    expect(log).toEqual(["a@1300", "b@1300", "idle@1300"]);
    expect(d.nextDeadline()).toBeUndefined();
  });

  it("re-arms only when a deadline moves earlier", () => {
    const clock = new ManualClock(0);
    const d = new TimerDriver(clock);
    const log: string[] = [];
    const a = part("a", log);
    d.add(a);
    a.at = 500;
    d.schedule();
    a.at = 900; // later: the armed timer stays, fires early and finds nothing due
    d.schedule();
    clock.advance(500);
    vi.advanceTimersByTime(500);
    expect(log).toEqual(["a@500"]);
    a.at = 100 + clock.now();
    d.schedule();
    expect(vi.getTimerCount()).toBe(1);
  });

  it("runs nothing after close", () => {
    const clock = new ManualClock(0);
    const d = new TimerDriver(clock);
    const log: string[] = [];
    const a = part("a", log);
    d.add(a);
    a.at = 10;
    d.schedule();
    d.close();
    vi.advanceTimersByTime(100);
    expect(log).toEqual([]);
    d.schedule();
    expect(vi.getTimerCount()).toBe(0);
  });
});
