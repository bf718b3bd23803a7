import { afterEach, describe, expect, it } from "vitest";
import { frameGcBytes, noteFrameBytes, setScavenge } from "../../src/frame-gc.js";

describe("frame-gc", () => {
  afterEach(() => setScavenge(undefined));

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

  it("does nothing without a scavenge (no --expose-gc)", () => {
    setScavenge(undefined);
    expect(() => noteFrameBytes(10 * frameGcBytes)).not.toThrow();
  });
});
