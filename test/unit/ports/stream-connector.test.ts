import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Hub } from "../../../src/hub/hub.js";
import { createLogger, silentLogger } from "../../../src/log.js";
import type { StreamAddress } from "../../../src/ports/address.js";
import { encodeFrames, LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { StreamConnector, type StreamConnectorOptions } from "../../../src/ports/stream-connector.js";
import { FakePort, waitFor } from "./fake-port.js";

/** A QEMU stand-in listening like `-netdev socket,listen=`: keeps the frames its clients send. */
class FakeQemuServer {
  readonly frames: Buffer[] = [];
  readonly sockets = new Set<Socket>();
  private constructor(readonly server: Server) {
    server.on("connection", (s) => {
      this.sockets.add(s);
      const d = new LengthPrefixedFrames();
      s.on("data", (c: Buffer) => this.frames.push(...d.push(c).frames));
      s.on("error", () => {});
      s.on("close", () => this.sockets.delete(s));
    });
  }
  static async listen(at: StreamAddress): Promise<FakeQemuServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (at.type === "unix") server.listen({ path: at.path }, () => resolve());
      else server.listen({ host: "127.0.0.1", port: at.port }, () => resolve());
    });
    return new FakeQemuServer(server);
  }
  get port(): number {
    const a = this.server.address();
    return a && typeof a === "object" ? a.port : 0;
  }
  send(...frames: Buffer[]): void {
    for (const s of this.sockets) s.write(encodeFrames(frames));
  }
  raw(b: Buffer): void {
    for (const s of this.sockets) s.write(b);
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "usernet-connector-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function connector(address: StreamAddress, extra: Partial<StreamConnectorOptions> = {}) {
  const hub = new Hub(0);
  const tap = new FakePort("tap");
  hub.attach(tap);
  const c = new StreamConnector({
    id: "c0",
    kind: "socket-connect",
    address,
    log: silentLogger,
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    ...extra,
  });
  hub.attach(c.port);
  opened.push(c);
  c.start();
  return { hub, tap, c };
}

/** a loopback TCP port nobody listens on (right now) */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return a && typeof a === "object" ? a.port : 0;
}

describe("StreamConnector", () => {
  test("drops while disconnected, connects when the peer appears, and reconnects after it restarts", async () => {
    const port = await freePort();
    const address: StreamAddress = { type: "inet", host: "127.0.0.1", port };
    const lines: string[] = [];
    const { tap, c } = connector(address, {
      log: createLogger("debug", { write: (s: string) => lines.push(s) }),
    });
    tap.sink?.([frame(1), frame(2)]);
    expect(c.port.stats().drops).toEqual({ "not-connected": 2 });
    await waitFor("a few failed attempts", () => c.stats().attempts >= 2);
    expect(c.describe()).toMatch(/not connected|connecting/);
    expect(lines.filter((l) => l.includes("warn: cannot connect"))).toHaveLength(1);

    let server = await FakeQemuServer.listen(address);
    await waitFor("connected", () => c.connected);
    expect(c.describe()).toBe(`connected to 127.0.0.1:${port}`);
    tap.sink?.([frame(3)]);
    await waitFor("server receives", () => server.frames.length === 1);
    expect(server.frames[0]).toEqual(frame(3));
    server.send(frame(4, 1514));
    await waitFor("hub receives", () => tap.received.length === 1);
    expect(tap.received[0]).toEqual(frame(4, 1514));

    await server.close();
    await waitFor("disconnected", () => !c.connected);
    tap.sink?.([frame(5)]);
    expect(c.port.stats().drops["not-connected"]).toBe(3);

    server = await FakeQemuServer.listen(address);
    opened.push(server);
    await waitFor("reconnected", () => c.connected);
    tap.sink?.([frame(6)]);
    await waitFor("server receives again", () => server.frames.length === 1);
    expect(server.frames[0]).toEqual(frame(6));
    server.send(frame(7));
    await waitFor("hub receives again", () => tap.received.length === 2);
    expect(c.stats().connects).toBe(2);
    // counters carried across connections
    expect(c.port.stats()).toMatchObject({ rxFrames: 2, txFrames: 2 });
  });

  test("works over a unix socket", async () => {
    const path = join(dir, "peer.sock");
    const server = await FakeQemuServer.listen({ type: "unix", path });
    opened.push(server);
    const { tap, c } = connector({ type: "unix", path }, { kind: "stream-connect" });
    await waitFor("connected", () => c.connected);
    server.send(frame(1));
    await waitFor("hub receives", () => tap.received.length === 1);
  });

  test("a peer sending a bad length is dropped and reconnected to", async () => {
    const port = await freePort();
    const server = await FakeQemuServer.listen({ type: "inet", host: "127.0.0.1", port });
    opened.push(server);
    const { tap, c } = connector({ type: "inet", host: "127.0.0.1", port });
    await waitFor("connected", () => server.sockets.size === 1);
    server.raw(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await waitFor("reconnected", () => c.stats().connects === 2 && c.connected && server.sockets.size === 1);
    expect(c.port.stats().drops["bad-length"]).toBe(1);
    server.send(frame(2));
    await waitFor("hub receives", () => tap.received.length === 1);
  });

  test("backs off exponentially up to the maximum", async () => {
    const port = await freePort();
    const { c } = connector(
      { type: "inet", host: "127.0.0.1", port },
      { initialBackoffMs: 50, maxBackoffMs: 200 },
    );
    // attempts at 0, 50, 150, 350, 550, 750, 950 ms: 7 within a second
    await new Promise((r) => setTimeout(r, 1000));
    const n = c.stats().attempts;
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(8);
  });

  test("reconnect=N waits N seconds between attempts", async () => {
    const port = await freePort();
    const { c } = connector({ type: "inet", host: "127.0.0.1", port }, { reconnectSeconds: 0.25 });
    // attempts at 0, 250, 500, 750 ms
    await new Promise((r) => setTimeout(r, 900));
    const n = c.stats().attempts;
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(4);
  });

  test("close stops the attempts and closes the port", async () => {
    const port = await freePort();
    const { c } = connector({ type: "inet", host: "127.0.0.1", port });
    await waitFor("one attempt failed", () => c.stats().attempts >= 2);
    c.close();
    const n = c.stats().attempts;
    await new Promise((r) => setTimeout(r, 200));
    expect(c.stats().attempts).toBe(n);
    expect(c.port.closed).toBe(true);
    expect(c.describe()).toMatch(/^closed/);
  });
});
