/**
 * StreamPort's transmit side: frames sent during one turn of the event loop leave in
 * one write, in QEMU's framing and in order.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { StreamPort } from "../../../src/ports/stream-port.js";
import { waitFor } from "./fake-port.js";

const open: net.Socket[] = [];
let server: net.Server | undefined;

afterEach(() => {
  for (const s of open) s.destroy();
  open.length = 0;
  server?.close();
  server = undefined;
});

/** A connected pair on loopback: the port's end and the peer's. */
async function pair(): Promise<{ ours: net.Socket; peer: net.Socket }> {
  const accepted = new Promise<net.Socket>((resolve) => {
    server = net.createServer(resolve).listen(0, "127.0.0.1");
  });
  await new Promise((r) => server?.once("listening", r));
  const addr = server?.address() as net.AddressInfo;
  const peer = net.connect(addr.port, "127.0.0.1");
  const ours = await accepted;
  open.push(ours, peer);
  return { ours, peer };
}

describe("StreamPort", () => {
  it("gathers the frames of one turn into a single write, in order", async () => {
    const { ours, peer } = await pair();
    const port = new StreamPort("s0", "socket-listen", silentLogger);
    port.useSocket(ours, "peer", () => {});
    const writes: number[] = [];
    const write = ours.write.bind(ours);
    ours.write = ((chunk: Buffer, ...rest: never[]) => {
      writes.push(chunk.length);
      return write(chunk, ...rest);
    }) as typeof ours.write;
    const frames = [1, 2, 3, 4].map((n) => Buffer.alloc(60 + n, n));
    port.send(frames.slice(0, 2));
    port.send(frames.slice(2));
    expect(writes).toEqual([]); // nothing before the turn ends
    const decoder = new LengthPrefixedFrames();
    const got: Buffer[] = [];
    peer.on("data", (c: Buffer) => got.push(...decoder.push(c).frames.map((f) => Buffer.from(f))));
    await waitFor("four frames at the peer", () => got.length === 4);
    expect(writes).toEqual([frames.reduce((n, f) => n + 4 + f.length, 0)]);
    expect(got).toEqual(frames);
    expect(port.stats()).toMatchObject({ txFrames: 4 });
  });
});
