import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { silentLogger } from "../../../src/log.js";
import { encodeFrames } from "../../../src/ports/length-prefixed-frames.js";
import { WebsocketPort, type WebsocketPortOptions } from "../../../src/ports/websocket-port.js";
import { waitFor } from "./fake-port.js";

const frame = (tag: number, len = 60) => Buffer.alloc(len, tag);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** a WebsocketPort on the server end of a fresh connection, and the client end */
async function pair(options: WebsocketPortOptions) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  cleanups.push(() => wss.close());
  const server = new Promise<WebSocket>((r) => wss.once("connection", r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  client.on("error", () => {});
  cleanups.push(() => client.terminate());
  const received: Buffer[] = [];
  client.on("message", (d: Buffer) => received.push(d));
  await new Promise((r) => client.once("open", r));
  const ends: string[] = [];
  const port = new WebsocketPort("w0#1", "websocket", await server, "test", options, silentLogger, (why) =>
    ends.push(why),
  );
  const fromPeer: Buffer[] = [];
  port.setReceiver((frames) => fromPeer.push(...frames));
  return { port, client, received, ends, fromPeer };
}

describe("WebsocketPort", () => {
  test("frames it cannot send are counted, not sent; sends after the end are counted", async () => {
    const { port, client, received, ends } = await pair({ framing: "raw", maxFrameLength: 1000 });
    port.send([frame(1, 13), frame(2, 1001), frame(3)]);
    await waitFor("the good frame", () => received.length === 1);
    expect(received).toEqual([frame(3)]);
    expect(port.stats()).toMatchObject({ txFrames: 1, drops: { "frame-too-short": 1, "frame-too-long": 1 } });
    client.close();
    await waitFor("the end", () => ends.length === 1);
    expect(ends).toEqual(["closed"]);
    expect(port.closed).toBe(true);
    port.send([frame(4)]);
    expect(port.stats().drops["not-connected"]).toBe(1);
    expect(port.describe()).toBe("closed");
  });

  test("qemu framing: a peer that leaves inside a frame is counted", async () => {
    const { port, client, fromPeer, ends } = await pair({ framing: "qemu" });
    const wire = encodeFrames([frame(1), frame(2)]);
    client.send(wire.subarray(0, 64 + 10));
    await waitFor("the first frame", () => fromPeer.length === 1);
    client.close();
    await waitFor("the end", () => ends.length === 1);
    expect(port.stats().drops).toEqual({ "peer-gone-mid-frame": 1 });
  });

  test("close() ends the connection with 1001 and the owner hears of it once", async () => {
    const { port, client, ends } = await pair({ framing: "raw" });
    const code = new Promise<number>((r) => client.once("close", r));
    port.close();
    port.close();
    expect(await code).toBe(1001);
    await waitFor("the end", () => ends.length === 1);
    expect(ends).toEqual(["closed"]);
  });
});
