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

  it("copies what it takes, so the caller may reuse its buffer at once", () => {
    const b = new SendBuffer(1 << 20);
    const data = Buffer.alloc(4096, 7);
    b.push(data);
    data.fill(0);
    expect(b.read(100, 1000).equals(Buffer.alloc(1000, 7))).toBe(true);
  });

  it("reads up to `contiguous` bytes as views of its ring, a wrapped range as a copy", () => {
    const b = new SendBuffer(16 * 1024);
    b.push(Buffer.alloc(12 * 1024, 1));
    b.drop(8 * 1024);
    b.push(Buffer.alloc(10 * 1024, 2)); // 4 KiB of 1s, 10 KiB of 2s, wrapping at 8 KiB
    const run = b.contiguous(0);
    expect(run).toBe(8 * 1024);
    expect(b.read(0, run).buffer).toBe(b.read(1, 1).buffer);
    const wrapped = b.read(4 * 1024 - 10, 8 * 1024);
    expect(wrapped.buffer).not.toBe(b.read(0, 1).buffer);
    expect([...wrapped.subarray(0, 12)]).toEqual([...Array(10).fill(1), 2, 2]);
    expect(wrapped.subarray(10).every((x) => x === 2)).toBe(true);
    expect(b.contiguous(run)).toBe(6 * 1024);
  });

  it("lets a small ring go once everything is acknowledged, a large one on release", () => {
    const b = new SendBuffer(1 << 20);
    b.push(Buffer.alloc(100_000, 3));
    const small = b.read(0, 1).buffer;
    b.drop(100_000);
    expect(b.length).toBe(0);
    b.push(Buffer.alloc(300_000, 4));
    const large = b.read(0, 1).buffer;
    expect(large).not.toBe(small);
    b.drop(300_000);
    b.push(Buffer.alloc(10, 5));
    expect(b.read(0, 1).buffer).toBe(large); // kept for the next burst
    b.release(); // something is held: kept
    expect(b.read(0, 10).equals(Buffer.alloc(10, 5))).toBe(true);
    b.drop(10);
    b.release();
    b.push(Buffer.alloc(10, 6));
    expect(b.read(0, 1).buffer).not.toBe(large);
  });

  it("holds a small answer in a slice of Node's buffer pool, not in memory of its own", () => {
    const b = new SendBuffer(1 << 20);
    b.push(Buffer.from("response"));
    expect(b.read(0, 8).buffer.byteLength).toBe(Buffer.poolSize);
    b.push(Buffer.alloc(4000, 1)); // grows to a ring of its own, the bytes kept in order
    expect(b.read(0, 8).toString()).toBe("response");
    expect(b.read(0, 8).buffer.byteLength).toBeGreaterThanOrEqual(16 * 1024);
    expect(b.length).toBe(4008);
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

  test.prop([fc.integer({ min: 1, max: 40_000 }), fc.array(arbOp, { maxLength: 200 })])(
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
          data.fill(0xee); // the buffer copied what it took
          expect(took).toBe(Math.min(op.n, capacity - model.length));
          for (let i = 0; i < took; i++) model.push((next + i) & 0xff);
          next += took;
        } else if (op.kind === "drop") {
          b.drop(op.n);
          model = model.slice(op.n);
        } else {
          expect([...b.read(op.off, op.n)]).toEqual(model.slice(op.off, op.off + op.n));
          const run = b.contiguous(op.off);
          expect(run).toBeLessThanOrEqual(Math.max(0, model.length - op.off));
          if (op.off < model.length) expect(run).toBeGreaterThan(0);
        }
        expect(b.length).toBe(model.length);
      }
    },
  );

  it("lends only a bulk transfer's ring, and only with room", () => {
    const b = new SendBuffer(1 << 20);
    b.push(Buffer.alloc(1000, 1));
    expect(b.lend(1, 1 << 20)).toBeUndefined(); // a 16 KiB ring: not a bulk transfer
    b.push(Buffer.alloc(300_000, 2));
    const view = b.lend(64 * 1024, 100_000);
    expect(view?.length).toBe(100_000);
    view?.fill(3);
    expect(b.commitLent(view as Buffer, 50_000)).toBe(50_000);
    expect(b.length).toBe(351_000);
    const tail = b.read(301_000, 50_000);
    expect(tail.buffer).toBe(view?.buffer); // read straight into the ring, no copy
    expect(tail.every((x) => x === 3)).toBe(true);
    b.push(Buffer.alloc((1 << 20) - 351_000 - 10_000, 4));
    expect(b.lend(64 * 1024, 1 << 20)).toBeUndefined(); // 10,000 bytes free
  });

  it("lends nothing from a full ring that could still grow", () => {
    const b = new SendBuffer(1 << 20);
    b.push(Buffer.alloc(256 * 1024, 1)); // a 256 KiB ring, full, in a 1 MiB buffer
    expect(b.free).toBe(768 * 1024);
    expect(b.lend(1, 1 << 20)).toBeUndefined();
    b.drop(100_000);
    expect(b.lend(1, 1 << 20)?.length).toBe(100_000); // wrapped: up to the first held byte
  });

  it("keeps the lent view where the held bytes end when everything is acknowledged meanwhile", () => {
    const b = new SendBuffer(1 << 20);
    b.push(Buffer.alloc(400_000, 1));
    const view = b.lend(1, 1000) as Buffer;
    b.drop(400_000);
    view.fill(9);
    expect(b.commitLent(view, 1000)).toBe(1000);
    const got = b.read(0, 1000);
    expect(got.buffer).toBe(view.buffer);
    expect(got.every((x) => x === 9)).toBe(true);
  });

  type LendOp = Op | { kind: "lend"; n: number; max: number; dropFirst: number };
  const arbLendOp: fc.Arbitrary<LendOp> = fc.oneof(
    fc.record({ kind: fc.constant("push" as const), n: fc.integer({ min: 0, max: 120_000 }) }),
    fc.record({ kind: fc.constant("drop" as const), n: fc.integer({ min: 0, max: 120_000 }) }),
    fc.record({
      kind: fc.constant("read" as const),
      off: fc.integer({ min: 0, max: 400_000 }),
      n: fc.integer({ min: 0, max: 3000 }),
    }),
    fc.record({
      kind: fc.constant("lend" as const),
      n: fc.integer({ min: 0, max: 120_000 }),
      max: fc.integer({ min: 1, max: 200_000 }),
      dropFirst: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400_000 })),
    }),
  );

  test.prop([fc.integer({ min: 300_000, max: 700_000 }), fc.array(arbLendOp, { maxLength: 60 })])(
    "with reads into lent space still behaves like a plain byte array",
    (capacity, ops) => {
      const b = new SendBuffer(capacity);
      let model: number[] = [];
      let next = 0;
      const fill = (view: Uint8Array, n: number) => {
        for (let i = 0; i < n; i++) view[i] = (next + i) & 0xff;
      };
      for (const op of ops) {
        if (op.kind === "push") {
          const data = Buffer.alloc(op.n);
          fill(data, op.n);
          const took = b.push(data);
          for (let i = 0; i < took; i++) model.push((next + i) & 0xff);
          next += took;
        } else if (op.kind === "drop") {
          b.drop(op.n);
          model = model.slice(op.n);
        } else if (op.kind === "read") {
          expect([...b.read(op.off, op.n)]).toEqual(model.slice(op.off, op.off + op.n));
        } else {
          const view = b.lend(1, op.max);
          if (view === undefined) continue;
          expect(view.length).toBeLessThanOrEqual(Math.min(op.max, capacity - model.length));
          // acknowledgments may arrive while the socket read is pending
          b.drop(op.dropFirst);
          model = model.slice(op.dropFirst);
          const n = Math.min(op.n, view.length);
          fill(view, n);
          expect(b.commitLent(view, n)).toBe(n);
          for (let i = 0; i < n; i++) model.push((next + i) & 0xff);
          next += n;
        }
        expect(b.length).toBe(model.length);
      }
      expect([...b.read(0, model.length)]).toEqual(model);
    },
    // hundreds of KiB modelled as a JS array per run: seconds alone, more beside the e2e suite
    120_000,
  );
});
