import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  addSums,
  adjustChecksum,
  adjustChecksum32,
  combineSums,
  foldSum,
  internetChecksum,
  onesSum,
  pseudoHeaderSum,
  swap16,
} from "../../../../src/stack/wire/checksum.js";
import { arbBytes, arbU16, arbU32, hex, placeAt } from "./arbitraries.js";

/** The textbook definition, one 16-bit word at a time, as an independent reference. */
function referenceSum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) {
    sum += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

describe("known vectors", () => {
  test("RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2", () => {
    const b = hex("0001 f203 f4f5 f6f7");
    expect(onesSum(b)).toBe(0xddf2);
    expect(internetChecksum(b)).toBe(0x220d);
  });

  test("a real IPv4 header: checksum 0xb861, and the whole header verifies", () => {
    const h = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
    const zeroed = Buffer.from(h);
    zeroed.writeUInt16BE(0, 10);
    expect(internetChecksum(zeroed)).toBe(0xb861);
    expect(onesSum(h)).toBe(0xffff);
    expect(internetChecksum(h)).toBe(0);
  });

  test("odd length pads the last byte with zero", () => {
    expect(onesSum(hex("01"))).toBe(0x0100);
    expect(onesSum(hex("0001 02"))).toBe(0x0201);
  });

  test("empty input sums to zero, checksum 0xffff", () => {
    expect(onesSum(Buffer.alloc(0))).toBe(0);
    expect(internetChecksum(Buffer.alloc(0))).toBe(0xffff);
  });

  test("end-around carry: ffff + 0001 folds to 0001", () => {
    expect(onesSum(hex("ffff 0001"))).toBe(0x0001);
    expect(foldSum(0x1ffff)).toBe(0x0001);
    expect(foldSum(0xffff)).toBe(0xffff);
    expect(foldSum(2 ** 40 + 5)).toBe(foldSum(foldSum(2 ** 40) + 5));
  });

  test("a UDP datagram captured from Linux verifies with its pseudo-header", () => {
    // 10.99.0.1:35410 → 10.99.0.2:9999 "udp payload!"
    const udp = hex("8a52 270f 0014 96c6 7564 7020 7061 796c 6f61 6421");
    const pseudo = pseudoHeaderSum(0x0a630001, 0x0a630002, 17, udp.length);
    expect(onesSum(udp, 0, udp.length, pseudo)).toBe(0xffff);
  });

  test("the bounds are clamped to the buffer", () => {
    const b = hex("0102 0304");
    expect(onesSum(b, -5, 100)).toBe(onesSum(b));
  });
});

describe("properties", () => {
  test.prop([arbBytes(3000), fc.integer({ min: 0, max: 7 })])(
    "the fast sum equals the reference at every alignment",
    (bytes, offset) => {
      const b = placeAt(bytes, offset);
      expect(onesSum(b)).toBe(referenceSum(b));
    },
  );

  test.prop([arbBytes(600), fc.nat(), fc.nat()])("sums of sub-ranges equal the reference", (b, x, y) => {
    const start = x % (b.length + 1);
    const end = start + (y % (b.length - start + 1));
    expect(onesSum(b, start, end)).toBe(referenceSum(b.subarray(start, end)));
  });

  test("large buffers (64 KiB, every alignment) equal the reference", () => {
    const big = Buffer.alloc(65535 + 8);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + 13) & 0xff;
    for (let off = 0; off < 8; off++) {
      const b = big.subarray(off, off + 65535 - (off & 1));
      expect(onesSum(b)).toBe(referenceSum(b));
    }
    const ones = Buffer.alloc(65536, 0xff);
    expect(onesSum(ones)).toBe(0xffff);
  });

  test.prop([arbBytes(400), arbBytes(400)])("combineSums joins two adjacent pieces", (a, b) => {
    const whole = Buffer.concat([a, b]);
    expect(combineSums(onesSum(a), onesSum(b), a.length)).toBe(foldSum(onesSum(whole)));
  });

  test.prop([arbBytes(100), arbU16])("initial sums add like addSums", (b, initial) => {
    expect(onesSum(b, 0, b.length, initial)).toBe(addSums(onesSum(b), initial));
  });

  test.prop([arbBytes(200, 2).filter((b) => b.length % 2 === 0)])(
    "a message with its checksum filled in sums to 0xffff",
    (b) => {
      const msg = Buffer.concat([b, Buffer.alloc(2)]);
      msg.writeUInt16BE(internetChecksum(msg), b.length);
      expect(onesSum(msg)).toBe(0xffff);
      expect(internetChecksum(msg)).toBe(0);
    },
  );

  test.prop([arbBytes(100, 2), fc.nat(), arbU16])(
    "adjustChecksum equals recomputing after a 16-bit change",
    (bytes, where, value) => {
      const b = Buffer.from(bytes.length % 2 ? bytes.subarray(1) : bytes);
      const at = (where % (b.length / 2)) * 2;
      const before = internetChecksum(b);
      const old = b.readUInt16BE(at);
      b.writeUInt16BE(value, at);
      // 0 and 0xffff are the same number in ones'-complement: compare as sums
      expect(adjustChecksum(before, old, value) % 0xffff).toBe(internetChecksum(b) % 0xffff);
    },
  );

  test.prop([arbBytes(100, 4), fc.nat(), arbU32])(
    "adjustChecksum32 equals recomputing after an address change",
    (bytes, where, value) => {
      const len = bytes.length - (bytes.length % 4);
      const b = Buffer.from(bytes.subarray(0, len));
      const at = (where % (len / 4)) * 4;
      const before = internetChecksum(b);
      const old = b.readUInt32BE(at);
      b.writeUInt32BE(value, at);
      expect(adjustChecksum32(before, old, value) % 0xffff).toBe(internetChecksum(b) % 0xffff);
    },
  );

  test.prop([arbU32, arbU32, fc.integer({ min: 0, max: 255 }), arbU16])(
    "pseudoHeaderSum equals the sum of the 12-byte pseudo-header",
    (src, dst, proto, len) => {
      const ph = Buffer.alloc(12);
      ph.writeUInt32BE(src, 0);
      ph.writeUInt32BE(dst, 4);
      ph[9] = proto;
      ph.writeUInt16BE(len, 10);
      expect(pseudoHeaderSum(src, dst, proto, len)).toBe(referenceSum(ph));
    },
  );

  test.prop([arbU16])("swap16 is its own inverse", (x) => {
    expect(swap16(swap16(x))).toBe(x);
  });
});
