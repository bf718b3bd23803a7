/**
 * VdePort: its queue and counters with a fake poller; then real unix datagram sockets
 * (the native addon): a connected pair carries frames both ways, and a port joined
 * with libvdeplug's handshake to usernet's own VDE listener (vde-listener.ts) puts two
 * hubs on one LAN, rejoining when the switch comes back.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Hub } from "../../../src/hub/hub.js";
import { silentLogger } from "../../../src/log.js";
import {
  closeFd,
  connectUnixDgram,
  FdPoller,
  type NativeError,
  openUnixDgram,
} from "../../../src/native/binding.js";
import type { NetdevHandle } from "../../../src/ports/netdev-handle.js";
import { VdeListener } from "../../../src/ports/vde-listener.js";
import { openVdeJoin, type VdePoller, VdePort } from "../../../src/ports/vde-port.js";
import { describeWith } from "../native/native-env.js";
import { FakePort, waitFor } from "./fake-port.js";

class FakePoller implements VdePoller {
  room = Number.POSITIVE_INFINITY;
  written: Buffer[] = [];
  writableCb: (() => void) | undefined;
  onBatch: ((frames: Buffer[]) => void) | undefined;
  onError: ((err: NativeError) => void) | undefined;
  writeErrors = 0;
  closed = false;
  write(frames: readonly Buffer[]): number {
    const n = Math.min(frames.length, this.room);
    this.written.push(...frames.slice(0, n));
    this.room -= n;
    return n;
  }
  waitWritable(cb: () => void): void {
    this.writableCb = cb;
  }
  close(): void {
    this.closed = true;
  }
  stats() {
    return { writeErrors: this.writeErrors };
  }
}

const frame = (n: number, len = 60) => Buffer.alloc(len, n);

function fakePort(maxQueuedFrames = 4) {
  const poller = new FakePoller();
  const port = new VdePort(7, {
    name: "v0",
    kind: "vde",
    log: silentLogger,
    description: "test",
    maxQueuedFrames,
    poller: (_fd, onBatch, onError) => {
      poller.onBatch = onBatch;
      poller.onError = onError;
      return poller;
    },
  });
  return { port, poller };
}

describe("VdePort with a fake poller", () => {
  it("holds what the socket cannot take, up to its bound, and writes it when writable", () => {
    const { port, poller } = fakePort(4);
    poller.room = 2;
    port.send([frame(1), frame(2), frame(3), frame(4), frame(5), frame(6), frame(7)]);
    expect(poller.written.map((f) => f[0])).toEqual([1, 2]);
    expect(port.queuedFrames()).toBe(4);
    expect(port.stats().drops).toEqual({ "tx-queue-full": 1 });
    // queued frames go first: a new batch waits behind them
    port.send([frame(8)]);
    expect(port.stats().drops).toEqual({ "tx-queue-full": 2 });
    poller.room = Number.POSITIVE_INFINITY;
    poller.writableCb?.();
    expect(poller.written.map((f) => f[0])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(port.queuedFrames()).toBe(0);
    expect(port.stats().txFrames).toBe(6);
  });

  it("drops and counts frames it may not send, and datagrams that are no frame", () => {
    const { port, poller } = fakePort();
    const hub = new Hub(0);
    const peer = new FakePort("peer");
    hub.attach(port);
    hub.attach(peer);
    port.send([frame(1, 13), frame(2, 65536), frame(3)]);
    expect(poller.written.map((f) => f[0])).toEqual([3]);
    poller.onBatch?.([Buffer.alloc(0), frame(4, 10), frame(5, 70000), frame(6)]);
    expect(peer.received.map((f) => f[0])).toEqual([6]);
    expect(port.stats()).toMatchObject({
      rxFrames: 1,
      txFrames: 1,
      drops: { "frame-too-short": 2, "frame-too-long": 2, "empty-datagram": 1 },
    });
    poller.writeErrors = 3;
    expect(port.stats().drops["write-error"]).toBe(3);
  });

  it("stops on a read error: reports once, drops its queue and what comes later", () => {
    const failures: NativeError[] = [];
    const poller = new FakePoller();
    const port = new VdePort(7, {
      name: "v0",
      kind: "vde",
      log: silentLogger,
      description: "test",
      onFailure: (e) => failures.push(e),
      poller: (_fd, onBatch, onError) => {
        poller.onBatch = onBatch;
        poller.onError = onError;
        return poller;
      },
    });
    poller.room = 0;
    port.send([frame(1), frame(2)]);
    const err = Object.assign(new Error("gone"), { code: "ECONNRESET" }) as NativeError;
    poller.onError?.(err);
    poller.onError?.(err);
    port.send([frame(3)]);
    expect(failures).toHaveLength(1);
    expect(port.stats().drops).toEqual({ "read-error": 1, "socket-failed": 3 });
    expect(port.describe()).toContain("stopped (ECONNRESET)");
    port.close();
    expect(poller.closed).toBe(true);
  });
});

describeWith("VDE over real unix datagram sockets", ["addon"], () => {
  let dir = "";
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const tmp = () => {
    dir = mkdtempSync(join(tmpdir(), "unvde-"));
    return dir;
  };

  it("a connected pair of VdePorts carries frames both ways", async () => {
    const d = tmp();
    const a = openUnixDgram(join(d, "a"));
    const b = openUnixDgram(join(d, "b"));
    connectUnixDgram(a, join(d, "b"));
    connectUnixDgram(b, join(d, "a"));
    const hubA = new Hub(1);
    const hubB = new Hub(2);
    const pa = new VdePort(a, { name: "a", kind: "vde", log: silentLogger, description: "a" });
    const pb = new VdePort(b, { name: "b", kind: "vde", log: silentLogger, description: "b" });
    cleanups.push(
      () => pa.close(),
      () => pb.close(),
    );
    const fa = new FakePort("fa");
    const fb = new FakePort("fb");
    hubA.attach(pa);
    hubA.attach(fa);
    hubB.attach(pb);
    hubB.attach(fb);
    fa.sink?.([frame(1), frame(2, 1514)]);
    fb.sink?.([frame(3)]);
    await waitFor("frames both ways", () => fb.received.length === 2 && fa.received.length === 1);
    expect(fb.received.map((f) => [f[0], f.length])).toEqual([
      [1, 60],
      [2, 1514],
    ]);
    expect(pa.stats()).toMatchObject({ txFrames: 2, rxFrames: 1 });
  });

  it("a peer's short and oversized datagrams are counted and dropped; the port goes on", async () => {
    const d = tmp();
    const a = openUnixDgram(join(d, "a"));
    const b = openUnixDgram(join(d, "b"));
    connectUnixDgram(a, join(d, "b"));
    connectUnixDgram(b, join(d, "a"));
    const hub = new Hub(1);
    const port = new VdePort(a, { name: "a", kind: "vde", log: silentLogger, description: "a" });
    const peer = new FakePort("peer");
    hub.attach(port);
    hub.attach(peer);
    const raw = new FdPoller(b, "frames", () => undefined);
    cleanups.push(
      () => port.close(),
      () => raw.close(),
    );
    // 70,000 bytes: more than the read buffer (64 KiB + 256), which truncates it
    expect(
      raw.write([Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(70_000), Buffer.alloc(65_535, 7)]),
    ).toBe(4);
    await waitFor("the good frame", () => peer.received.length === 1);
    expect(peer.received[0]?.length).toBe(65_535);
    expect(port.stats().drops).toEqual({ "frame-too-short": 1, "frame-too-long": 1 });
  });

  it("a stranger cannot reach a connected socket (EPERM): only its peer's frames arrive", () => {
    const d = tmp();
    const a = openUnixDgram(join(d, "a"));
    const b = openUnixDgram(join(d, "b"));
    const stranger = openUnixDgram(null);
    cleanups.push(() => [a, b, stranger].forEach(closeFd));
    connectUnixDgram(a, join(d, "b"));
    expect(() => connectUnixDgram(stranger, join(d, "a"))).toThrow(/EPERM/);
  });

  it("joins usernet's own VDE listener with libvdeplug's handshake; rejoins when the switch is back", async () => {
    const d = tmp();
    const sw = join(d, "sw");
    const hubS = new Hub(1);
    const hubC = new Hub(2);
    const fs = new FakePort("fs");
    const fc = new FakePort("fc");
    hubS.attach(fs);
    hubC.attach(fc);
    let listener = await VdeListener.open({ id: "l0", dir: sw, hub: hubS, log: silentLogger });
    cleanups.push(() => listener.close());
    const joined: NetdevHandle = await openVdeJoin({ id: "j0", sock: sw, log: silentLogger }, hubC);
    cleanups.push(() => joined.close());
    expect(joined.ports().map((p) => p.name)).toEqual(["j0"]);
    await waitFor("the listener's client", () => listener.ports().length === 1);
    expect(listener.ports()[0]?.name).toBe("l0#1");
    expect(listener.describe()).toContain("1 client");

    fc.sink?.([frame(1)]);
    fs.sink?.([frame(2)]);
    await waitFor("frames across", () => fs.received.length === 1 && fc.received.length === 1);
    expect([fs.received[0]?.[0], fc.received[0]?.[0]]).toEqual([1, 2]);

    // the switch goes away: the joined port leaves its hub, and comes back with the switch
    await listener.close();
    await waitFor("the port to leave", () => joined.ports().length === 0);
    expect(hubC.ports().map((p) => p.name)).toEqual(["fc"]);
    expect(joined.describe()).toContain("rejoining");
    listener = await VdeListener.open({ id: "l0", dir: sw, hub: hubS, log: silentLogger });
    await waitFor("the rejoin", () => joined.ports().length === 1, 5000);
    fc.sink?.([frame(3)]);
    await waitFor("a frame after the rejoin", () => fs.received.length === 2);
    // its port closed by someone else (the API): it rejoins
    const before = joined.ports()[0];
    before?.close();
    await waitFor("a new port", () => joined.ports().length === 1 && joined.ports()[0] !== before, 5000);
    await joined.close();
    await waitFor("the listener to see it go", () => listener.ports().length === 0);
  });

  it("the first join fails with a message naming the switch", async () => {
    const d = tmp();
    await expect(
      openVdeJoin({ id: "j0", sock: join(d, "none"), log: silentLogger }, new Hub(0)),
    ).rejects.toThrow(/none/);
    await expect(openVdeJoin({ id: "j0", sock: d, log: silentLogger }, new Hub(0))).rejects.toThrow(
      /cannot join the VDE switch at .*ctl/,
    );
  });
});
