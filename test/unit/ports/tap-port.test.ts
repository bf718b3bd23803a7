/**
 * TapPort: its queueing and counting with a fake device, then a real TAP inside a
 * test namespace against the kernel's ARP and ICMP (root only).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TapNetdevConfig } from "../../../src/config.js";
import { Hub } from "../../../src/hub/hub.js";
import type { FrameSink, Port, PortStats } from "../../../src/hub/port.js";
import { silentLogger } from "../../../src/log.js";
import type { NativeError } from "../../../src/native/binding.js";
import {
  decodeVnetHdr,
  noOffloadHdr,
  VnetFlags,
  VnetGso,
  vnetHdrBuffer,
} from "../../../src/native/vnet-hdr.js";
import { openTapNetdev, type TapNative, TapPort, type TapPortOptions } from "../../../src/ports/tap-port.js";
import { internetChecksum } from "../../../src/stack/wire/checksum.js";
import { markOffload, offloadOf } from "../../../src/stack/wire/frame-offload.js";
import { describeWith, TestNetns, waitFor } from "../native/native-env.js";

class FakeDevice implements TapNative {
  /** how many frames the next write() takes (Infinity: all) */
  room = Number.POSITIVE_INFINITY;
  written: Buffer[] = [];
  headers: (Buffer | undefined)[] = [];
  tails: (Buffer | undefined)[] = [];
  /** the vnet header length open() reports (0: a plain TAP) */
  vnetHdrLen: 0 | 12 = 0;
  writableCb: (() => void) | undefined;
  onBatch: ((frames: Buffer[]) => void) | undefined;
  onError: ((err: NativeError) => void) | undefined;
  closed = false;
  writeErrors = 0;
  opened: TapPortOptions | undefined;

  open(opts: TapPortOptions) {
    this.opened = opts;
    return { fd: 42, name: opts.ifname || "tap7", vnetHdrLen: this.vnetHdrLen };
  }

  poller(_fd: number, onBatch: (f: Buffer[]) => void, onError: (e: NativeError) => void) {
    this.onBatch = onBatch;
    this.onError = onError;
    return {
      write: (
        frames: readonly Buffer[],
        headers?: readonly (Buffer | undefined)[],
        tails?: readonly (Buffer | undefined)[],
      ) => {
        const n = Math.min(frames.length, this.room);
        this.room -= n;
        this.written.push(...frames.slice(0, n));
        for (let i = 0; i < n; i++) {
          this.headers.push(headers?.[i]);
          this.tails.push(tails?.[i]);
        }
        return n;
      },
      waitWritable: (cb: () => void) => {
        if (this.writableCb) throw new Error("waitWritable twice");
        this.writableCb = cb;
      },
      close: () => {
        this.closed = true;
      },
      stats: () => ({ writeErrors: this.writeErrors, lastError: null }),
    };
  }

  /** the fd became writable with room for n frames */
  drain(n: number): void {
    this.room = n;
    const cb = this.writableCb;
    this.writableCb = undefined;
    cb?.();
  }
}

const frame = (n: number, len = 60) => Buffer.alloc(len, n);

function fakePort(opts: Partial<TapPortOptions> = {}, vnetHdrLen: 0 | 12 = 0) {
  const dev = new FakeDevice();
  dev.vnetHdrLen = vnetHdrLen;
  const port = TapPort.open({ name: "t0", ifname: "tap0", log: silentLogger, ...opts }, dev);
  const got: Buffer[][] = [];
  port.setReceiver((b) => got.push([...b]));
  return { dev, port, got };
}

/** a TSO header as the kernel writes it for a TCP/IPv4 super frame with a 32-byte TCP header */
const tsoHdr = {
  flags: VnetFlags.needsCsum,
  gsoType: VnetGso.tcpv4,
  hdrLen: 66,
  gsoSize: 1448,
  csumStart: 34,
  csumOffset: 16,
};

describe("TapPort offloads (fake device with vnet headers)", () => {
  it("turns what each vnet header says into the frame's offload mark", () => {
    const { dev, port, got } = fakePort({}, 12);
    expect(port.acceptsOffloads).toBe(true);
    const partial = Buffer.concat([vnetHdrBuffer(tsoHdr), frame(1, 200)]);
    const plain = Buffer.concat([Buffer.alloc(12), frame(2)]);
    const valid = Buffer.concat([
      vnetHdrBuffer({ ...noOffloadHdr, flags: VnetFlags.dataValid }),
      frame(3, 1500),
    ]);
    const udpGso = Buffer.concat([
      vnetHdrBuffer({
        ...noOffloadHdr,
        flags: 1,
        gsoType: VnetGso.udp,
        gsoSize: 100,
        csumStart: 34,
        csumOffset: 6,
      }),
      frame(4),
    ]);
    dev.onBatch?.([partial, plain, valid, udpGso]);
    const [a, b, c] = got[0] ?? [];
    expect(got[0]).toHaveLength(3);
    expect(a?.equals(frame(1, 200))).toBe(true);
    expect(a && offloadOf(a)).toEqual({ checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize: 1448 });
    expect(b && offloadOf(b)).toBeUndefined();
    expect(c && offloadOf(c)).toMatchObject({ checksum: "valid", gsoSize: 0 });
    expect(port.stats().drops).toEqual({ "vnet-gso-unsupported": 1 });
  });

  it("completes a small frame's partial checksum itself and hands it on unmarked", () => {
    const { dev, got } = fakePort({}, 12);
    const small = frame(9, 80);
    small.writeUInt16BE(0x1234, 34 + 16); // the pseudo-header sum the kernel leaves
    const hdr = { ...noOffloadHdr, flags: VnetFlags.needsCsum, csumStart: 34, csumOffset: 16 };
    const valid = Buffer.concat([vnetHdrBuffer({ ...noOffloadHdr, flags: VnetFlags.dataValid }), frame(3)]);
    dev.onBatch?.([Buffer.concat([vnetHdrBuffer(hdr), small]), valid]);
    const [a, b] = got[0] ?? [];
    expect(a && offloadOf(a)).toBeUndefined();
    expect(b && offloadOf(b)).toBeUndefined();
    expect(a && internetChecksum(a, 34, a.length, 0x1234)).toBe(0); // sums to zero with the pseudo-header
    expect(a?.subarray(0, 50).equals(small.subarray(0, 50))).toBe(true);
  });

  it("writes marked frames with their vnet header and tail, plain ones with none", () => {
    const { dev, port } = fakePort({}, 12);
    const head = frame(5, 66);
    head[34 + 12] = 0x80; // TCP data offset: 32 bytes
    const tail = Buffer.alloc(5000, 6);
    markOffload(head, { checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize: 1448, tail });
    port.send([head, frame(7)]);
    expect(dev.written).toEqual([head, frame(7)]);
    expect(dev.tails).toEqual([tail, undefined]);
    expect(dev.headers[1]).toBeUndefined();
    const h = dev.headers[0] ? decodeVnetHdr(dev.headers[0]) : undefined;
    expect(h?.ok && h.value).toEqual(tsoHdr);
    expect(port.stats()).toMatchObject({ txFrames: 2, txBytes: 66 + 5000 + 60 });
  });

  it("takes and writes TCP/IPv6 super frames as GSO TCPv6", () => {
    const { dev, port, got } = fakePort({}, 12);
    const tso6 = { ...tsoHdr, gsoType: VnetGso.tcpv6, hdrLen: 86, csumStart: 54 };
    const read = frame(1, 2000);
    read.writeUInt16BE(0x86dd, 12);
    dev.onBatch?.([Buffer.concat([vnetHdrBuffer(tso6), read])]);
    const [a] = got[0] ?? [];
    expect(a && offloadOf(a)).toEqual({ checksum: "partial", csumStart: 54, csumOffset: 16, gsoSize: 1448 });
    const head = frame(5, 86);
    head.writeUInt16BE(0x86dd, 12);
    head[54 + 12] = 0x80; // TCP data offset: 32 bytes
    markOffload(head, {
      checksum: "partial",
      csumStart: 54,
      csumOffset: 16,
      gsoSize: 1448,
      tail: Buffer.alloc(3000),
    });
    port.send([head]);
    const h = dev.headers[0] ? decodeVnetHdr(dev.headers[0]) : undefined;
    expect(h?.ok && h.value).toEqual(tso6);
  });
});

describe("TapPort (fake device)", () => {
  it("hands each read batch to the hub in one call and counts it", () => {
    const { dev, port, got } = fakePort();
    dev.onBatch?.([frame(1), frame(2), frame(3)]);
    expect(got).toEqual([[frame(1), frame(2), frame(3)]]);
    expect(port.stats()).toMatchObject({ rxFrames: 3, rxBytes: 180 });
    expect(port.kind).toBe("tap");
    expect(port.ifname).toBe("tap0");
  });

  it("drops frames shorter than an Ethernet header", () => {
    const { dev, port, got } = fakePort();
    dev.onBatch?.([frame(1, 13), frame(2)]);
    dev.onBatch?.([frame(3, 2)]);
    expect(got).toEqual([[frame(2)]]);
    expect(port.stats().drops).toEqual({ "frame-too-short": 2 });
  });

  it("counts frames read while no hub listens", () => {
    const { dev, port } = fakePort();
    port.setReceiver(undefined);
    dev.onBatch?.([frame(1)]);
    expect(port.stats().drops).toEqual({ "no-receiver": 1 });
  });

  it("writes in order, holds what the kernel cannot take, and flushes when writable", () => {
    const { dev, port } = fakePort();
    dev.room = 2;
    port.send([frame(1), frame(2), frame(3), frame(4)]);
    expect(dev.written).toEqual([frame(1), frame(2)]);
    expect(port.queuedFrames()).toBe(2);
    // while frames wait, new ones queue behind them: order is kept
    port.send([frame(5)]);
    expect(dev.written).toHaveLength(2);
    dev.drain(1);
    expect(dev.written).toEqual([frame(1), frame(2), frame(3)]);
    expect(dev.writableCb).toBeDefined();
    dev.drain(10);
    expect(dev.written).toEqual([1, 2, 3, 4, 5].map((n) => frame(n)));
    expect(port.queuedFrames()).toBe(0);
    expect(dev.writableCb).toBeUndefined();
    expect(port.stats()).toMatchObject({ txFrames: 5, txBytes: 300, drops: {} });
  });

  it("drops past the bound and counts tx-queue-full", () => {
    const { dev, port } = fakePort({ maxQueuedFrames: 3 });
    dev.room = 0;
    port.send([1, 2, 3, 4, 5].map((n) => frame(n)));
    expect(port.queuedFrames()).toBe(3);
    port.send([frame(6)]);
    expect(port.stats().drops).toEqual({ "tx-queue-full": 3 });
    dev.drain(100);
    expect(dev.written).toEqual([1, 2, 3].map((n) => frame(n)));
  });

  it("reports kernel-refused writes as write-error drops", () => {
    const { dev, port } = fakePort();
    dev.writeErrors = 2;
    expect(port.stats().drops).toEqual({ "write-error": 2 });
    dev.writeErrors = 3;
    expect(port.stats().drops).toEqual({ "write-error": 3 });
  });

  it("stops after a read error, tells onFailure once, and drops what is sent after", () => {
    const failures: NativeError[] = [];
    const { dev, port } = fakePort({ onFailure: (e) => failures.push(e) });
    dev.room = 0;
    port.send([frame(1)]);
    const err = Object.assign(new Error("File descriptor in bad state"), { code: "EBADFD" }) as NativeError;
    dev.onError?.(err);
    dev.onError?.(err);
    expect(failures).toEqual([err]);
    port.send([frame(2), frame(3)]);
    expect(port.stats().drops).toEqual({ "read-error": 1, "device-gone": 3 });
    expect(port.describe()).toContain("stopped (EBADFD)");
    dev.drain(10);
    expect(dev.written).toEqual([]);
  });

  it("close() closes the poller, empties the queue and refuses further frames", () => {
    const { dev, port, got } = fakePort();
    dev.room = 0;
    port.send([frame(1)]);
    port.close();
    port.close();
    expect(dev.closed).toBe(true);
    port.send([frame(2)]);
    dev.onBatch?.([frame(3)]);
    expect(got).toEqual([]);
    expect(port.stats().drops).toEqual({ closed: 1 });
    expect(port.describe()).toBe("closed");
  });

  it("openTapNetdev attaches to the hub, names failures, and detaches on close", async () => {
    const dev = new FakeDevice();
    const hub = new Hub(0);
    const cfg: TapNetdevConfig = { type: "tap", id: "t9", hub: 0, ifname: "", netns: "/run/netns/x" };
    const h = openTapNetdev(cfg, hub, silentLogger, { native: dev });
    expect(dev.opened).toMatchObject({ name: "t9", ifname: "", netns: "/run/netns/x" });
    expect(hub.ports().map((p) => p.name)).toEqual(["t9"]);
    expect(h.describe()).toBe("tap tap7 in /run/netns/x");
    await h.close();
    expect(hub.ports()).toEqual([]);
    expect(h.ports()).toEqual([]);
    const failing: TapNative = {
      open() {
        throw Object.assign(new Error("ioctl TUNSETIFF: Operation not permitted"), { code: "EPERM" });
      },
      poller: dev.poller.bind(dev),
    };
    expect(() => openTapNetdev(cfg, hub, silentLogger, { native: failing })).toThrow(
      '-netdev tap,id=t9: cannot open TAP "" in /run/netns/x: ioctl TUNSETIFF: Operation not permitted',
    );
  });
});

/** A hub port that records frames and can inject some. */
class Recorder implements Port {
  readonly kind = "test";
  frames: Buffer[] = [];
  sink: FrameSink | undefined;
  constructor(readonly name: string) {}
  send(frames: readonly Buffer[]): void {
    this.frames.push(...frames);
  }
  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }
  stats(): PortStats {
    return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, drops: {} };
  }
  describe(): string {
    return this.name;
  }
  close(): void {}
}

const gwMac = Buffer.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

function arpReply(req: Buffer): Buffer {
  const f = Buffer.alloc(42);
  req.copy(f, 0, 6, 12); // to the asker
  gwMac.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(2, 20);
  gwMac.copy(f, 22);
  req.copy(f, 28, 38, 42); // sender IP = the address asked for
  req.copy(f, 32, 22, 28); // target MAC
  req.copy(f, 38, 28, 32); // target IP
  return f;
}

describeWith("TapPort (a real TAP in a namespace)", ["root", "ip", "tun", "addon", "busybox"], () => {
  let ns: TestNetns;
  beforeAll(async () => {
    ns = await TestNetns.create();
  });
  afterAll(async () => {
    await ns?.close();
  });

  it("carries the kernel's ARP and ICMP to the hub and our frames to the kernel", async () => {
    const hub = new Hub(0);
    const rec = new Recorder("rec");
    hub.attach(rec);
    const failures: NativeError[] = [];
    const h = openTapNetdev(
      { type: "tap", id: "t0", hub: 0, ifname: "untap0", netns: `/var/run/netns/${ns.name}` },
      hub,
      silentLogger,
      { onFailure: (e) => failures.push(e) },
    );
    try {
      await ns.execOk("ip", ["addr", "add", "10.0.2.100/24", "dev", "untap0"]);
      await ns.execOk("ip", ["link", "set", "untap0", "up"]);
      const ping = ns.exec("busybox", ["ping", "-c", "1", "-W", "3", "10.0.2.2"], 8000);
      await waitFor(() => rec.frames.some((f) => f.readUInt16BE(12) === 0x0806), 5000, "an ARP request");
      const req = rec.frames.find((f) => f.readUInt16BE(12) === 0x0806) as Buffer;
      expect(req.readUInt32BE(38)).toBe(0x0a000202);
      rec.sink?.([arpReply(req)]);
      const isEcho = (f: Buffer) => f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[34] === 8;
      await waitFor(() => rec.frames.some(isEcho), 5000, "an ICMP echo request after our ARP reply");
      const echo = rec.frames.find(isEcho) as Buffer;
      expect(echo.subarray(0, 6)).toEqual(gwMac);
      await ping;
      const port = h.ports()[0] as TapPort;
      expect(port.stats().rxFrames).toBeGreaterThanOrEqual(2);
      expect(port.stats().txFrames).toBe(1);
      expect(failures).toEqual([]);
      // the device vanishes under the port: reading fails once, the port says so
      await ns.execOk("ip", ["link", "del", "untap0"]);
      await waitFor(() => failures.length > 0, 5000, "onFailure after the TAP was deleted");
      expect(port.describe()).toMatch(/stopped/);
    } finally {
      await h.close();
    }
  });
});
