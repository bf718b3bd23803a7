import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  encodeFrameChunks,
  encodeFrames,
  LengthPrefixedFrames,
  minFrameLength,
  qemuMaxFrameLength,
} from "../../../src/ports/length-prefixed-frames.js";
import { FrameSlab } from "../../../src/stack/wire/frame-slab.js";

const arbFrame = fc.uint8Array({ minLength: minFrameLength, maxLength: 300 }).map((a) => Buffer.from(a));
const arbFrames = fc.array(arbFrame, { maxLength: 20 });

/** one wire stream: header + frame for each */
const wire = (frames: readonly Buffer[]) => encodeFrames(frames);

/** cuts `buf` at the given (sorted, deduplicated) offsets */
function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

function decodeAll(chunks: Buffer[]) {
  const d = new LengthPrefixedFrames();
  const frames: Buffer[] = [];
  let tooShort = 0;
  let error: string | undefined;
  for (const c of chunks) {
    const r = d.push(c);
    frames.push(...r.frames);
    tooShort += r.tooShort;
    error ??= r.error;
  }
  return { frames, tooShort, error, midFrame: d.midFrame };
}

const header = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe("encodeFrames", () => {
  test("writes a 4-byte big-endian length before each frame, in one buffer", () => {
    const a = Buffer.alloc(20, 1);
    const b = Buffer.alloc(300, 2);
    const wire = encodeFrames([a, b]);
    expect(wire).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 20]), a, Buffer.from([0, 0, 1, 44]), b]));
  });
});

describe("encodeFrameChunks", () => {
  test.prop([
    fc.array(fc.tuple(fc.boolean(), arbFrame), { maxLength: 20 }),
    fc.integer({ min: 64, max: 4096 }),
  ])("gives the same bytes as encodeFrames, slab runs in place and uncopied", (spec, slabSize) => {
    const slab = new FrameSlab(slabSize);
    const frames = spec.map(([carved, f]) => {
      if (!carved) return f;
      const c = slab.take(f.length);
      f.copy(c);
      return c;
    });
    const chunks = encodeFrameChunks(frames);
    expect(Buffer.concat(chunks).equals(encodeFrames(frames))).toBe(true);
    // one chunk per run: consecutive carved frames of one slab share a chunk, a view
    // of that slab; consecutive other frames share a copy
    const slabs = new Set(frames.filter((_, i) => spec[i]?.[0]).map((f) => f.buffer));
    let runs = 0;
    let carvedRuns = 0;
    frames.forEach((f, i) => {
      const carved = spec[i]?.[0] === true;
      if (
        i === 0 ||
        carved !== (spec[i - 1]?.[0] === true) ||
        (carved && frames[i - 1]?.buffer !== f.buffer)
      ) {
        runs++;
        if (carved) carvedRuns++;
      }
    });
    expect(chunks.length).toBe(runs);
    expect(chunks.filter((c) => slabs.has(c.buffer)).length).toBe(carvedRuns);
  });

  it("writes lengths into the room before carved frames and hands out a view of the slab", () => {
    const slab = new FrameSlab();
    const a = slab.take(20).fill(1);
    const b = slab.take(30).fill(2);
    const [run, ...rest] = encodeFrameChunks([a, b]);
    expect(rest).toEqual([]);
    expect(run?.buffer).toBe(a.buffer);
    expect(run).toEqual(encodeFrames([Buffer.alloc(20, 1), Buffer.alloc(30, 2)]));
  });
});

describe("LengthPrefixedFrames", () => {
  test.prop([arbFrames, fc.array(fc.nat(), { maxLength: 30 })])(
    "any chunking of a stream reassembles the same frames",
    (frames, cuts) => {
      const r = decodeAll(chunk(wire(frames), cuts));
      expect(r.error).toBeUndefined();
      expect(r.tooShort).toBe(0);
      expect(r.frames).toEqual(frames);
      expect(r.midFrame).toBe(false);
    },
  );

  test.prop([arbFrames])("a frame inside one chunk is a view of that chunk, not a copy", (frames) => {
    const w = wire(frames);
    const r = new LengthPrefixedFrames().push(w);
    expect(r.frames).toEqual(frames);
    for (const f of r.frames) expect(f.buffer).toBe(w.buffer);
  });

  test.prop([
    fc.array(
      fc.oneof(
        arbFrame,
        fc.uint8Array({ maxLength: minFrameLength - 1 }).map((a) => Buffer.from(a)),
      ),
      { maxLength: 20 },
    ),
    fc.array(fc.nat(), { maxLength: 30 }),
  ])("frames shorter than 14 bytes are skipped and counted; the stream goes on", (mixed, cuts) => {
    const r = decodeAll(chunk(wire(mixed), cuts));
    expect(r.error).toBeUndefined();
    expect(r.frames).toEqual(mixed.filter((f) => f.length >= minFrameLength));
    expect(r.tooShort).toBe(mixed.filter((f) => f.length < minFrameLength).length);
  });

  test("a zero length is a short frame, not a stall", () => {
    const f = Buffer.alloc(60, 7);
    const r = new LengthPrefixedFrames().push(Buffer.concat([header(0), header(60), f]));
    expect(r).toEqual({ frames: [f], tooShort: 1 });
  });

  test("the largest frame QEMU accepts passes; one byte more is fatal", () => {
    const big = Buffer.alloc(qemuMaxFrameLength, 3);
    const ok = new LengthPrefixedFrames().push(Buffer.concat([header(big.length), big]));
    expect(ok.frames).toHaveLength(1);
    expect(ok.error).toBeUndefined();
    const d = new LengthPrefixedFrames();
    const bad = d.push(Buffer.concat([header(60), Buffer.alloc(60), header(qemuMaxFrameLength + 1)]));
    expect(bad.frames).toHaveLength(1);
    expect(bad.error).toBe("bad-length");
    // failure is permanent: nothing after it is trusted
    expect(d.push(Buffer.concat([header(60), Buffer.alloc(60)]))).toEqual({
      frames: [],
      tooShort: 0,
      error: "bad-length",
    });
  });

  test("the maximum is configurable", () => {
    const r = new LengthPrefixedFrames({ maxLength: 100 }).push(header(101));
    expect(r.error).toBe("bad-length");
  });

  test.prop([fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 })])(
    "random bytes never throw and only yield frames of legal length",
    (chunks) => {
      const d = new LengthPrefixedFrames();
      for (const c of chunks) {
        const r = d.push(Buffer.from(c));
        for (const f of r.frames) {
          expect(f.length).toBeGreaterThanOrEqual(minFrameLength);
          expect(f.length).toBeLessThanOrEqual(qemuMaxFrameLength);
        }
      }
    },
  );

  test("a header split byte by byte still decodes", () => {
    const f = Buffer.alloc(64, 9);
    const r = decodeAll(chunk(wire([f]), [1, 2, 3, 4, 5]));
    expect(r.frames).toEqual([f]);
  });
});
