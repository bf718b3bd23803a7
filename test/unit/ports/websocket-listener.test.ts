import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
import { Hub } from "../../../src/hub/hub.js";
import { silentLogger } from "../../../src/log.js";
import { encodeFrames, LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { WebsocketListener, type WebsocketListenerOptions } from "../../../src/ports/websocket-listener.js";
import { FakePort, waitFor } from "./fake-port.js";

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);

/** A browser VM stand-in: a ws client that keeps what it gets. */
class Client {
  readonly messages: Buffer[] = [];
  closeCode: number | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d: Buffer) => this.messages.push(d));
    ws.on("close", (code) => {
      this.closeCode = code;
    });
    ws.on("error", () => {});
  }
  /** resolves once open; rejects with the HTTP status of a refused upgrade */
  static connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.once("open", () => resolve(new Client(ws)));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`status ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }
  close(): void {
    this.ws.terminate();
  }
}

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "usernet-ws-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openListener(extra: Partial<WebsocketListenerOptions> = {}) {
  const hub = new Hub(0);
  const listener = await WebsocketListener.open({
    id: "ws0",
    hub,
    log: silentLogger,
    listen: { host: "127.0.0.1", port: 0 },
    framing: "raw",
    ...extra,
  });
  opened.push(listener);
  const tap = new FakePort("tap");
  hub.attach(tap);
  return { hub, listener, tap, url: `ws://127.0.0.1:${listener.address.port}` };
}

async function client(url: string, options?: WebSocket.ClientOptions): Promise<Client> {
  const c = await Client.connect(url, options);
  opened.push(c);
  return c;
}

describe("WebsocketListener", () => {
  test("raw framing: a binary message is a frame both ways; each connection is its own port", async () => {
    const { listener, tap, url } = await openListener();
    const a = await client(`${url}/`);
    const b = await client(`${url}/anything`);
    await waitFor("two clients", () => listener.clients().length === 2);
    expect(listener.clients().map((p) => [p.name, p.kind])).toEqual([
      ["ws0#1", "websocket"],
      ["ws0#2", "websocket"],
    ]);
    a.ws.send(frame(1, 1514));
    await waitFor("b and the hub receive", () => b.messages.length === 1 && tap.received.length === 1);
    expect(b.messages[0]).toEqual(frame(1, 1514));
    expect(a.messages).toEqual([]);
    tap.sink?.([frame(2), frame(3, 100)]);
    await waitFor("both receive", () => a.messages.length === 2 && b.messages.length === 3);
    expect(a.messages).toEqual([frame(2), frame(3, 100)]);
    expect(listener.clients()[0]?.stats()).toMatchObject({ rxFrames: 1, rxBytes: 1514, txFrames: 2 });
    expect(listener.describe()).toMatch(
      /^listening on ws:\/\/127\.0\.0\.1:\d+\/ \(raw framing\), 2 clients$/,
    );
    // the port leaves the hub with its connection
    a.close();
    await waitFor("a detached", () => listener.clients().length === 1);
    expect(listener.stats()).toMatchObject({ accepted: 2, active: 1 });
  });

  test("text messages (jor1k's pings), short and oversized frames are counted, the connection stays", async () => {
    const { listener, tap, url } = await openListener({ maxPayload: 100_000 });
    const a = await client(url);
    a.ws.send("ping:");
    a.ws.send(Buffer.alloc(10), { binary: true });
    a.ws.send(Buffer.alloc(70_000), { binary: true });
    a.ws.send(frame(9));
    await waitFor("the good frame", () => tap.received.length === 1);
    expect(tap.received[0]).toEqual(frame(9));
    expect(listener.clients()[0]?.stats().drops).toEqual({
      "text-message": 1,
      "frame-too-short": 1,
      "frame-too-long": 1,
    });
  });

  test("a message above maxPayload closes that connection (1009) and only that one", async () => {
    const { listener, tap, url } = await openListener({ maxPayload: 4096 });
    const a = await client(url);
    const b = await client(url);
    a.ws.send(Buffer.alloc(5000), { binary: true });
    await waitFor("a closed", () => a.closeCode !== undefined);
    expect(a.closeCode).toBe(1009);
    await waitFor("a detached", () => listener.clients().length === 1);
    b.ws.send(frame(4));
    await waitFor("b still works", () => tap.received.length === 1);
  });

  test("qemu framing: length-prefixed frames across messages; an impossible length closes (1002)", async () => {
    const { tap, url } = await openListener({ framing: "qemu" });
    const a = await client(url);
    const wire = encodeFrames([frame(1), frame(2, 200)]);
    a.ws.send(wire.subarray(0, 30));
    a.ws.send(wire.subarray(30));
    await waitFor("two frames", () => tap.received.length === 2);
    expect(tap.received).toEqual([frame(1), frame(2, 200)]);
    // a batch from the hub is one message
    tap.sink?.([frame(3), frame(4)]);
    await waitFor("one message", () => a.messages.length === 1);
    const d = new LengthPrefixedFrames();
    expect(d.push(a.messages[0] as Buffer).frames).toEqual([frame(3), frame(4)]);
    a.ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await waitFor("closed", () => a.closeCode !== undefined);
    expect(a.closeCode).toBe(1002);
  });

  test("Origin: no web page by default, programs (no Origin) yes; allowed origins and * let pages in", async () => {
    const { listener, url } = await openListener();
    await expect(client(url, { origin: "https://evil.example" })).rejects.toThrow("status 403");
    await client(url);
    expect(listener.stats().refused).toEqual({ origin: 1 });

    const allowed = await openListener({ origins: ["http://localhost:8000"] });
    await client(allowed.url, { origin: "http://LOCALHOST:8000" });
    await expect(client(allowed.url, { origin: "http://localhost:8001" })).rejects.toThrow("status 403");
    await expect(client(allowed.url, { origin: "null" })).rejects.toThrow("status 403");

    const any = await openListener({ origins: ["*"] });
    await client(any.url, { origin: "https://anywhere.example" });
    expect(any.listener.clients()).toHaveLength(1);
  });

  test("token: as ?token= or a bearer header; missing or wrong is refused (401)", async () => {
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "s3cret\n");
    const { listener, url } = await openListener({ tokenFile });
    await expect(client(url)).rejects.toThrow("status 401");
    await expect(client(`${url}/?token=wrong`)).rejects.toThrow("status 401");
    await client(`${url}/?token=s3cret`);
    await client(url, { headers: { authorization: "Bearer s3cret" } });
    expect(listener.clients()).toHaveLength(2);
    expect(listener.stats().refused).toEqual({ token: 2 });
  });

  test("path=: only that path (the query aside); plain HTTP gets 426", async () => {
    const { listener, url } = await openListener({ path: "/net" });
    await expect(client(`${url}/other`)).rejects.toThrow("status 404");
    await client(`${url}/net?x=1`);
    expect(listener.stats().refused).toEqual({ path: 1 });
    const status = await new Promise<number | undefined>((resolve, reject) =>
      get(`http://127.0.0.1:${listener.address.port}/net`, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on("error", reject),
    );
    expect(status).toBe(426);
  });

  test("at most maxClients at once (503)", async () => {
    const { listener, url } = await openListener({ maxClients: 2 });
    await client(url);
    await client(url);
    await expect(client(url)).rejects.toThrow("status 503");
    expect(listener.stats().refused).toEqual({ "too-many-clients": 1 });
  });

  test("a client that stops reading costs a bounded queue and never stalls the hub", async () => {
    const { listener, tap, url } = await openListener({ maxQueuedBytes: 64 * 1024 });
    const slow = await client(url);
    const fast = await client(url);
    await waitFor("two clients", () => listener.clients().length === 2);
    slow.ws.pause();
    // 30 MB in rounds: more than the kernel's socket buffers can hide
    const big = frame(5, 1500);
    const rounds = 200;
    const perRound = 100;
    for (let i = 0; i < rounds; i++) {
      tap.sink?.(Array.from({ length: perRound }, () => big));
      await new Promise((r) => setImmediate(r));
    }
    const [s, f] = listener.clients().map((p) => p.stats());
    const total = rounds * perRound;
    expect((s?.txFrames ?? 0) + (s?.drops["tx-queue-full"] ?? 0)).toBe(total);
    expect(s?.drops["tx-queue-full"]).toBeGreaterThan(total / 2);
    expect(listener.clients()[0]?.queuedBytes()).toBeLessThan(64 * 1024 + perRound * 1500);
    // the reading client was not held back by the other one
    await waitFor("the reader got what was sent to it", () => fast.messages.length === f?.txFrames, 20_000);
    expect(f?.txFrames).toBeGreaterThan(s?.txFrames ?? 0);
  });

  test("wss:// with cert= and key=", async () => {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const r = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
      ]),
      { stdio: "ignore" },
    );
    expect(r.status).toBe(0);
    const { listener, tap } = await openListener({ cert, key });
    expect(listener.describe()).toMatch(/^listening on wss:\/\//);
    const c = await client(`wss://127.0.0.1:${listener.address.port}/`, { rejectUnauthorized: false });
    c.ws.send(frame(6));
    await waitFor("the frame", () => tap.received.length === 1);
    await expect(
      WebsocketListener.open({
        id: "ws1",
        hub: new Hub(1),
        log: silentLogger,
        listen: { host: "127.0.0.1", port: 0 },
        framing: "raw",
        cert,
        key: join(dir, "missing.pem"),
      }),
    ).rejects.toThrow(/ws1: cannot read the key .*missing\.pem: ENOENT/);
  });

  test("bad set-up is a clear error: an empty token file, a port in use", async () => {
    const empty = join(dir, "empty");
    await writeFile(empty, "\n");
    await expect(openListener({ tokenFile: empty })).rejects.toThrow(/ws0: the token file .* is empty/);
    const { listener } = await openListener();
    await expect(
      openListener({ listen: { host: "127.0.0.1", port: listener.address.port } }),
    ).rejects.toThrow(/ws0: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });

  test("close() disconnects every client and detaches their ports", async () => {
    const { hub, listener, url } = await openListener();
    const a = await client(url);
    await waitFor("attached", () => hub.ports().length === 2);
    await listener.close();
    await waitFor("a closed", () => a.closeCode !== undefined);
    expect(hub.ports().map((p) => p.name)).toEqual(["tap"]);
    expect(listener.describe()).toMatch(/^closed/);
  });
});
