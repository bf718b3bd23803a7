import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { SendBuffer } from "../../../../src/stack/tcp/send-buffer.js";

describe("SendBuffer", () => {
  it("takes only what fits and frees what is dropped", () => {
    const b = new SendBuffer(10);
    expect(b.push(Buffer.from("abcdefgh"))).toBe(8);
    expect(b.push(Buffer.from("ijkl"))).toBe(2);
    expect(b.free).toBe(0);
    expect(b.read(0, 10).toString()).toBe("abcdefghij");
    b.drop(3);
    expect(b.length).toBe(7);
    expect(b.read(0, 4).toString()).toBe("defg");
    expect(b.read(5, 100).toString()).toBe("ij");
    expect(b.read(7, 1).length).toBe(0);
  });

  it("keeps a large write as a view, without copying", () => {
    const b = new SendBuffer(1 << 20);
    const data = Buffer.alloc(4096, 7);
    b.push(data);
    const v = b.read(100, 1000);
    expect(v.buffer).toBe(data.buffer);
    expect(v.byteOffset).toBe(data.byteOffset + 100);
  });

  it("coalesces many one-byte writes", () => {
    const b = new SendBuffer(100_000);
    for (let i = 0; i < 50_000; i++) b.push(Buffer.from([i & 0xff]));
    expect(b.length).toBe(50_000);
    const all = b.read(0, 50_000);
    for (let i = 0; i < 50_000; i += 997) expect(all[i]).toBe(i & 0xff);
  });

  type Op =
    | { kind: "push"; n: number }
    | { kind: "drop"; n: number }
    | { kind: "read"; off: number; n: number };
  const arbOp: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("push" as const), n: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ kind: fc.constant("drop" as const), n: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({
      kind: fc.constant("read" as const),
      off: fc.integer({ min: 0, max: 6000 }),
      n: fc.integer({ min: 0, max: 3000 }),
    }),
  );

  test.prop([fc.integer({ min: 1, max: 8000 }), fc.array(arbOp, { maxLength: 200 })])(
    "behaves like a plain byte array",
    (capacity, ops) => {
      const b = new SendBuffer(capacity);
      let model: number[] = [];
      let next = 0;
      for (const op of ops) {
        if (op.kind === "push") {
          const data = Buffer.alloc(op.n);
          for (let i = 0; i < op.n; i++) data[i] = (next + i) & 0xff;
          const took = b.push(data);
          expect(took).toBe(Math.min(op.n, capacity - model.length));
          for (let i = 0; i < took; i++) model.push((next + i) & 0xff);
          next += took;
        } else if (op.kind === "drop") {
          b.drop(op.n);
          model = model.slice(op.n);
        } else {
          expect([...b.read(op.off, op.n)]).toEqual(model.slice(op.off, op.off + op.n));
        }
        expect(b.length).toBe(model.length);
      }
    },
  );
});
