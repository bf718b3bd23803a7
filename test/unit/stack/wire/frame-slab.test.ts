import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { FrameSlab, frameHeadroom, hasHeadroom } from "../../../../src/stack/wire/frame-slab.js";

describe("FrameSlab", () => {
  test.prop([fc.array(fc.integer({ min: 14, max: 3000 }), { minLength: 1, maxLength: 40 })])(
    "hands out frames back to back in a slab, each with free room before it, never overlapping",
    (lengths) => {
      const slab = new FrameSlab(8192);
      const frames = lengths.map((n) => slab.take(n));
      frames.forEach((f, i) => {
        expect(f.length).toBe(lengths[i]);
        expect(hasHeadroom(f)).toBe(true);
        f.fill(i & 0xff);
        const prev = frames[i - 1];
        if (prev && prev.buffer === f.buffer)
          expect(f.byteOffset).toBe(prev.byteOffset + prev.length + frameHeadroom);
      });
      // writing every frame left the others intact
      expect(frames.map((f, i) => f.every((b) => b === (i & 0xff)))).not.toContain(false);
    },
  );

  it("starts a new slab when one is full, and gives a large frame a slab of its own", () => {
    const slab = new FrameSlab(4096);
    const a = slab.take(3000);
    const b = slab.take(3000);
    expect(b.buffer).not.toBe(a.buffer);
    const big = slab.take(10_000);
    expect(big.length).toBe(10_000);
    expect(hasHeadroom(big)).toBe(true);
  });

  it("knows no other Buffer", () => {
    const pooled = Buffer.allocUnsafe(100);
    expect(hasHeadroom(pooled.subarray(10))).toBe(false);
    expect(hasHeadroom(Buffer.alloc(100).subarray(8))).toBe(false);
  });
});
