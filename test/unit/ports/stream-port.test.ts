/**
 * StreamPort's transmit side: frames sent during one turn of the event loop leave in
 * one write, in QEMU's framing and in order.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { StreamPort } from "../../../src/ports/stream-port.js";
import { Ipv4Output } from "../../../src/stack/ipv4-output.js";
import { checksumOffloaded, pseudoHeaderSum } from "../../../src/stack/wire/checksum.js";
import { decodeEthernet } from "../../../src/stack/wire/ethernet.js";
import { markOffload } from "../../../src/stack/wire/frame-offload.js";
import { decodeIpv4, IpProto } from "../../../src/stack/wire/ipv4.js";
import { decodeTcp, TcpFlag, tcpHeaderLength } from "../../../src/stack/wire/tcp.js";
import { describeWith } from "../native/native-env.js";
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

describeWith("StreamPort with the native addon", ["addon"], () => {
  it("takes super frames and writes them as checksummed MSS segments", async () => {
    const { ours, peer } = await pair();
    const port = new StreamPort("s0", "socket-listen", silentLogger);
    expect(port.acceptsOffloads).toBe(true);
    port.useSocket(ours, "peer", () => {});
    const payload = Buffer.alloc(5000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const [src, dst] = [0x0a000202, 0x0a00020f];
    const seg = {
      srcPort: 80,
      dstPort: 40000,
      seq: 1000,
      ack: 1,
      flags: TcpFlag.ack | TcpFlag.psh,
      window: 100,
      urgent: 0,
      payload: Buffer.alloc(0),
      checksum: pseudoHeaderSum(src, dst, IpProto.tcp, tcpHeaderLength + payload.length),
    };
    const mac = Buffer.alloc(6, 2);
    const headers = new Ipv4Output(1500).tcp(mac, mac, src, dst, seg, checksumOffloaded, payload);
    markOffload(headers, {
      checksum: "partial",
      csumStart: 34,
      csumOffset: 16,
      gsoSize: 1460,
      tail: payload,
    });
    port.send([headers]);
    const decoder = new LengthPrefixedFrames();
    const got: Buffer[] = [];
    peer.on("data", (c: Buffer) => got.push(...decoder.push(c).frames.map((f) => Buffer.from(f))));
    await waitFor("four segments at the peer", () => got.length === 4);
    const payloads = got.map((f) => {
      const eth = decodeEthernet(f);
      const ip = eth.ok ? decodeIpv4(eth.value.payload) : undefined;
      const tcp = ip?.ok ? decodeTcp(ip.value.payload, ip.value) : undefined; // checksums verified
      if (!tcp?.ok) throw new Error("a segment does not decode");
      expect(f.length).toBeLessThanOrEqual(1514);
      return tcp.value.payload;
    });
    expect(Buffer.concat(payloads).equals(payload)).toBe(true);
    expect(port.stats()).toMatchObject({ txFrames: 1, txBytes: headers.length + payload.length });
  });
});
