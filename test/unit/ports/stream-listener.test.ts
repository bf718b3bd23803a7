import { spawnSync } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Hub } from "../../../src/hub/hub.js";
import { createLogger, silentLogger } from "../../../src/log.js";
import type { StreamAddress } from "../../../src/ports/address.js";
import { encodeFrames, LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { StreamListener, type StreamListenerOptions } from "../../../src/ports/stream-listener.js";
import { FakePort, waitFor } from "./fake-port.js";

/** A QEMU stand-in: a stream socket speaking length-prefixed frames. */
class FakeQemu {
  readonly frames: Buffer[] = [];
  readonly socket: Socket;
  closed = false;
  private readonly decoder = new LengthPrefixedFrames();
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (c: Buffer) => this.frames.push(...this.decoder.push(c).frames));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
    });
  }
  static connect(to: StreamAddress): Promise<FakeQemu> {
    return new Promise((resolve, reject) => {
      const s = new Socket();
      s.once("error", reject);
      const done = () => {
        s.off("error", reject);
        resolve(new FakeQemu(s));
      };
      if (to.type === "unix") s.connect({ path: to.path }, done);
      else s.connect({ host: "127.0.0.1", port: to.port }, done);
    });
  }
  send(...frames: Buffer[]): void {
    this.socket.write(encodeFrames(frames));
  }
  raw(bytes: Buffer): void {
    this.socket.write(bytes);
  }
  close(): void {
    this.socket.destroy();
  }
}

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "usernet-listener-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openListener(extra: Partial<StreamListenerOptions> = {}) {
  const hub = new Hub(0);
  const listener = await StreamListener.open({
    id: "s0",
    kind: "socket-listen",
    address: { type: "inet", host: "127.0.0.1", port: 0 },
    hub,
    log: silentLogger,
    ...extra,
  });
  opened.push(listener);
  return { hub, listener };
}

async function client(listener: StreamListener): Promise<FakeQemu> {
  const c = await FakeQemu.connect(listener.address);
  opened.push(c);
  return c;
}

describe("StreamListener", () => {
  test("frames from one client reach the other clients and the hub, not the sender", async () => {
    const { hub, listener } = await openListener();
    const tap = new FakePort("tap");
    hub.attach(tap);
    const a = await client(listener);
    const b = await client(listener);
    await waitFor("two clients", () => listener.clients().length === 2);
    expect(listener.clients().map((p) => p.name)).toEqual(["s0#1", "s0#2"]);
    expect(listener.describe()).toBe(
      `listening on 127.0.0.1:${(listener.address as { port: number }).port}, 2 clients`,
    );
    const f = frame(1, 1514);
    a.send(f);
    await waitFor("b receives", () => b.frames.length === 1);
    expect(b.frames[0]).toEqual(f);
    expect(tap.received).toEqual([f]);
    expect(a.frames).toEqual([]);
    // and from the hub to every client
    tap.sink?.([frame(2), frame(3, 100)]);
    await waitFor("both receive", () => a.frames.length === 2 && b.frames.length === 3);
    expect(a.frames).toEqual([frame(2), frame(3, 100)]);
    const s1 = listener.clients()[0]?.stats();
    expect(s1).toMatchObject({ rxFrames: 1, rxBytes: 1514, txFrames: 2, txBytes: 160 });
  });

  test("many clients at once, each its own port", async () => {
    const { hub, listener } = await openListener();
    const n = 20;
    const clients: FakeQemu[] = [];
    for (let i = 0; i < n; i++) clients.push(await client(listener));
    await waitFor("all attached", () => hub.ports().length === n);
    clients.forEach((c, i) => {
      c.send(frame(i + 1));
    });
    await waitFor("everyone hears everyone else", () => clients.every((c) => c.frames.length === n - 1));
    clients.forEach((c, i) => {
      expect(c.frames.map((f) => f[0]).sort((x, y) => (x ?? 0) - (y ?? 0))).toEqual(
        Array.from({ length: n }, (_, k) => k + 1).filter((t) => t !== i + 1),
      );
    });
  });

  test("a client that leaves is detached and its name is not reused", async () => {
    const { hub, listener } = await openListener();
    const a = await client(listener);
    await waitFor("attached", () => hub.ports().length === 1);
    a.close();
    await waitFor("detached", () => hub.ports().length === 0);
    const b = await client(listener);
    await waitFor("attached again", () => hub.ports().length === 1);
    expect(hub.ports()[0]?.name).toBe("s0#2");
    expect(listener.stats()).toEqual({ accepted: 2, active: 1, rejected: 0, badLength: 0 });
    b.close();
  });

  test("a bad length disconnects only that client, with a log line", async () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (s: string) => lines.push(s) });
    const { hub, listener } = await openListener({ log });
    const a = await client(listener);
    const b = await client(listener);
    const c = await client(listener);
    await waitFor("three attached", () => hub.ports().length === 3);
    b.raw(u32(0x7fffffff));
    await waitFor("b disconnected", () => b.closed);
    await waitFor("b detached", () => hub.ports().length === 2);
    expect(listener.stats().badLength).toBe(1);
    expect(
      lines.some(
        (l) =>
          /warn: host fault in stream-port \(bad-length\): .*impossible frame length/.test(l) &&
          l.includes("s0#2"),
      ),
    ).toBe(true);
    a.send(frame(5));
    await waitFor("c still served", () => c.frames.length === 1);
    expect(a.closed).toBe(false);
  });

  test("a frame one byte over QEMU's NET_BUFSIZE is a bad length too", async () => {
    const { listener } = await openListener();
    const a = await client(listener);
    a.raw(u32(69633));
    await waitFor("a disconnected", () => a.closed);
    expect(listener.stats().badLength).toBe(1);
  });

  test("short frames (including length 0) are dropped and counted; the client stays", async () => {
    const { hub, listener } = await openListener();
    const tap = new FakePort("tap");
    hub.attach(tap);
    const a = await client(listener);
    const f = frame(9);
    a.raw(Buffer.concat([u32(5), Buffer.alloc(5), u32(0), u32(13)]));
    a.raw(Buffer.concat([Buffer.alloc(13), u32(f.length), f]));
    await waitFor("good frame through", () => tap.received.length === 1);
    expect(tap.received[0]).toEqual(f);
    expect(listener.clients()[0]?.stats().drops).toEqual({ "frame-too-short": 3 });
    expect(a.closed).toBe(false);
  });

  test("frames QEMU would refuse are not sent to clients", async () => {
    const { hub, listener } = await openListener();
    const tap = new FakePort("tap");
    hub.attach(tap);
    const a = await client(listener);
    await waitFor("attached", () => hub.ports().length === 2);
    tap.sink?.([Buffer.alloc(13), Buffer.alloc(69633), frame(4)]);
    await waitFor("good frame", () => a.frames.length === 1);
    expect(listener.clients()[0]?.stats().drops).toEqual({ "frame-too-short": 1, "frame-too-long": 1 });
  });

  test("a slow reader gets drops counted and bounded memory while others keep flowing", async () => {
    const bound = 256 * 1024;
    const { hub, listener } = await openListener({ maxQueuedBytes: bound });
    const sender = await client(listener);
    const fast = await client(listener);
    const slow = await client(listener);
    await waitFor("attached", () => hub.ports().length === 3);
    slow.socket.pause();
    const slowPort = listener.clients()[2];
    if (!slowPort) throw new Error("no slow port");
    const perRound = 100;
    const f = frame(7, 1000);
    let sent = 0;
    let maxQueued = 0;
    for (let round = 0; round < 300 && !slowPort.stats().drops["tx-queue-full"]; round++) {
      sender.send(...Array.from({ length: perRound }, () => f));
      sent += perRound;
      await waitFor("fast reader keeps up", () => fast.frames.length === sent, 10_000);
      maxQueued = Math.max(maxQueued, slowPort.queuedBytes());
    }
    expect(slowPort.stats().drops["tx-queue-full"]).toBeGreaterThan(0);
    // the bound is checked before each frame: at most one frame (and its header) over it
    expect(maxQueued).toBeLessThanOrEqual(bound + 1004);
    // the fast client lost nothing
    expect(fast.frames).toHaveLength(sent);
    expect(listener.clients()[1]?.stats().drops).toEqual({});
    // after the slow reader resumes, it is served again
    slow.socket.resume();
    await waitFor("slow drained", () => slowPort.queuedBytes() === 0, 10_000);
    const before = slow.frames.length;
    sender.send(frame(8));
    await waitFor("slow receives again", () => slow.frames.at(-1)?.[0] === 8 && slow.frames.length > before);
  }, 60_000);

  test("maxClients bounds the clients; extra ones are closed and counted", async () => {
    const { hub, listener } = await openListener({ maxClients: 2 });
    await client(listener);
    await client(listener);
    await waitFor("two attached", () => hub.ports().length === 2);
    const extra = await client(listener);
    await waitFor("extra closed", () => extra.closed);
    expect(listener.stats()).toMatchObject({ accepted: 2, active: 2, rejected: 1 });
  });

  test("a taken port rejects with an Error naming the address", async () => {
    const { listener } = await openListener();
    const port = (listener.address as { port: number }).port;
    await expect(
      StreamListener.open({
        id: "s1",
        kind: "socket-listen",
        address: { type: "inet", host: "127.0.0.1", port },
        hub: new Hub(1),
        log: silentLogger,
      }),
    ).rejects.toThrow(`s1: cannot listen on 127.0.0.1:${port}: EADDRINUSE (address already in use)`);
  });

  test("close disconnects clients and detaches their ports", async () => {
    const { hub, listener } = await openListener();
    const a = await client(listener);
    await waitFor("attached", () => hub.ports().length === 1);
    await listener.close();
    expect(hub.ports()).toEqual([]);
    await waitFor("client closed", () => a.closed);
    expect(listener.describe()).toMatch(/^closed/);
  });
});

describe("who can reach a listener", () => {
  const opening = async (address: StreamAddress) => {
    const lines: string[] = [];
    const listener = await StreamListener.open({
      id: "l0",
      kind: "stream-listen",
      address,
      hub: new Hub(3),
      log: createLogger("info", { write: (s: string) => lines.push(s) }),
    });
    opened.push(listener);
    return lines.filter((l) => l.includes(" warn"));
  };

  test("a TCP listener warns that every local user can attach", async () => {
    const warned = await opening({ type: "inet", host: "127.0.0.1", port: 0 });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(
      /l0: every local user can connect to 127\.0\.0\.1:\d+ and attach to hub 3 \(a TCP listener cannot tell users apart\); use a unix socket/,
    );
  });

  test("a unix listener does not", async () => {
    expect(await opening({ type: "unix", path: join(dir, "quiet.sock") })).toEqual([]);
  });
});

describe("StreamListener on a unix socket", () => {
  const unixListener = async (path: string) => {
    const hub = new Hub(0);
    const listener = await StreamListener.open({
      id: "st0",
      kind: "stream-listen",
      address: { type: "unix", path },
      hub,
      log: silentLogger,
    });
    opened.push(listener);
    return { hub, listener };
  };

  test("serves clients, is mode 0600, and is removed on close", async () => {
    const path = join(dir, "a.sock");
    const umask = process.umask();
    const { listener } = await unixListener(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // bound under a private umask, which is given back
    expect(process.umask()).toBe(umask);
    const a = await client(listener);
    const b = await client(listener);
    await waitFor("two clients", () => listener.clients().length === 2);
    a.send(frame(1));
    await waitFor("b receives", () => b.frames.length === 1);
    expect(listener.describe()).toBe(`listening on ${path}, 2 clients`);
    await listener.close();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  test("a stale socket file (its process died) is replaced", async () => {
    const path = join(dir, "stale.sock");
    // a process that listens and dies without cleaning up leaves the file behind
    const r = spawnSync(
      process.execPath,
      [
        "-e",
        `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
      ],
      { timeout: 10_000 },
    );
    expect(r.signal).toBe("SIGKILL");
    expect((await stat(path)).isSocket()).toBe(true);
    const { listener } = await unixListener(path);
    const a = await client(listener);
    await waitFor("client", () => listener.clients().length === 1);
    a.close();
  });

  test("a live socket or a non-socket file is not removed", async () => {
    const live = join(dir, "live.sock");
    const other = createServer();
    await new Promise<void>((r) => other.listen({ path: live }, () => r()));
    opened.push({ close: () => new Promise<void>((r) => other.close(() => r())) });
    await expect(unixListener(live)).rejects.toThrow(/another process is listening/);
    const file = join(dir, "plain");
    await writeFile(file, "data");
    await expect(unixListener(file)).rejects.toThrow(/not a socket/);
    expect((await stat(file)).isFile()).toBe(true);
  });
});
