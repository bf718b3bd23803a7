import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  seqAdd,
  seqGe,
  seqGt,
  seqInWindow,
  seqLe,
  seqLt,
  seqMax,
  seqMin,
  seqSub,
} from "../../../../src/stack/wire/seq.js";

const arbSeq = fc.integer({ min: 0, max: 0xffffffff });
/** A forward distance that keeps two numbers ordered: 1 .. 2^31 - 1. */
const arbAhead = fc.integer({ min: 1, max: 0x7fffffff });
const arbDelta = fc.integer({ min: -0x7fffffff, max: 0x7fffffff });

describe("wrap-around examples", () => {
  test("adding past 2^32 wraps to small numbers", () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xfffffff0, 0x20)).toBe(0x10);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
  });

  test("a number just past the wrap is after one just before it", () => {
    expect(seqLt(0xfffffff0, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xfffffff0)).toBe(true);
    expect(seqSub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqSub(0xfffffff0, 0x10)).toBe(-0x20);
    expect(seqMax(0xfffffff0, 0x10)).toBe(0x10);
    expect(seqMin(0xfffffff0, 0x10)).toBe(0xfffffff0);
  });

  test("equal numbers", () => {
    expect(seqLt(7, 7)).toBe(false);
    expect(seqLe(7, 7)).toBe(true);
    expect(seqGe(7, 7)).toBe(true);
    expect(seqGt(7, 7)).toBe(false);
    expect(seqSub(7, 7)).toBe(0);
  });

  test("a window that straddles the wrap", () => {
    expect(seqInWindow(0xffffffff, 0xfffffff0, 0x10)).toBe(true);
    expect(seqInWindow(0x0f, 0xfffffff0, 0x10)).toBe(true);
    expect(seqInWindow(0x10, 0xfffffff0, 0x10)).toBe(false);
    expect(seqInWindow(0xffffffef, 0xfffffff0, 0x10)).toBe(false);
    expect(seqInWindow(5, 5, 5)).toBe(false);
  });
});

describe("properties", () => {
  test.prop([arbSeq, arbAhead])("a is before a + n for every forward distance n < 2^31", (a, n) => {
    const b = seqAdd(a, n);
    expect(seqLt(a, b)).toBe(true);
    expect(seqLe(a, b)).toBe(true);
    expect(seqGt(b, a)).toBe(true);
    expect(seqGe(b, a)).toBe(true);
    expect(seqLt(b, a)).toBe(false);
    expect(seqGe(a, b)).toBe(false);
    expect(seqSub(b, a)).toBe(n);
    expect(seqSub(a, b)).toBe(-n);
  });

  test.prop([arbSeq, arbDelta])("seqSub undoes seqAdd; results are uint32", (a, d) => {
    const b = seqAdd(a, d);
    expect(b).toBeGreaterThanOrEqual(0);
    expect(b).toBeLessThanOrEqual(0xffffffff);
    expect(Number.isInteger(b)).toBe(true);
    expect(seqSub(b, a)).toBe(d);
    expect(seqAdd(a, seqSub(b, a))).toBe(b);
  });

  test.prop([arbSeq, arbSeq])("exactly one of <, =, > holds; Le/Ge agree with Lt/Gt", (a, b) => {
    const holds = [seqLt(a, b), a === b, seqGt(a, b)].filter(Boolean).length;
    expect(holds).toBe(1);
    expect(seqLe(a, b)).toBe(seqLt(a, b) || a === b);
    expect(seqGe(a, b)).toBe(seqGt(a, b) || a === b);
  });

  test.prop([arbSeq, arbDelta, arbDelta])("order is preserved under a common shift", (a, d, shift) => {
    const b = seqAdd(a, d);
    expect(seqLt(seqAdd(a, shift), seqAdd(b, shift))).toBe(seqLt(a, b));
  });

  test.prop([arbSeq, arbAhead])("max and min pick the later and the earlier", (a, n) => {
    const b = seqAdd(a, n);
    expect(seqMax(a, b)).toBe(b);
    expect(seqMax(b, a)).toBe(b);
    expect(seqMin(a, b)).toBe(a);
    expect(seqMin(b, a)).toBe(a);
  });

  test.prop([
    arbSeq,
    fc.integer({ min: 0, max: 0x7fffffff }),
    fc.integer({ min: -0x7fffffff, max: 0x7fffffff }),
  ])("x is in [start, start + len) exactly when 0 <= x - start < len", (start, len, off) => {
    const x = seqAdd(start, off);
    expect(seqInWindow(x, start, seqAdd(start, len))).toBe(off >= 0 && off < len);
  });
});
