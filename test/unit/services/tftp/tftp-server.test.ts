import { createHash } from "node:crypto";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../../src/log.js";
import { decodeTftp, encodeTftp, type TftpPacket } from "../../../../src/services/tftp/tftp-packet.js";
import {
  type TftpEndpoint,
  type TftpFile,
  type TftpFiles,
  type TftpOpenError,
  type TftpSend,
  TftpServer,
  type TftpServerOptions,
} from "../../../../src/services/tftp/tftp-server.js";

// ---- an in-memory file tree ------------------------------------------------------------

interface Content {
  size: number;
  read(offset: number, length: number): Buffer;
}

const bufferContent = (b: Buffer): Content => ({
  size: b.length,
  read: (o, n) => Buffer.from(b.subarray(o, o + n)),
});

/** A large file that exists only as a function: a random 65521-byte pattern repeated. */
function patternContent(size: number, seed = 7): Content {
  const pattern = Buffer.alloc(65521);
  let x = seed;
  for (let i = 0; i < pattern.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    pattern[i] = x >>> 24;
  }
  return {
    size,
    read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; ) {
        const p = (offset + i) % pattern.length;
        i += pattern.copy(out, i, p, Math.min(pattern.length, p + n - i));
      }
      return out;
    },
  };
}

class MemoryFiles implements TftpFiles {
  readonly opened: string[] = [];
  openCount = 0;
  failReads = false;
  /** resolves pending opens when set */
  gate: Promise<void> | undefined;

  constructor(private readonly tree: Record<string, Content | TftpOpenError>) {}

  async open(name: string): Promise<TftpFile | { error: TftpOpenError }> {
    if (this.gate) await this.gate;
    const c = this.tree[name];
    if (c === undefined) return { error: "not-found" };
    if (typeof c === "string") return { error: c };
    this.opened.push(name);
    this.openCount++;
    let closed = false;
    return {
      size: c.size,
      read: async (o, n) => {
        if (closed) throw new Error("read after close");
        if (this.failReads) throw new Error("EIO");
        return c.read(o, n);
      },
      close: () => {
        if (closed) throw new Error("double close");
        closed = true;
        this.openCount--;
      },
    };
  }
}

// ---- helpers -----------------------------------------------------------------------------

const GUEST = 0x0a00020f; // 10.0.2.15
const A: TftpEndpoint = { addr: GUEST, port: 2000 };
const B: TftpEndpoint = { addr: 0x0a000210, port: 2000 };

function decoded(s: TftpSend): TftpPacket {
  const r = decodeTftp(s.payload);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}
const ops = (sends: TftpSend[]) => sends.map(decoded);
const rrq = (
  filename: string,
  options: Record<string, string> = {},
  mode: "octet" | "netascii" | "mail" = "octet",
) =>
  encodeTftp({
    op: "rrq",
    filename,
    mode,
    options: Object.entries(options).map(([name, value]) => ({ name, value })),
  });
const ack = (block: number) => encodeTftp({ op: "ack", block });

function setup(tree: Record<string, Content | TftpOpenError>, options: Partial<TftpServerOptions> = {}) {
  const files = new MemoryFiles(tree);
  const server = new TftpServer({
    files,
    logger: silentLogger,
    root: "/srv/tftp",
    ...options,
  });
  const send = (from: TftpEndpoint, serverPort: number, payload: Buffer, now = 0) =>
    server.handle({ client: from, serverPort, payload }, now);
  return { files, server, send };
}

const content = (n: number, seed = 1) => patternContent(n, seed);
const whole = (c: Content) => c.read(0, c.size);

/**
 * A receiving client in the style of RFC 7440: takes blocks in order, ACKs the last
 * in-order block after each batch of packets, ACKs 0 after an OACK; `lose` drops DATA
 * packets (by unwrapped block number and how often that block was seen).
 */
async function download(
  server: TftpServer,
  from: TftpEndpoint,
  filename: string,
  opts: {
    options?: Record<string, string>;
    mode?: "octet" | "netascii";
    lose?: (block: number, seen: number) => boolean;
    maxSteps?: number;
  } = {},
) {
  let now = 0;
  const chunks: Buffer[] = [];
  const hash = createHash("sha256");
  let bytes = 0;
  let expected = 1; // unwrapped
  let blksize = 512;
  let serverPort: number | undefined;
  let oack: Record<string, string> | undefined;
  const seen = new Map<number, number>();
  const wires: number[] = [];
  let done = false;
  let pending = await server.handle(
    { client: from, serverPort: 69, payload: rrq(filename, opts.options, opts.mode) },
    now,
  );
  for (let step = 0; step < (opts.maxSteps ?? 1_000_000) && !done; step++) {
    if (pending.length === 0) {
      const d = server.nextDeadline();
      if (d === undefined) throw new Error("transfer stalled with no deadline");
      now = d;
      pending = await server.onTimer(now);
      continue;
    }
    let reply: number | undefined;
    for (const s of pending) {
      // plain checks: expect() per packet would dominate the 80,000-block runs
      if (s.to.addr !== from.addr || s.to.port !== from.port) throw new Error("reply to the wrong client");
      if (serverPort === undefined) serverPort = s.fromPort;
      if (s.fromPort !== serverPort) throw new Error(`reply from port ${s.fromPort}, not ${serverPort}`);
      const p = decoded(s);
      if (p.op === "error") throw new Error(`server error ${p.code}: ${p.message}`);
      if (p.op === "oack") {
        oack = Object.fromEntries(p.options.map((o) => [o.name, o.value]));
        blksize = Number(oack.blksize ?? 512);
        if (expected === 1) reply = 0;
        continue;
      }
      if (p.op !== "data") throw new Error(`unexpected ${p.op}`);
      const unwrapped = expected - 1 + ((p.block - (expected - 1)) & 0xffff);
      const n = (seen.get(unwrapped) ?? 0) + 1;
      seen.set(unwrapped, n);
      if (opts.lose?.(unwrapped, n)) continue;
      if (p.block !== (expected & 0xffff) || done) continue;
      wires.push(p.block);
      hash.update(p.data);
      bytes += p.data.length;
      if (chunks.length < 64) chunks.push(Buffer.from(p.data));
      expected++;
      reply = p.block;
      if (p.data.length < blksize) done = true;
    }
    if (reply === undefined && expected > 1) reply = (expected - 1) & 0xffff;
    pending =
      reply === undefined || serverPort === undefined
        ? []
        : await server.handle({ client: from, serverPort, payload: ack(reply) }, now);
  }
  if (!done) throw new Error("download did not finish");
  return {
    sha256: hash.digest("hex"),
    bytes,
    blocks: expected - 1,
    oack,
    serverPort,
    wires,
    now,
    data: chunks,
  };
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

// ---- tests -------------------------------------------------------------------------------

describe("TftpServer: plain read requests", () => {
  it("sends DATA 1 at once, one block per ACK, ends on the short block", async () => {
    const file = content(1300);
    const { server, send, files } = setup({ "boot/pxelinux.0": file });
    const r1 = await send(A, 69, rrq("boot/pxelinux.0"));
    expect(r1).toHaveLength(1);
    const port = r1[0]?.fromPort ?? 0;
    expect(port).toBeGreaterThanOrEqual(49152);
    expect(r1[0]?.to).toEqual(A);
    expect(server.ownsPort(port)).toBe(true);
    expect(ops(r1)).toEqual([{ op: "data", block: 1, data: file.read(0, 512) }]);
    expect(ops(await send(A, port, ack(1)))).toEqual([{ op: "data", block: 2, data: file.read(512, 512) }]);
    const last = ops(await send(A, port, ack(2)));
    expect(last).toEqual([{ op: "data", block: 3, data: file.read(1024, 276) }]);
    expect(await send(A, port, ack(3))).toEqual([]);
    expect(server.ownsPort(port)).toBe(false);
    expect(server.nextDeadline()).toBeUndefined();
    expect(files.openCount).toBe(0);
    expect(server.stats()).toMatchObject({
      root: "/srv/tftp",
      active: 0,
      started: 1,
      completed: 1,
      blocksSent: 3,
      bytesSent: 1300,
    });
  });

  it("ends an exact multiple of the block size with an empty block", async () => {
    const file = content(1024);
    const { server } = setup({ f: file });
    const r = await download(server, A, "f");
    expect(r.blocks).toBe(3);
    expect(r.bytes).toBe(1024);
    expect(r.sha256).toBe(sha256(whole(file)));
  });

  it("sends an empty file as one empty block", async () => {
    const { server, send } = setup({ empty: bufferContent(Buffer.alloc(0)) });
    const r = await send(A, 69, rrq("empty"));
    expect(ops(r)).toEqual([{ op: "data", block: 1, data: Buffer.alloc(0) }]);
    expect(await send(A, r[0]?.fromPort ?? 0, ack(1))).toEqual([]);
    expect(server.stats().completed).toBe(1);
  });

  it("ignores duplicate ACKs with windowsize 1 (no Sorcerer's Apprentice)", async () => {
    const { send } = setup({ f: content(2000) });
    const port = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    expect(ops(await send(A, port, ack(1)))).toMatchObject([{ op: "data", block: 2 }]);
    expect(await send(A, port, ack(1))).toEqual([]);
    expect(ops(await send(A, port, ack(2)))).toMatchObject([{ op: "data", block: 3 }]);
  });

  it("gives each transfer its own port, in turn", async () => {
    const { send } = setup({ f: content(10) });
    const p1 = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    await send(A, p1, ack(1));
    const p2 = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    expect(p2).not.toBe(p1);
  });
});

describe("TftpServer: option negotiation", () => {
  it("answers REFERENCE.md's request: blksize 1432 → 1428, tsize, windowsize 8, timeout 3", async () => {
    const file = content(100_000);
    const { send } = setup({ f: file });
    const r = await send(A, 69, rrq("f", { blksize: "1432", tsize: "0", windowsize: "8", timeout: "3" }));
    expect(ops(r)).toEqual([
      {
        op: "oack",
        options: [
          { name: "blksize", value: "1428" },
          { name: "tsize", value: "100000" },
          { name: "windowsize", value: "8" },
          { name: "timeout", value: "3" },
        ],
      },
    ]);
    const port = r[0]?.fromPort ?? 0;
    const win = ops(await send(A, port, ack(0)));
    expect(win).toHaveLength(8);
    win.forEach((p, i) => {
      expect(p).toEqual({ op: "data", block: i + 1, data: file.read(i * 1428, 1428) });
    });
  });

  it("caps blksize by the MTU", async () => {
    const { send } = setup({ f: content(10) }, { mtu: 9000 });
    expect(ops(await send(A, 69, rrq("f", { blksize: "65464" })))).toEqual([
      { op: "oack", options: [{ name: "blksize", value: "8928" }] },
    ]);
    const big = setup({ f: content(10) }, { mtu: 65520 });
    expect(ops(await big.send(A, 69, rrq("f", { BLKSIZE: "65464" })))).toEqual([
      { op: "oack", options: [{ name: "blksize", value: "65448" }] },
    ]);
    const small = setup({ f: content(10) });
    expect(ops(await small.send(A, 69, rrq("f", { blksize: "8" })))).toEqual([
      { op: "oack", options: [{ name: "blksize", value: "8" }] },
    ]);
  });

  it("leaves out unknown, out-of-range, non-numeric and repeated options", async () => {
    const { send } = setup({ f: content(10) });
    const payload = encodeTftp({
      op: "rrq",
      filename: "f",
      mode: "octet",
      options: [
        { name: "multicast", value: "" },
        { name: "timeout", value: "0" },
        { name: "windowsize", value: "0" },
        { name: "blksize", value: "abc" },
        { name: "tsize", value: "0" },
        { name: "TSize", value: "0" },
        { name: "timeout", value: "256" },
      ],
    });
    expect(ops(await send(A, 69, payload))).toEqual([
      { op: "oack", options: [{ name: "tsize", value: "10" }] },
    ]);
  });

  it("sends DATA at once when no option is accepted", async () => {
    const { send } = setup({ f: content(10) });
    expect(ops(await send(A, 69, rrq("f", { utimeout: "100" })))).toMatchObject([{ op: "data", block: 1 }]);
  });

  it("caps windowsize at maxWindowSize and by bytes", async () => {
    const { send } = setup({ f: content(10) }, { maxWindowSize: 16 });
    expect(ops(await send(A, 69, rrq("f", { windowsize: "65535" })))).toEqual([
      { op: "oack", options: [{ name: "windowsize", value: "16" }] },
    ]);
    const b = setup({ f: content(10) }, { maxWindowBytes: 4096 });
    expect(ops(await b.send(A, 69, rrq("f", { windowsize: "64", blksize: "1024" })))).toEqual([
      {
        op: "oack",
        options: [
          { name: "windowsize", value: "4" },
          { name: "blksize", value: "1024" },
        ],
      },
    ]);
  });

  it("refuses a blksize below 8 with ERROR 8", async () => {
    const { server, send } = setup({ f: content(10) });
    expect(ops(await send(A, 69, rrq("f", { blksize: "4" })))).toEqual([
      { op: "error", code: 8, message: "blksize 4 is below 8" },
    ]);
    expect(server.stats().refused).toEqual({ "tftp-option-refused": 1 });
    expect(server.stats().active).toBe(0);
  });

  it("ends the transfer when the client refuses the OACK", async () => {
    const { server, send, files } = setup({ f: content(10) });
    const port = (await send(A, 69, rrq("f", { blksize: "1024" })))[0]?.fromPort ?? 0;
    expect(await send(A, port, encodeTftp({ op: "error", code: 8, message: "no" }))).toEqual([]);
    expect(server.ownsPort(port)).toBe(false);
    expect(files.openCount).toBe(0);
    expect(server.stats().abortedByClient).toBe(1);
  });

  it("downloads with negotiated options and checks the data", async () => {
    const file = content(200_003, 3);
    const { server } = setup({ f: file });
    const r = await download(server, A, "f", { options: { blksize: "1432", tsize: "0", windowsize: "8" } });
    expect(r.oack).toEqual({ blksize: "1428", tsize: "200003", windowsize: "8" });
    expect(r.sha256).toBe(sha256(whole(file)));
    expect(r.blocks).toBe(Math.floor(200_003 / 1428) + 1);
  });
});

describe("TftpServer: windows and loss", () => {
  it("re-sends from the block after the one ACKed when a block is lost", async () => {
    const file = content(10 * 512 + 100);
    const { server, send } = setup({ f: file });
    const r0 = await send(A, 69, rrq("f", { windowsize: "4" }));
    const port = r0[0]?.fromPort ?? 0;
    expect(ops(await send(A, port, ack(0))).map((p) => (p.op === "data" ? p.block : -1))).toEqual([
      1, 2, 3, 4,
    ]);
    // block 3 lost: the client ACKs 2, the window restarts at 3
    const w2 = ops(await send(A, port, ack(2)));
    expect(w2.map((p) => (p.op === "data" ? p.block : -1))).toEqual([3, 4, 5, 6]);
    expect(w2[0]).toEqual({ op: "data", block: 3, data: file.read(1024, 512) });
    expect(server.stats().retransmittedBlocks).toBe(2);
    // a duplicate of that ACK re-sends the window once, a third copy nothing
    expect(ops(await send(A, port, ack(2)))).toHaveLength(4);
    expect(await send(A, port, ack(2))).toEqual([]);
    expect(ops(await send(A, port, ack(6))).map((p) => (p.op === "data" ? p.block : -1))).toEqual([
      7, 8, 9, 10,
    ]);
    expect(ops(await send(A, port, ack(10))).map((p) => (p.op === "data" ? p.block : -1))).toEqual([11]);
    expect(await send(A, port, ack(11))).toEqual([]);
    expect(server.stats().completed).toBe(1);
  });

  it("ignores ACKs for blocks not sent yet", async () => {
    const { server, send } = setup({ f: content(5000) });
    const port = (await send(A, 69, rrq("f", { windowsize: "2" })))[0]?.fromPort ?? 0;
    await send(A, port, ack(0));
    expect(await send(A, port, ack(5))).toEqual([]);
    expect(server.stats().ignored["tftp-ack-out-of-window"]).toBe(1);
  });

  test.prop(
    [
      fc.integer({ min: 0, max: 12_000 }),
      fc.constantFrom(64, 100, 512, 1428),
      fc.integer({ min: 1, max: 16 }),
      fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 10 }),
      fc.boolean(),
    ],
    { numRuns: 40 },
  )("delivers every file intact whatever is lost", async (size, blksize, windowsize, lost, twice) => {
    const file = content(size, size);
    const { server, files } = setup({ f: file });
    const losses = new Set(lost);
    const r = await download(server, A, "f", {
      options: { blksize: `${blksize}`, windowsize: `${windowsize}` },
      lose: (block, seen) => losses.has(block) && seen <= (twice ? 2 : 1),
    });
    expect(r.sha256).toBe(sha256(whole(file)));
    expect(r.blocks).toBe(Math.floor(size / blksize) + 1);
    expect(server.stats().active).toBe(0);
    expect(files.openCount).toBe(0);
  });
});

describe("TftpServer: timers", () => {
  it("re-sends after the default timeout, gives up after 5 tries with an ERROR", async () => {
    const { server, send, files } = setup({ f: content(2000) });
    const first = await send(A, 69, rrq("f"), 1000);
    const port = first[0]?.fromPort ?? 0;
    expect(server.nextDeadline()).toBe(3000);
    expect(await server.onTimer(2999)).toEqual([]);
    for (let i = 1; i <= 5; i++) {
      const t = 1000 + 2000 * i;
      const again = await server.onTimer(t);
      expect(again).toEqual(first);
      expect(server.nextDeadline()).toBe(t + 2000);
    }
    const end = await server.onTimer(13000);
    expect(ops(end)).toEqual([{ op: "error", code: 0, message: "timed out" }]);
    expect(end[0]?.fromPort).toBe(port);
    expect(server.ownsPort(port)).toBe(false);
    expect(server.nextDeadline()).toBeUndefined();
    expect(files.openCount).toBe(0);
    expect(server.stats()).toMatchObject({ timedOut: 1, retransmittedBlocks: 5, active: 0 });
  });

  it("uses the negotiated timeout, for the OACK too, and progress resets the count", async () => {
    const { server, send } = setup({ f: content(5000) }, { retries: 2 });
    const oack = await send(A, 69, rrq("f", { timeout: "3" }), 0);
    const port = oack[0]?.fromPort ?? 0;
    expect(server.nextDeadline()).toBe(3000);
    expect(await server.onTimer(3000)).toEqual(oack);
    expect(await server.onTimer(6000)).toEqual(oack);
    const d1 = await send(A, port, ack(0), 7000);
    expect(ops(d1)).toMatchObject([{ op: "data", block: 1 }]);
    expect(server.nextDeadline()).toBe(10000);
    expect(await server.onTimer(10000)).toEqual(d1);
    expect(ops(await send(A, port, ack(1), 11000))).toMatchObject([{ op: "data", block: 2 }]);
    expect(ops(await server.onTimer(14000))).toMatchObject([{ op: "data", block: 2 }]);
    expect(ops(await server.onTimer(17000))).toMatchObject([{ op: "data", block: 2 }]);
    expect(ops(await server.onTimer(20000))).toEqual([{ op: "error", code: 0, message: "timed out" }]);
  });

  it("re-sends the whole window on a timeout", async () => {
    const { server, send } = setup({ f: content(5000) });
    const port = (await send(A, 69, rrq("f", { windowsize: "3" })))[0]?.fromPort ?? 0;
    const w = await send(A, port, ack(0), 100);
    expect(w).toHaveLength(3);
    expect(await server.onTimer(2100)).toEqual(w);
  });
});

describe("TftpServer: block number rollover", () => {
  it("serves a 40 MiB file at blksize 512, wrapping 65535 → 0", async () => {
    const size = 40 * 1024 * 1024 + 123;
    const file = content(size, 11);
    const { server } = setup({ big: file });
    const r = await download(server, A, "big");
    expect(r.blocks).toBe(Math.floor(size / 512) + 1);
    expect(r.wires[65534]).toBe(65535);
    expect(r.wires[65535]).toBe(0);
    expect(r.wires[65536]).toBe(1);
    expect(r.bytes).toBe(size);
    expect(r.sha256).toBe(sha256(file.read(0, size)));
    expect(server.stats().completed).toBe(1);
  }, 30_000);

  it("keeps windows straight across the wrap, with losses there", async () => {
    const size = 66_000 * 512;
    const file = content(size, 5);
    const { server } = setup({ big: file });
    const lost = new Set([65534, 65536, 65537]);
    const r = await download(server, A, "big", {
      options: { windowsize: "8" },
      lose: (b, seen) => lost.has(b) && seen === 1,
    });
    expect(r.blocks).toBe(66_001);
    expect(r.sha256).toBe(sha256(file.read(0, size)));
  }, 30_000);
});

describe("TftpServer: several clients", () => {
  it("runs concurrent transfers on separate ports", async () => {
    const f1 = content(3000, 1);
    const f2 = content(1500, 2);
    const { server, send } = setup({ one: f1, two: f2 });
    const a = await send(A, 69, rrq("one"));
    const b = await send(B, 69, rrq("two"));
    const pa = a[0]?.fromPort ?? 0;
    const pb = b[0]?.fromPort ?? 0;
    expect(pa).not.toBe(pb);
    expect(b[0]?.to).toEqual(B);
    const got = { a: [a], b: [b] };
    for (let block = 1; block <= 6; block++) {
      got.a.push(await send(A, pa, ack(block)));
      if (block <= 3) got.b.push(await send(B, pb, ack(block)));
    }
    const join = (xs: TftpSend[][]) =>
      Buffer.concat(xs.flat().flatMap((s) => (decoded(s).op === "data" ? [s.payload.subarray(4)] : [])));
    expect(join(got.a)).toEqual(whole(f1));
    expect(join(got.b)).toEqual(whole(f2));
    expect(server.stats()).toMatchObject({ completed: 2, active: 0 });
  });

  it("tells transfers of one address apart by port", async () => {
    const { server, send } = setup({ f: content(10) });
    await send(A, 69, rrq("f"));
    await send({ addr: A.addr, port: 2001 }, 69, rrq("f"));
    expect(server.stats().active).toBe(2);
  });

  it("refuses transfers beyond maxTransfers with ERROR 0", async () => {
    const { server, send } = setup({ f: content(10) }, { maxTransfers: 2 });
    await send(A, 69, rrq("f"));
    await send(B, 69, rrq("f"));
    const r = await send({ addr: 1, port: 1 }, 69, rrq("f"));
    expect(ops(r)).toEqual([{ op: "error", code: 0, message: "server busy, too many transfers" }]);
    expect(r[0]?.fromPort).toBe(69);
    expect(server.stats().active).toBe(2);
  });

  it("refuses a guest's transfers beyond maxTransfersPerGuest and still serves another guest", async () => {
    const { server, send } = setup({ f: content(10) }, { maxTransfers: 8, maxTransfersPerGuest: 2 });
    const first = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    await send({ ...A, port: 2001 }, 69, rrq("f"));
    const r = await send({ ...A, port: 2002 }, 69, rrq("f"));
    expect(ops(r)).toEqual([
      { op: "error", code: 0, message: "server busy, too many transfers from this client" },
    ]);
    expect(server.stats().refused).toEqual({ "tftp-busy-guest": 1 });
    expect(ops(await send(B, 69, rrq("f")))).toMatchObject([{ op: "data", block: 1 }]);
    expect(server.stats().active).toBe(3);
    expect(server.limits).toEqual({ maxTransfers: 8, maxTransfersPerGuest: 2 });
    // a transfer that ends gives the guest its room back
    expect(await send(A, first, encodeTftp({ op: "error", code: 0, message: "stop" }))).toEqual([]);
    expect(ops(await send({ ...A, port: 2003 }, 69, rrq("f")))).toMatchObject([{ op: "data", block: 1 }]);
  });

  it("answers a stranger at a transfer port with ERROR 5 and carries on", async () => {
    const { server, send } = setup({ f: content(1000) });
    const port = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    const r = await send(B, port, ack(1));
    expect(ops(r)).toEqual([{ op: "error", code: 5, message: "unknown transfer ID" }]);
    expect(r[0]?.to).toEqual(B);
    expect(r[0]?.fromPort).toBe(port);
    expect(await send(B, port, encodeTftp({ op: "error", code: 0, message: "" }))).toEqual([]);
    expect(ops(await send(A, port, ack(1)))).toMatchObject([{ op: "data", block: 2 }]);
    expect(server.stats().unknownTransferId).toBe(1);
  });

  it("answers an ACK to port 69 without a transfer with ERROR 5", async () => {
    const { send } = setup({});
    expect(ops(await send(A, 69, ack(3)))).toEqual([
      { op: "error", code: 5, message: "unknown transfer ID" },
    ]);
    expect(await send(A, 69, encodeTftp({ op: "error", code: 1, message: "x" }))).toEqual([]);
  });

  it("ignores a duplicate RRQ while the transfer runs", async () => {
    const { server, send, files } = setup({ f: content(1000) });
    const first = await send(A, 69, rrq("f"));
    expect(await send(A, 69, rrq("f"))).toEqual([]);
    expect(files.opened).toEqual(["f"]);
    expect(server.stats()).toMatchObject({ active: 1, ignored: { "tftp-duplicate-request": 1 } });
    expect(first).toHaveLength(1);
  });

  it("ignores a duplicate RRQ that arrives while the file is still opening", async () => {
    const { server, send, files } = setup({ f: content(1000) });
    let open = () => {};
    files.gate = new Promise((r) => {
      open = r;
    });
    const p1 = send(A, 69, rrq("f"));
    const p2 = send(A, 69, rrq("f"));
    open();
    const [r1, r2] = await Promise.all([p1, p2]);
    expect(ops(r1)).toMatchObject([{ op: "data", block: 1 }]);
    expect(r2).toEqual([]);
    expect(files.opened).toEqual(["f"]);
    expect(server.stats().active).toBe(1);
  });

  it("serves a client that keeps talking to port 69 from port 69", async () => {
    const file = content(1200);
    const { server, send } = setup({ f: file });
    const r1 = await send(A, 69, rrq("f"));
    expect(r1[0]?.fromPort).not.toBe(69);
    const r2 = await send(A, 69, ack(1));
    expect(r2[0]?.fromPort).toBe(69);
    expect(ops(r2)).toEqual([{ op: "data", block: 2, data: file.read(512, 512) }]);
    expect(ops(await send(A, 69, ack(2)))).toMatchObject([{ op: "data", block: 3 }]);
    expect(await send(A, 69, ack(3))).toEqual([]);
    expect(server.stats().completed).toBe(1);
  });

  it("sends everything from port 69 with replyFrom listen-port, like libslirp", async () => {
    const f = content(3000, 9);
    const { server } = setup({ f }, { replyFrom: "listen-port" });
    const [a, b] = await Promise.all([download(server, A, "f"), download(server, B, "f")]);
    expect(a.serverPort).toBe(69);
    expect(b.serverPort).toBe(69);
    expect(a.sha256).toBe(sha256(whole(f)));
    expect(b.sha256).toBe(sha256(whole(f)));
    expect(server.ownsPort(49152)).toBe(false);
  });
});

describe("TftpServer: refusals and errors", () => {
  it("refuses WRQ with ERROR 2 from port 69", async () => {
    const { server, send } = setup({});
    const r = await send(A, 69, encodeTftp({ op: "wrq", filename: "x", mode: "octet", options: [] }));
    expect(ops(r)).toEqual([{ op: "error", code: 2, message: "read-only server" }]);
    expect(r[0]?.fromPort).toBe(69);
    expect(server.stats().refused).toEqual({ "tftp-write-request": 1 });
  });

  it("answers missing files with ERROR 1 and forbidden ones with ERROR 2", async () => {
    const { server, send } = setup({ secret: "access-violation" });
    expect(ops(await send(A, 69, rrq("nope")))).toEqual([
      { op: "error", code: 1, message: "file not found" },
    ]);
    expect(ops(await send(A, 69, rrq("secret")))).toEqual([
      { op: "error", code: 2, message: "access violation" },
    ]);
    expect(server.stats().active).toBe(0);
    expect(server.ownsPort(49152)).toBe(false);
  });

  it("turns a throwing open into ERROR 2", async () => {
    const server = new TftpServer({
      files: {
        open: async () => {
          throw new Error("boom");
        },
      },
      logger: silentLogger,
    });
    const r = await server.handle({ client: A, serverPort: 69, payload: rrq("f") }, 0);
    expect(ops(r)).toEqual([{ op: "error", code: 2, message: "access violation" }]);
  });

  it("refuses mail mode and malformed requests with ERROR 4", async () => {
    const { server, send } = setup({ f: content(10) });
    expect(ops(await send(A, 69, rrq("f", {}, "mail")))).toEqual([
      { op: "error", code: 4, message: "mail mode not supported" },
    ]);
    const bad = Buffer.from("\x00\x01f\x00binary\x00", "latin1");
    expect(ops(await send(A, 69, bad))).toEqual([
      { op: "error", code: 4, message: "malformed request (tftp-unknown-mode)" },
    ]);
    expect(await send(A, 69, Buffer.from([0, 9, 1]))).toEqual([]);
    expect(await send(A, 69, Buffer.from([0]))).toEqual([]);
    expect(server.stats().refused).toEqual({ "tftp-mail-mode": 1, "tftp-unknown-mode": 1 });
    expect(server.stats().ignored).toEqual({ "tftp-unknown-opcode": 1, "tftp-truncated": 1 });
  });

  it("drops garbage at a transfer port without harming the transfer", async () => {
    const { server, send } = setup({ f: content(1000) });
    const port = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    expect(await send(A, port, Buffer.from([0, 4, 0]))).toEqual([]);
    expect(ops(await send(A, port, ack(1)))).toMatchObject([{ op: "data", block: 2 }]);
    expect(server.stats().ignored["tftp-truncated"]).toBe(1);
  });

  it("ends a transfer that receives DATA with ERROR 4", async () => {
    const { server, send, files } = setup({ f: content(1000) });
    const port = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    const r = await send(A, port, encodeTftp({ op: "data", block: 1, data: Buffer.from("x") }));
    expect(ops(r)).toEqual([{ op: "error", code: 4, message: "unexpected DATA in a read transfer" }]);
    expect(server.ownsPort(port)).toBe(false);
    expect(files.openCount).toBe(0);
  });

  it("ends a transfer on a read error with ERROR 0 and closes the file", async () => {
    const { server, send, files } = setup({ f: content(1000) });
    const port = (await send(A, 69, rrq("f")))[0]?.fromPort ?? 0;
    files.failReads = true;
    expect(ops(await send(A, port, ack(1)))).toEqual([{ op: "error", code: 0, message: "read error" }]);
    expect(server.ownsPort(port)).toBe(false);
    expect(files.openCount).toBe(0);
    expect(server.stats().failed).toBe(1);
  });

  it("refuses an unusable port range at construction", () => {
    expect(
      () =>
        new TftpServer({
          files: new MemoryFiles({}),
          logger: silentLogger,
          portRange: { first: 60, count: 5 },
        }),
    ).toThrow(RangeError);
  });
});

describe("TftpServer: netascii", () => {
  it("converts LF to CR LF and CR to CR NUL, and leaves out tsize", async () => {
    const { server, send } = setup({ t: bufferContent(Buffer.from("a\nb\rc\r\n")) });
    const r = await send(A, 69, rrq("t", { tsize: "0", blksize: "512" }, "netascii"));
    expect(ops(r)).toEqual([{ op: "oack", options: [{ name: "blksize", value: "512" }] }]);
    const d = await send(A, r[0]?.fromPort ?? 0, ack(0));
    expect(ops(d)).toEqual([{ op: "data", block: 1, data: Buffer.from("a\r\nb\r\0c\r\0\r\n") }]);
    expect(server.stats().active).toBe(1);
  });

  it("downloads a netascii file split at awkward places", async () => {
    const text = Buffer.from("\n\r".repeat(40) + "x\n".repeat(33));
    const expected = Buffer.from(
      text.toString("latin1").replace(/\r/g, "\r\0").replace(/\n/g, "\r\n"),
      "latin1",
    );
    const { server } = setup({ t: bufferContent(text) });
    const r = await download(server, A, "t", {
      mode: "netascii",
      options: { blksize: "9", windowsize: "3" },
      lose: (b, seen) => b % 5 === 0 && seen === 1,
    });
    expect(r.sha256).toBe(sha256(expected));
  });
});
