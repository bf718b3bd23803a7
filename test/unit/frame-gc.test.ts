import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  frameGcBytes,
  noteFrameBytes,
  quietMs,
  setScavenge,
  setTrim,
  trimAfterBytes,
} from "../../src/frame-gc.js";

describe("frame-gc", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    setScavenge(undefined);
    setTrim(undefined);
    vi.useRealTimers();
  });

  it("scavenges once per frameGcBytes of frames, counting from the last scavenge", () => {
    let runs = 0;
    setScavenge(() => runs++);
    noteFrameBytes(frameGcBytes - 1);
    expect(runs).toBe(0);
    noteFrameBytes(1);
    expect(runs).toBe(1);
    for (let i = 0; i < 127; i++) noteFrameBytes(frameGcBytes / 64);
    expect(runs).toBe(2);
    noteFrameBytes(frameGcBytes / 64);
    expect(runs).toBe(3);
  });

  it("does nothing without a scavenge (no --expose-gc) or a trim", () => {
    expect(() => noteFrameBytes(10 * frameGcBytes)).not.toThrow();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("trims once frames have been quiet for quietMs after a burst, after a full GC", () => {
    const calls: string[] = [];
    setScavenge(undefined, () => calls.push("gc"));
    setTrim(() => calls.push("trim"));
    // frames keep coming for 3 quiet periods: no trim
    for (let t = 0; t < 3 * quietMs; t += quietMs / 4) {
      noteFrameBytes(trimAfterBytes / 8);
      vi.advanceTimersByTime(quietMs / 4);
    }
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(2 * quietMs);
    expect(calls).toEqual(["gc", "trim"]);
    // one trim per quiet spell: nothing more without new frames
    vi.advanceTimersByTime(10 * quietMs);
    expect(calls).toEqual(["gc", "trim"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("does not trim after fewer than trimAfterBytes", () => {
    let trims = 0;
    setTrim(() => trims++);
    noteFrameBytes(trimAfterBytes - 1);
    vi.advanceTimersByTime(3 * quietMs);
    expect(trims).toBe(0);
    noteFrameBytes(1);
    vi.advanceTimersByTime(3 * quietMs);
    expect(trims).toBe(1);
  });
});
