import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { afterEach, describe, expect, test } from "vitest";
import { Hub } from "../../../src/hub/hub.js";
import { silentLogger } from "../../../src/log.js";
import { bindUdp, type DatagramPort, openUdpPort } from "../../../src/ports/dgram-port.js";
import { FakePort, waitFor } from "./fake-port.js";

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);
const opened: { close(): unknown }[] = [];
afterEach(() => {
  for (const o of opened.splice(0).reverse()) o.close();
});

/** a QEMU stand-in for `-netdev dgram`: a UDP socket on loopback that records datagrams */
async function peer() {
  const socket: Socket = createSocket("udp4");
  const got: { msg: Buffer; from: RemoteInfo }[] = [];
  socket.on("message", (msg, from) => got.push({ msg, from }));
  const at = await bindUdp(socket, "127.0.0.1", 0, "peer");
  opened.push(socket);
  return { socket, got, at };
}

async function setup(): Promise<{
  hub: Hub;
  tap: FakePort;
  port: DatagramPort;
  p: Awaited<ReturnType<typeof peer>>;
}> {
  const p = await peer();
  const port = await openUdpPort({
    name: "d0",
    log: silentLogger,
    local: { host: "127.0.0.1", port: 0 },
    remote: p.at,
  });
  opened.push(port);
  const hub = new Hub(0);
  const tap = new FakePort("tap");
  hub.attach(tap);
  hub.attach(port);
  return { hub, tap, port, p };
}

describe("DatagramPort (unicast UDP)", () => {
  test("round trip: one frame per datagram each way", async () => {
    const { tap, port, p } = await setup();
    const local = port.localAddress();
    expect(local.host).toBe("127.0.0.1");
    tap.sink?.([frame(1), frame(2, 1514)]);
    await waitFor("peer receives two datagrams", () => p.got.length === 2);
    expect(p.got.map((g) => g.msg)).toEqual([frame(1), frame(2, 1514)]);
    expect(p.got[0]?.from.port).toBe(local.port);
    p.socket.send(frame(3, 100), local.port, "127.0.0.1");
    await waitFor("hub receives", () => tap.received.length === 1);
    expect(tap.received[0]).toEqual(frame(3, 100));
    expect(port.stats()).toMatchObject({ rxFrames: 1, rxBytes: 100, txFrames: 2, txBytes: 1574, drops: {} });
    expect(port.describe()).toBe(`udp 127.0.0.1:${local.port} -> 127.0.0.1:${p.at.port}`);
  });

  test("short datagrams are dropped and counted", async () => {
    const { tap, port, p } = await setup();
    const local = port.localAddress();
    p.socket.send(Buffer.alloc(13), local.port, "127.0.0.1");
    p.socket.send(Buffer.alloc(0), local.port, "127.0.0.1");
    p.socket.send(frame(4), local.port, "127.0.0.1");
    await waitFor("good frame", () => tap.received.length === 1);
    await waitFor("both short ones counted", () => port.stats().drops["frame-too-short"] === 2);
  });

  test("frames a datagram cannot carry are dropped and counted, not thrown", async () => {
    const { tap, port, p } = await setup();
    tap.sink?.([Buffer.alloc(65508), Buffer.alloc(5), frame(5)]);
    await waitFor("good frame", () => p.got.length === 1);
    expect(port.stats().drops).toEqual({ "frame-too-long": 1, "frame-too-short": 1 });
  });

  test("a taken local port rejects with an Error naming it", async () => {
    const p = await peer();
    await expect(
      openUdpPort({
        name: "d1",
        log: silentLogger,
        local: { host: "127.0.0.1", port: p.at.port },
        remote: p.at,
      }),
    ).rejects.toThrow(`d1: cannot bind UDP 127.0.0.1:${p.at.port}: EADDRINUSE (address already in use)`);
  });

  test("after close, frames are counted as not sent", async () => {
    const { tap, port } = await setup();
    port.close();
    port.close();
    tap.sink?.([frame(1)]);
    expect(port.stats().drops).toEqual({ "not-connected": 1 });
    expect(port.describe()).toBe("closed");
  });
});
