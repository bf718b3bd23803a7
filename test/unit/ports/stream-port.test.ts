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

/** A TCP super frame with a partial checksum and its payload as a tail, as the user stack sends it. */
function superFrame(seq: number, payload: Buffer, gsoSize: number): Buffer {
  const [src, dst] = [0x0a000202, 0x0a00020f];
  const seg = {
    srcPort: 80,
    dstPort: 40000,
    seq,
    ack: 1,
    flags: TcpFlag.ack | TcpFlag.psh,
    window: 100,
    urgent: 0,
    payload: Buffer.alloc(0),
    checksum: pseudoHeaderSum(src, dst, IpProto.tcp, tcpHeaderLength + payload.length),
  };
  const mac = Buffer.alloc(6, 2);
  const headers = new Ipv4Output(1500).tcp(mac, mac, src, dst, seg, checksumOffloaded, payload);
  return markOffload(headers, { checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize, tail: payload });
}

/** The TCP segment of a frame, checksums verified. */
function segmentOf(f: Buffer) {
  const eth = decodeEthernet(f);
  const ip = eth.ok ? decodeIpv4(eth.value.payload) : undefined;
  const tcp = ip?.ok ? decodeTcp(ip.value.payload, ip.value) : undefined;
  if (!tcp?.ok) throw new Error("a segment does not decode");
  return tcp.value;
}

describeWith("StreamPort with the native addon", ["addon"], () => {
  it("takes super frames and writes them as checksummed MSS segments", async () => {
    const { ours, peer } = await pair();
    const port = new StreamPort("s0", "socket-listen", silentLogger);
    expect(port.acceptsOffloads).toBe(true);
    port.useSocket(ours, "peer", () => {});
    const payload = Buffer.alloc(5000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const headers = superFrame(1000, payload, 1460);
    port.send([headers]);
    const decoder = new LengthPrefixedFrames();
    const got: Buffer[] = [];
    peer.on("data", (c: Buffer) => got.push(...decoder.push(c).frames.map((f) => Buffer.from(f))));
    await waitFor("four segments at the peer", () => got.length === 4);
    const payloads = got.map((f) => {
      expect(f.length).toBeLessThanOrEqual(1514);
      return segmentOf(f).payload;
    });
    expect(Buffer.concat(payloads).equals(payload)).toBe(true);
    expect(port.stats()).toMatchObject({ txFrames: 1, txBytes: headers.length + payload.length });
  });

  it("never writes over bytes a congested socket still holds", async () => {
    const { ours, peer } = await pair();
    const port = new StreamPort("s0", "socket-listen", silentLogger, { maxQueuedBytes: 1 << 30 });
    port.useSocket(ours, "peer", () => {});
    peer.pause();
    // super frame k carries bytes equal to k & 0xff at sequence numbers from k << 20
    let k = 0;
    let congestedTurns = 0;
    for (let turn = 0; turn < 400 && congestedTurns < 3; turn++) {
      for (let i = 0; i < 8; i++, k++) port.send([superFrame(k << 20, Buffer.alloc(64_000, k & 0xff), 1448)]);
      await new Promise((r) => setImmediate(r));
      if (ours.writableLength > 0) congestedTurns++;
    }
    expect(congestedTurns).toBe(3);
    const decoder = new LengthPrefixedFrames();
    let segments = 0;
    let bad = 0;
    peer.on("data", (c: Buffer) => {
      for (const f of decoder.push(c).frames) {
        const t = segmentOf(f);
        const want = (t.seq >>> 20) & 0xff;
        if (!t.payload.every((b) => b === want)) bad++;
        segments++;
      }
    });
    peer.resume();
    const expected = k * Math.ceil(64_000 / 1448);
    await waitFor("every segment at the peer", () => segments === expected, 30_000);
    expect(bad).toBe(0);
  }, 60_000);
});
