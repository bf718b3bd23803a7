import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ReassemblyQueue } from "../../../../src/stack/tcp/reassembly-queue.js";
import { seqAdd } from "../../../../src/stack/wire/seq.js";

describe("ReassemblyQueue", () => {
  it("holds ranges past a hole and releases them once it fills", () => {
    const q = new ReassemblyQueue();
    q.insert(110, Buffer.from("klm"), 100);
    q.insert(105, Buffer.from("fgh"), 100);
    expect(q.bytes).toBe(6);
    expect(q.sackBlocks(4)).toEqual([
      { left: 105, right: 108 },
      { left: 110, right: 113 },
    ]);
    expect(q.take(100)).toEqual([]);
    // bytes 100..107 arrive in order elsewhere; the queue gives back the rest from 108
    expect(Buffer.concat(q.take(107)).toString()).toBe("h");
    expect(q.take(108)).toEqual([]);
    expect(Buffer.concat(q.take(110)).toString()).toBe("klm");
    expect(q.empty).toBe(true);
    expect(q.bytes).toBe(0);
  });

  it("merges adjacent ranges into one SACK block and works across the wrap", () => {
    const q = new ReassemblyQueue();
    const base = 0xfffffff0;
    q.insert(seqAdd(base, 10), Buffer.alloc(10), base);
    q.insert(seqAdd(base, 20), Buffer.alloc(10), base);
    expect(q.sackBlocks(4)).toEqual([{ left: seqAdd(base, 10), right: seqAdd(base, 30) }]);
    expect(q.bytes).toBe(20);
  });

  test.prop([
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.array(fc.tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 100 })), { maxLength: 40 }),
  ])("keeps each byte once and returns the stream intact", (rcvNxt, pieces) => {
    const stream = Buffer.alloc(600);
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 7) & 0xff;
    const q = new ReassemblyQueue();
    const held = new Set<number>();
    for (const [off, len] of pieces) {
      q.insert(seqAdd(rcvNxt, off), stream.subarray(off, off + len), rcvNxt);
      for (let i = off; i < off + len; i++) held.add(i);
      expect(q.bytes).toBe(held.size);
    }
    for (const blk of q.sackBlocks(4)) expect((blk.right - blk.left) >>> 0 > 0).toBe(true);
    // deliver byte 0 (never inserted, since offsets start at 1) and take the run after it
    let end = 1;
    while (held.has(end)) end++;
    const got = Buffer.concat(q.take(seqAdd(rcvNxt, 1)));
    expect(got.equals(stream.subarray(1, end))).toBe(true);
  });
});
