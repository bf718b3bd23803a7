/**
 * The loader, and the FdPoller's batching, writes, backpressure and lifetime on a FIFO
 * (no root needed: a FIFO opened read-write is pollable and fills up like any fd).
 */
import { spawnSync } from "node:child_process";
import {
  closeSync,
  constants,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addonPath,
  closeFd,
  FdPoller,
  livePollers,
  loadNative,
  nativeConstants,
  nativeStatus,
  openTap,
  trimMemory,
  tryLoadNative,
} from "../../../src/native/binding.js";
import { describeWith, waitFor } from "./native-env.js";

describe("loader", () => {
  it("explains how to build a missing addon, naming npm install and node-gyp", () => {
    const r = tryLoadNative("/nonexistent/usernet_native.node");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ERR_USERNET_NATIVE_UNAVAILABLE");
    expect(r.error.message).toContain("/nonexistent/usernet_native.node is missing");
    expect(r.error.message).toContain("npm install");
    expect(r.error.message).toContain("npx node-gyp rebuild");
  });

  it("reports a broken addon file with the loader's reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "unnat-"));
    try {
      const bogus = join(dir, "usernet_native.node");
      writeFileSync(bogus, "not an ELF file");
      const r = tryLoadNative(bogus);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.message).toContain("failed to load");
        expect(r.error.message).toContain("npx node-gyp rebuild");
        expect(r.error.cause).toBeInstanceOf(Error);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("nativeStatus() agrees with loadNative() and never throws", () => {
    const s = nativeStatus();
    if (s.available) expect(() => loadNative()).not.toThrow();
    else expect(() => loadNative()).toThrow(s.reason);
  });
});

describeWith("native addon (no root)", ["addon"], () => {
  let dir: string;
  let n = 0;
  const fds: number[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "unnat-"));
  });
  afterAll(() => {
    for (const fd of fds) {
      try {
        closeSync(fd);
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** A FIFO opened read-write and non-blocking: reads and writes on one fd. */
  function fifo(): number {
    const p = join(dir, `f${n++}`);
    expect(spawnSync("mkfifo", [p]).status).toBe(0);
    return openSync(p, constants.O_RDWR | constants.O_NONBLOCK);
  }

  it("trimMemory gives freed malloc pages back (glibc) and never throws", () => {
    expect(typeof loadNative().trimMemory).toBe("function");
    // a few MiB malloc'ed and freed leave free pages inside the heap to release
    for (let i = 0; i < 64; i++) Buffer.allocUnsafeSlow(100 * 1024).fill(1);
    expect(typeof trimMemory()).toBe("boolean");
  });

  it("exposes the kernel's constants", () => {
    const c = nativeConstants();
    expect(loadNative().napiVersion).toBe(8);
    expect(c).toMatchObject({
      TUN_F_CSUM: 1,
      TUN_F_TSO4: 2,
      TUN_F_TSO6: 4,
      TUN_F_TSO_ECN: 8,
      VNET_HDR_LEN: 12,
      VIRTIO_NET_HDR_F_NEEDS_CSUM: 1,
      VIRTIO_NET_HDR_GSO_TCPV4: 1,
      VIRTIO_NET_HDR_LEN: 10,
      VIRTIO_NET_HDR_MRG_RXBUF_LEN: 12,
    });
  });

  it("checks arguments with TypeErrors and codes", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong types
    const anyTap = openTap as any;
    expect(() => anyTap(1, { vnetHdr: false })).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }),
    );
    expect(() => openTap("x".repeat(16), { vnetHdr: false })).toThrow(/too long/);
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong types
    expect(() => openTap("t", { vnetHdr: false, multiQueue: true as any })).toThrow(/multi-queue/);
    expect(() => new FdPoller(-1, "frames", () => {})).toThrow(
      expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }),
    );
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong types
    expect(() => new FdPoller(0, "bogus" as any, () => {})).toThrow(/kind must be/);
    expect(() => new FdPoller(0, "frames", () => {}, { vnetHdrLen: 11 as 12 })).toThrow(/0, 10 or 12/);
    expect(() => new FdPoller(0, "ping", () => {}, { vnetHdrLen: 12 })).toThrow(/"frames" only/);
    expect(() => new FdPoller(0, "frames", () => {}, { maxBatch: 0 })).toThrow(/maxBatch/);
  });

  it("refuses an fd that is not open, and one that cannot be polled, leaving it open", () => {
    const fd = fifo();
    closeSync(fd);
    expect(() => new FdPoller(fd, "frames", () => {})).toThrow(expect.objectContaining({ code: "EBADF" }));
    const file = openSync(join(dir, "regular"), "w");
    fds.push(file);
    expect(() => new FdPoller(file, "frames", () => {})).toThrow(/cannot be polled|uv_poll/);
    expect(() => fstatSync(file)).not.toThrow();
  });

  it("delivers what is readable in one batch of fresh Buffers per wake-up", async () => {
    const fd = fifo();
    const batches: Buffer[][] = [];
    const p = new FdPoller(fd, "frames", (b) => batches.push(b));
    try {
      expect(p.write([Buffer.from("hello")])).toBe(1);
      await waitFor(() => batches.length === 1, 2000, "first batch");
      expect(batches[0]?.map((b) => b.toString())).toEqual(["hello"]);
      const first = batches[0]?.[0] as Buffer;
      expect(p.write([Buffer.from("again")])).toBe(1);
      await waitFor(() => batches.length === 2, 2000, "second batch");
      const second = batches[1]?.[0] as Buffer;
      expect(second.toString()).toBe("again");
      expect(second.buffer).not.toBe(first.buffer); // never reused
      expect(first.toString()).toBe("hello");
      expect(p.stats()).toMatchObject({ batches: 2, packets: 2, bytes: 10, writes: 2, writeBytes: 10 });
      expect(livePollers()).toBeGreaterThan(0);
    } finally {
      p.close();
    }
  });

  it("stops at EAGAIN, counts it, and wakes the caller with waitWritable when drained", async () => {
    const fd = fifo();
    let got = 0;
    const p = new FdPoller(fd, "frames", (b) => {
      for (const x of b) got += x.length;
    });
    try {
      p.pause();
      const chunk = Buffer.alloc(16384, 7);
      const frames = Array.from({ length: 32 }, () => chunk);
      const wrote = p.write(frames); // a pipe holds 64 KiB
      expect(wrote).toBeGreaterThan(0);
      expect(wrote).toBeLessThan(32);
      expect(p.stats()).toMatchObject({ writeEagain: 1, writeErrors: 0, reading: false });
      let writable = 0;
      p.waitWritable(() => writable++);
      await new Promise((r) => setTimeout(r, 100));
      expect(writable).toBe(0);
      expect(got).toBe(0); // paused: nothing read
      p.resume();
      await waitFor(() => writable === 1 && got === wrote * chunk.length, 2000, "drain and writable");
      expect(p.write(frames.slice(wrote))).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(writable).toBe(1); // one-shot
    } finally {
      p.close();
    }
  });

  it("close() is idempotent, closes the fd, works inside the callback, and later calls fail clearly", async () => {
    const fd = fifo();
    let calls = 0;
    const p = new FdPoller(fd, "frames", () => {
      calls++;
      p.close();
    });
    p.write([Buffer.from("x")]);
    await waitFor(() => calls === 1, 2000, "callback");
    p.close();
    expect(p.stats().closed).toBe(true);
    expect(() => p.write([Buffer.from("y")])).toThrow(expect.objectContaining({ code: "ERR_POLLER_CLOSED" }));
    expect(() => p.resume()).toThrow(/closed/);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(1);
    expect(() => fstatSync(fd)).toThrow(expect.objectContaining({ code: "EBADF" }));
  });

  it("does not leak fds across many open/close cycles", async () => {
    const count = () => readdirSync("/proc/self/fd").length;
    const before = count();
    for (let i = 0; i < 50; i++) {
      const p = new FdPoller(fifo(), "frames", () => {});
      p.close();
    }
    await new Promise((r) => setImmediate(r));
    expect(count()).toBe(before);
  });

  it("frees every native poller once closed and collected, without growing memory", () => {
    const path = join(dir, `f${n++}`);
    expect(spawnSync("mkfifo", [path]).status).toBe(0);
    const script = `
      const fs = require("node:fs");
      const m = require(${JSON.stringify(addonPath)});
      const tick = () => new Promise((r) => setTimeout(r, 20));
      const round = async () => {
        for (let i = 0; i < 5000; i++) {
          const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
          const p = new m.FdPoller(fd, "frames", () => p.stats());
          p.close();
        }
        await tick(); gc(); await tick(); gc(); await tick();
      };
      (async () => {
        await round();
        const rss0 = process.memoryUsage().rss;
        for (let k = 0; k < 4; k++) await round();
        const grown = process.memoryUsage().rss - rss0;
        console.log(JSON.stringify({ live: m.livePollers(), grown }));
      })();
    `;
    const r = spawnSync(process.execPath, ["--expose-gc", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { live: number; grown: number };
    expect(out.live).toBe(0);
    expect(out.grown).toBeLessThan(20_000 * 1024 * 0.25); // well under 1 KiB per poller
  });

  it("closes open pollers when a worker thread ends (unref'd or exited), freeing them", () => {
    const path = join(dir, `f${n++}`);
    expect(spawnSync("mkfifo", [path]).status).toBe(0);
    const worker = (exit: boolean) => `
      const fs = require("node:fs");
      const m = require(${JSON.stringify(addonPath)});
      const open = () => fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      const p = new m.FdPoller(open(), "frames", () => {});
      ${exit ? "setTimeout(() => process.exit(0), 20);" : "p.unref();"}
      require("node:worker_threads").parentPort.postMessage(m.livePollers());
    `;
    const script = `
      const { Worker } = require("node:worker_threads");
      const m = require(${JSON.stringify(addonPath)});
      const fds = () => require("node:fs").readdirSync("/proc/self/fd").length;
      const runWorker = (code) => new Promise((resolve) => {
        let seen = -1;
        const w = new Worker(code, { eval: true });
        w.on("message", (x) => { seen = x; });
        w.on("exit", () => resolve(seen));
      });
      (async () => {
        await runWorker("0"); // the first worker opens process-wide fds of its own
        const before = fds();
        const a = await runWorker(${JSON.stringify(worker(false))});
        const b = await runWorker(${JSON.stringify(worker(true))});
        await new Promise((r) => setTimeout(r, 50));
        console.log(JSON.stringify({ a, b, live: m.livePollers(), leakedFds: fds() - before }));
      })();
    `;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ a: 1, b: 1, live: 0, leakedFds: 0 });
  });

  it("closeFd closes a descriptor and reports EBADF on a closed one", () => {
    const fd = fifo();
    closeFd(fd);
    expect(() => closeFd(fd)).toThrow(expect.objectContaining({ code: "EBADF", syscall: "close" }));
  });

  it("turns a throwing callback into an uncaught exception and keeps polling", () => {
    const path = join(dir, `f${n++}`);
    expect(spawnSync("mkfifo", [path]).status).toBe(0);
    const script = `
      const fs = require("node:fs");
      const m = require(${JSON.stringify(addonPath)});
      const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      let uncaught = 0, batches = 0;
      process.on("uncaughtException", (e) => { uncaught++; if (e.message !== "boom") process.exit(3); });
      const p = new m.FdPoller(fd, "frames", (b) => {
        batches++;
        if (batches === 1) throw new Error("boom");
        console.log(JSON.stringify({ uncaught, batches, data: b[0].toString(), stats: p.stats() }));
        p.close();
      });
      p.write([Buffer.from("one")]);
      setTimeout(() => p.write([Buffer.from("two")]), 100);
      setTimeout(() => process.exit(2), 5000).unref();
    `;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { uncaught: number; batches: number; data: string };
    expect(out).toMatchObject({ uncaught: 1, batches: 2, data: "two" });
  });
});
