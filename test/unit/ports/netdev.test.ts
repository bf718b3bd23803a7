import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { DgramNetdevConfig, SocketNetdevConfig, StreamNetdevConfig } from "../../../src/config.js";
import { Hub } from "../../../src/hub/hub.js";
import { silentLogger } from "../../../src/log.js";
import type { StreamAddress } from "../../../src/ports/address.js";
import { encodeFrames, LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { type NetdevHandle, openNetdev } from "../../../src/ports/netdev.js";
import { FakePort, waitFor as waitUntil } from "./fake-port.js";

/** these tests start real QEMU peers: they get twice the usual time, polled every 10 ms */
const waitFor = (what: string, cond: () => boolean, timeoutMs = 10_000) =>
  waitUntil(what, cond, timeoutMs, 10);

/** a stream client speaking QEMU's framing */
async function streamClient(to: StreamAddress) {
  const s = new Socket();
  const frames: Buffer[] = [];
  const d = new LengthPrefixedFrames();
  s.on("data", (c: Buffer) => frames.push(...d.push(c).frames));
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    if (to.type === "unix") s.connect({ path: to.path }, () => resolve());
    else s.connect({ host: "127.0.0.1", port: to.port }, () => resolve());
  });
  opened.push({ close: () => s.destroy() });
  return { frames, send: (...f: Buffer[]) => s.write(encodeFrames(f)) };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return a && typeof a === "object" ? a.port : 0;
}

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);
const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "usernet-netdev-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function open(cfg: SocketNetdevConfig | StreamNetdevConfig | DgramNetdevConfig, hub: Hub) {
  const h = await openNetdev(cfg, hub, silentLogger, { initialBackoffMs: 20, maxBackoffMs: 200 });
  opened.push(h);
  return h;
}

const inetPort = (h: NetdevHandle) => (h.address?.type === "inet" ? h.address.port : -1);

describe("openNetdev", () => {
  test("socket,listen: a listener whose clients join the hub", async () => {
    const hub = new Hub(0);
    const h = await open(
      { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "127.0.0.1", port: 0 } },
      hub,
    );
    expect(h.kind).toBe("socket-listen");
    expect(h.address).toEqual({ type: "inet", host: "127.0.0.1", port: inetPort(h) });
    const a = await streamClient(h.address as StreamAddress);
    const b = await streamClient(h.address as StreamAddress);
    await waitFor("two clients", () => h.ports().length === 2);
    expect(h.describe()).toBe(`listening on 127.0.0.1:${inetPort(h)}, 2 clients`);
    expect(h.ports().map((p) => [p.name, p.kind])).toEqual([
      ["s0#1", "socket-listen"],
      ["s0#2", "socket-listen"],
    ]);
    a.send(frame(1));
    await waitFor("b receives", () => b.frames.length === 1);
    await h.close();
    expect(hub.ports()).toEqual([]);
  });

  test("socket,listen with an empty host binds every address", async () => {
    const h = await open(
      { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "", port: 0 } },
      new Hub(0),
    );
    expect(h.describe()).toBe(`listening on 0.0.0.0:${inetPort(h)}, 0 clients`);
  });

  test("a taken listen port rejects with an Error naming the address", async () => {
    const first = await open(
      { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "127.0.0.1", port: 0 } },
      new Hub(0),
    );
    const port = inetPort(first);
    await expect(
      openNetdev(
        {
          type: "stream",
          id: "st9",
          hub: 0,
          server: true,
          addr: { type: "inet", host: "127.0.0.1", port },
          reconnect: 0,
        },
        new Hub(0),
        silentLogger,
      ),
    ).rejects.toThrow(`st9: cannot listen on 127.0.0.1:${port}`);
  });

  test("stream,server=on over unix, and stream,server=off connecting to it", async () => {
    const path = join(dir, "st.sock");
    const hubA = new Hub(0);
    const hubB = new Hub(1);
    const server = await open(
      { type: "stream", id: "st0", hub: 0, server: true, addr: { type: "unix", path }, reconnect: 0 },
      hubA,
    );
    expect(server.kind).toBe("stream-listen");
    expect(server.address).toEqual({ type: "unix", path });
    const client = await open(
      { type: "stream", id: "st1", hub: 1, server: false, addr: { type: "unix", path }, reconnect: 0 },
      hubB,
    );
    expect(client.kind).toBe("stream-connect");
    expect(client.ports().map((p) => p.name)).toEqual(["st1"]);
    const tapA = new FakePort("tapA");
    const tapB = new FakePort("tapB");
    hubA.attach(tapA);
    hubB.attach(tapB);
    await waitFor(
      "connected",
      () => server.ports().length === 1 && client.describe().startsWith("connected"),
    );
    tapB.sink?.([frame(1)]);
    await waitFor("A receives", () => tapA.received.length === 1);
    tapA.sink?.([frame(2)]);
    await waitFor("B receives", () => tapB.received.length === 1);
    await client.close();
    expect(hubB.ports().map((p) => p.name)).toEqual(["tapB"]);
    expect(client.ports()).toEqual([]);
  });

  test("socket,connect: attached at once, connects in the background", async () => {
    const port = await freePort();
    const hub = new Hub(0);
    const h = await open(
      { type: "socket", id: "c0", hub: 0, mode: "connect", addr: { host: "127.0.0.1", port } },
      hub,
    );
    expect(h.kind).toBe("socket-connect");
    expect(hub.ports().map((p) => p.name)).toEqual(["c0"]);
    expect(h.describe()).toMatch(/^(connecting to|not connected to) 127\.0\.0\.1:/);
  });

  test("socket,udp and dgram unicast: a datagram port on the hub", async () => {
    const peer = createSocket("udp4");
    const got: Buffer[] = [];
    peer.on("message", (m) => got.push(m));
    await new Promise<void>((r) => peer.bind(0, "127.0.0.1", () => r()));
    opened.push({ close: () => peer.close() });
    const peerPort = peer.address().port;
    const hub = new Hub(0);
    const tap = new FakePort("tap");
    hub.attach(tap);
    const legacy = await open(
      {
        type: "socket",
        id: "u0",
        hub: 0,
        mode: "udp",
        addr: { host: "127.0.0.1", port: peerPort },
        localAddr: { host: "127.0.0.1", port: 0 },
      },
      hub,
    );
    expect(legacy.kind).toBe("dgram");
    const modern = await open(
      {
        type: "dgram",
        id: "u1",
        hub: 0,
        local: { type: "inet", host: "127.0.0.1", port: 0 },
        remote: { type: "inet", host: "127.0.0.1", port: peerPort },
      },
      hub,
    );
    expect(modern.kind).toBe("dgram");
    tap.sink?.([frame(1)]);
    await waitFor("peer gets one datagram from each", () => got.length === 2);
    peer.send(frame(2), inetPort(modern), "127.0.0.1");
    // the frame from u1 floods to tap and to u0, which sends it on to the peer
    await waitFor("hub receives", () => tap.received.length === 1 && got.length === 3);
    await legacy.close();
    await modern.close();
    expect(hub.ports().map((p) => p.name)).toEqual(["tap"]);
  });

  test("unix datagrams and a missing remote are refused with a clear message", async () => {
    await expect(
      openNetdev(
        {
          type: "dgram",
          id: "d0",
          hub: 0,
          local: { type: "unix", path: join(dir, "x") },
          remote: { type: "unix", path: join(dir, "y") },
        },
        new Hub(0),
        silentLogger,
      ),
    ).rejects.toThrow("d0: unix datagram sockets are not supported");
    await expect(
      openNetdev(
        { type: "dgram", id: "d1", hub: 0, local: { type: "inet", host: "127.0.0.1", port: 0 } },
        new Hub(0),
        silentLogger,
      ),
    ).rejects.toThrow("d1: dgram needs remote=");
  });
});

// ---- byte compatibility with a real QEMU 7.2 (its slirp answers ARP for 10.0.2.2) ----

const qemuBin = "qemu-system-x86_64";
const haveQemu = spawnSync(qemuBin, ["--version"], { timeout: 10_000 }).status === 0;
const qemuRequired = process.env.USERNET_E2E === "required";
const qemuTest = test.skipIf(!haveQemu && !qemuRequired);

function startQemu(netArgs: string[]): ChildProcess {
  const child = spawn(qemuBin, ["-machine", "none", "-nodefaults", "-display", "none", ...netArgs], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  child.on("exit", (code) => {
    if (code) console.error(`qemu exited ${code}: ${stderr}`);
  });
  opened.push({
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        child.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  });
  return child;
}

const guestMac = Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
/** who-has 10.0.2.2 tell 10.0.2.15, padded to the Ethernet minimum */
function arpRequest(): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  guestMac.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  guestMac.copy(f, 22);
  Buffer.from([10, 0, 2, 15]).copy(f, 28);
  Buffer.from([10, 0, 2, 2]).copy(f, 38);
  return f;
}
/** the reply libslirp sends: is-at 52:55:0a:00:02:02 */
const isArpReplyFromGateway = (f: Buffer) =>
  f.length >= 42 &&
  f.readUInt16BE(12) === 0x0806 &&
  f.readUInt16BE(20) === 2 &&
  f.subarray(0, 6).equals(guestMac) &&
  f.subarray(22, 28).equals(Buffer.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02])) &&
  f.subarray(28, 32).equals(Buffer.from([10, 0, 2, 2]));

describe("against QEMU 7.2's own slirp", () => {
  qemuTest(
    "-net socket,connect= to our listener: a second client gets slirp's ARP reply",
    async () => {
      const hub = new Hub(0);
      const h = await open(
        { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "127.0.0.1", port: 0 } },
        hub,
      );
      startQemu(["-net", "user", "-net", `socket,connect=127.0.0.1:${inetPort(h)}`]);
      await waitFor("qemu connected", () => h.ports().length === 1);
      const guest = await streamClient(h.address as StreamAddress);
      await waitFor("guest attached", () => h.ports().length === 2);
      guest.send(arpRequest());
      await waitFor("ARP reply", () => guest.frames.some(isArpReplyFromGateway));
    },
    30_000,
  );

  qemuTest(
    "our connector to -net socket,listen=",
    async () => {
      const port = await freePort();
      startQemu(["-net", "user", "-net", `socket,listen=127.0.0.1:${port}`]);
      const hub = new Hub(0);
      const tap = new FakePort("tap");
      hub.attach(tap);
      const h = await open(
        { type: "socket", id: "c0", hub: 0, mode: "connect", addr: { host: "127.0.0.1", port } },
        hub,
      );
      await waitFor("connected", () => h.describe().startsWith("connected"));
      tap.sink?.([arpRequest()]);
      await waitFor("ARP reply", () => tap.received.some(isArpReplyFromGateway));
    },
    30_000,
  );

  qemuTest(
    "-netdev stream over a unix socket to our stream listener",
    async () => {
      const path = join(dir, "qemu-stream.sock");
      const hub = new Hub(0);
      const tap = new FakePort("tap");
      hub.attach(tap);
      const h = await open(
        { type: "stream", id: "st0", hub: 0, server: true, addr: { type: "unix", path }, reconnect: 0 },
        hub,
      );
      startQemu([
        "-netdev",
        "user,id=u",
        "-netdev",
        "hubport,id=hp0,hubid=0,netdev=u",
        "-netdev",
        `stream,id=s,server=off,addr.type=unix,addr.path=${path}`,
        "-netdev",
        "hubport,id=hp1,hubid=0,netdev=s",
      ]);
      await waitFor("qemu connected", () => h.ports().length === 1);
      tap.sink?.([arpRequest()]);
      await waitFor("ARP reply", () => tap.received.some(isArpReplyFromGateway));
    },
    30_000,
  );

  qemuTest(
    "-net socket,udp= with our dgram port",
    async () => {
      const qemuPort = await freePort();
      const hub = new Hub(0);
      const tap = new FakePort("tap");
      hub.attach(tap);
      const h = await open(
        {
          type: "dgram",
          id: "d0",
          hub: 0,
          local: { type: "inet", host: "127.0.0.1", port: 0 },
          remote: { type: "inet", host: "127.0.0.1", port: qemuPort },
        },
        hub,
      );
      startQemu([
        "-net",
        "user",
        "-net",
        `socket,udp=127.0.0.1:${inetPort(h)},localaddr=127.0.0.1:${qemuPort}`,
      ]);
      // UDP has no connection to wait for: ask until QEMU is up and answers
      for (let i = 0; i < 100 && !tap.received.some(isArpReplyFromGateway); i++) {
        tap.sink?.([arpRequest()]);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(tap.received.some(isArpReplyFromGateway)).toBe(true);
    },
    30_000,
  );
});
