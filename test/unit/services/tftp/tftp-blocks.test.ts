import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { type BlockSource, NetasciiBlocks, OctetBlocks } from "../../../../src/services/tftp/tftp-blocks.js";
import type { TftpFile } from "../../../../src/services/tftp/tftp-server.js";

function memFile(b: Buffer, reads: [number, number][] = []): TftpFile {
  return {
    size: b.length,
    read: async (o, n) => {
      reads.push([o, n]);
      return Buffer.from(b.subarray(o, o + n));
    },
    close() {},
  };
}

function toNetascii(b: Buffer): Buffer {
  const out: number[] = [];
  for (const c of b) {
    if (c === 0x0a) out.push(0x0d, 0x0a);
    else if (c === 0x0d) out.push(0x0d, 0x00);
    else out.push(c);
  }
  return Buffer.from(out);
}

/** Reads every block, `count` at a time, re-reading from `back` blocks earlier each time. */
async function readAll(src: BlockSource, count: number, back: number): Promise<Buffer[]> {
  const all: Buffer[] = [];
  let next = 1;
  for (let guard = 0; guard < 10_000; guard++) {
    const first = Math.max(1, next - back);
    const got = await src.blocks(first, count);
    expect(got.length).toBeGreaterThan(0);
    got.forEach((b, i) => {
      const n = first + i;
      if (n < next) expect(b).toEqual(all[n - 1]);
      else all.push(b);
    });
    next = first + got.length;
    const last = got[got.length - 1];
    if (last !== undefined && last.length < src.blockSize) return all;
    src.release(Math.max(1, next - back));
  }
  throw new Error("no final block");
}

const arbText = fc
  .array(fc.constantFrom(0x0a, 0x0d, 0x41, 0x00, 0xff), { maxLength: 300 })
  .map((a) => Buffer.from(a));

describe("tftp blocks", () => {
  test.prop([
    fc.uint8Array({ maxLength: 3000 }),
    fc.integer({ min: 8, max: 700 }),
    fc.integer({ min: 1, max: 9 }),
  ])("octet: full blocks, then one short (possibly empty) final block", async (a, bs, count) => {
    const data = Buffer.from(a);
    const blocks = await readAll(new OctetBlocks(memFile(data), bs), count, 0);
    expect(blocks.length).toBe(Math.floor(data.length / bs) + 1);
    expect(blocks.slice(0, -1).every((b) => b.length === bs)).toBe(true);
    expect(Buffer.concat(blocks)).toEqual(data);
  });

  test.prop([
    arbText,
    fc.integer({ min: 8, max: 40 }),
    fc.integer({ min: 1, max: 6 }),
    fc.integer({ min: 0, max: 3 }),
  ])(
    "netascii: the converted stream, cut into blocks, whatever is re-read",
    async (data, bs, count, back) => {
      const blocks = await readAll(new NetasciiBlocks(memFile(data), bs), count, Math.min(back, count - 1));
      const expected = toNetascii(data);
      expect(Buffer.concat(blocks)).toEqual(expected);
      expect(blocks.length).toBe(Math.floor(expected.length / bs) + 1);
      expect(blocks.slice(0, -1).every((b) => b.length === bs)).toBe(true);
    },
  );

  it("reads a window with one read", async () => {
    const reads: [number, number][] = [];
    const src = new OctetBlocks(memFile(Buffer.alloc(5000, 1), reads), 512);
    expect((await src.blocks(3, 4)).map((b) => b.length)).toEqual([512, 512, 512, 512]);
    expect(reads).toEqual([[1024, 2048]]);
    expect((await src.blocks(9, 4)).map((b) => b.length)).toEqual([512, 392]);
    expect(reads[1]).toEqual([4096, 904]);
    expect(await src.blocks(12, 4)).toEqual([]);
  });

  it("splits a CR LF pair across a block boundary", async () => {
    const src = new NetasciiBlocks(memFile(Buffer.from("abcdefg\nxyz")), 8);
    const [b1, b2] = await src.blocks(1, 2);
    expect(b1?.toString("latin1")).toBe("abcdefg\r");
    expect(b2?.toString("latin1")).toBe("\nxyz");
    // re-reading block 2 alone gives the same bytes
    expect((await src.blocks(2, 1))[0]?.toString("latin1")).toBe("\nxyz");
    src.release(3);
    expect(await src.blocks(2, 1)).toEqual([]);
  });

  it("ends a file that shrank after opening with a short block", async () => {
    const file: TftpFile = {
      size: 2000,
      read: async (o, n) => Buffer.alloc(Math.max(0, Math.min(n, 700 - o))),
      close() {},
    };
    const blocks = await new OctetBlocks(file, 512).blocks(1, 4);
    expect(blocks.map((b) => b.length)).toEqual([512, 188]);
  });
});
