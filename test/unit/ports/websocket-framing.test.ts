import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  encodeFrames,
  minFrameLength,
  qemuMaxFrameLength,
} from "../../../src/ports/length-prefixed-frames.js";
import {
  type DecodedMessage,
  encodeWebsocketMessages,
  WebsocketFrameDecoder,
  type WebsocketFraming,
} from "../../../src/ports/websocket-framing.js";

const arbFrame = fc.uint8Array({ minLength: minFrameLength, maxLength: 300 }).map((a) => Buffer.from(a));
const arbFrames = fc.array(arbFrame, { maxLength: 20 });
const arbFraming = fc.constantFrom<WebsocketFraming>("raw", "qemu");
/** any message a peer may send: random bytes, binary or text */
const arbMessage = fc.record({
  data: fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
  binary: fc.boolean(),
});

/** cuts `buf` at the given offsets into messages */
function cut(buf: Buffer, cuts: number[]): Buffer[] {
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

function decodeAll(d: WebsocketFrameDecoder, messages: { data: Buffer; binary: boolean }[]) {
  const frames: Buffer[] = [];
  const drops: Record<string, number> = {};
  let error: string | undefined;
  for (const m of messages) {
    const r: DecodedMessage = d.push(m.data, m.binary);
    frames.push(...r.frames);
    for (const [k, n] of Object.entries(r.drops)) drops[k] = (drops[k] ?? 0) + (n ?? 0);
    error ??= r.error;
  }
  return { frames, drops, error };
}

describe("WebsocketFrameDecoder", () => {
  test.prop([arbFraming, fc.array(arbMessage, { maxLength: 30 })])(
    "random messages never throw, and every frame it gives is a plausible frame",
    (framing, messages) => {
      const d = new WebsocketFrameDecoder(framing);
      const r = decodeAll(d, messages);
      for (const f of r.frames) {
        expect(f.length).toBeGreaterThanOrEqual(minFrameLength);
        expect(f.length).toBeLessThanOrEqual(qemuMaxFrameLength);
      }
    },
  );

  test.prop([arbFrames])("raw: frames round-trip, one message each", (frames) => {
    const messages = encodeWebsocketMessages("raw", frames);
    expect(messages).toHaveLength(frames.length);
    const r = decodeAll(
      new WebsocketFrameDecoder("raw"),
      messages.map((data) => ({ data, binary: true })),
    );
    expect(r.frames).toEqual(frames);
    expect(r.drops).toEqual({});
  });

  test.prop([arbFrames, fc.array(fc.nat(), { maxLength: 10 })])(
    "qemu: frames round-trip however the stream is cut into messages",
    (frames, cuts) => {
      const [one] = encodeWebsocketMessages("qemu", frames);
      if (frames.length === 0) {
        expect(one).toBeUndefined();
        return;
      }
      const d = new WebsocketFrameDecoder("qemu");
      const r = decodeAll(
        d,
        cut(one as Buffer, cuts).map((data) => ({ data, binary: true })),
      );
      expect(r.frames).toEqual(frames);
      expect(r.error).toBeUndefined();
      expect(d.midFrame).toBe(false);
    },
  );

  test.prop([arbFrames.filter((f) => f.length > 0), fc.nat()])(
    "qemu: a truncated stream gives the frames before the cut and says it is mid-frame",
    (frames, at) => {
      const wire = encodeFrames(frames);
      const n = at % wire.length;
      const d = new WebsocketFrameDecoder("qemu");
      const r = decodeAll(d, [{ data: wire.subarray(0, n), binary: true }]);
      // the whole frames before the cut
      let end = 0;
      let whole = 0;
      for (const f of frames) {
        if (end + 4 + f.length > n) break;
        end += 4 + f.length;
        whole++;
      }
      expect(r.frames).toEqual(frames.slice(0, whole));
      expect(d.midFrame).toBe(n > end);
    },
  );

  it("raw: counts short, long and text messages and keeps going", () => {
    const d = new WebsocketFrameDecoder("raw", { maxFrameLength: 100 });
    expect(d.push(Buffer.alloc(13), true)).toEqual({ frames: [], drops: { "frame-too-short": 1 } });
    expect(d.push(Buffer.alloc(101), true)).toEqual({ frames: [], drops: { "frame-too-long": 1 } });
    expect(d.push(Buffer.from("ping:"), false)).toEqual({ frames: [], drops: { "text-message": 1 } });
    const f = Buffer.alloc(60, 7);
    expect(d.push(f, true)).toEqual({ frames: [f], drops: {} });
  });

  it("qemu: a text message does not disturb the byte stream", () => {
    const a = Buffer.alloc(60, 1);
    const wire = encodeFrames([a]);
    const d = new WebsocketFrameDecoder("qemu");
    expect(d.push(wire.subarray(0, 10), true).frames).toEqual([]);
    expect(d.push(Buffer.from("ping:"), false).drops).toEqual({ "text-message": 1 });
    expect(d.push(wire.subarray(10), true).frames).toEqual([a]);
  });

  it("qemu: an impossible length fails for good", () => {
    const d = new WebsocketFrameDecoder("qemu");
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(qemuMaxFrameLength + 1);
    expect(d.push(bad, true)).toMatchObject({ frames: [], drops: { "bad-length": 1 }, error: "bad-length" });
    expect(d.push(encodeFrames([Buffer.alloc(60)]), true)).toMatchObject({ frames: [], error: "bad-length" });
  });

  it("qemu: a short length is skipped and counted", () => {
    const d = new WebsocketFrameDecoder("qemu");
    const a = Buffer.alloc(60, 2);
    const short = Buffer.from([0, 0, 0, 3, 1, 2, 3]);
    expect(d.push(Buffer.concat([short, encodeFrames([a])]), true)).toEqual({
      frames: [a],
      drops: { "frame-too-short": 1 },
    });
  });

  it("encodes a qemu batch as one message and nothing as none", () => {
    const a = Buffer.alloc(60, 1);
    const b = Buffer.alloc(70, 2);
    expect(encodeWebsocketMessages("qemu", [a, b])).toEqual([encodeFrames([a, b])]);
    expect(encodeWebsocketMessages("qemu", [])).toEqual([]);
    expect(encodeWebsocketMessages("raw", [])).toEqual([]);
  });
});
