/**
 * OffloadedFrameEncoder (the addon's encodeStreamFrames behind it) against the JS
 * reference: for any mix of plain and offload-marked frames, the bytes written to a
 * QEMU stream are exactly encodeFrames(resolveOffloads(frames)).
 */
import { fc, test } from "@fast-check/vitest";
import { expect, it } from "vitest";
import { encodeStreamFrames } from "../../../src/native/binding.js";
import { encodeFrames, LengthPrefixedFrames } from "../../../src/ports/length-prefixed-frames.js";
import { OffloadedFrameEncoder } from "../../../src/ports/stream-offloads.js";
import { Ipv4Output } from "../../../src/stack/ipv4-output.js";
import { checksumFull, checksumOffloaded, pseudoHeaderSum } from "../../../src/stack/wire/checksum.js";
import { decodeEthernet } from "../../../src/stack/wire/ethernet.js";
import { type FrameOffload, markOffload, resolveOffloads } from "../../../src/stack/wire/frame-offload.js";
import { decodeIpv4, IpProto } from "../../../src/stack/wire/ipv4.js";
import { decodeTcp, TcpFlag, type TcpSegment, tcpEncodingLength } from "../../../src/stack/wire/tcp.js";
import { decodeUdp, encodeUdp } from "../../../src/stack/wire/udp.js";
import { describeWith } from "../native/native-env.js";

const src = 0x0a000202;
const dst = 0x0a00020f;
const srcMac = Buffer.from("525500000202", "hex");
const dstMac = Buffer.from("525400123456", "hex");
const out = new Ipv4Output(65535);

interface TcpSpec {
  kind: "tcp";
  len: number;
  gso: number;
  seq: number;
  flags: number;
  ts: boolean;
  asTail: boolean;
  vlan: boolean;
  partial: boolean;
}
interface UdpSpec {
  kind: "udp";
  len: number;
  partial: boolean;
}
type Spec = TcpSpec | UdpSpec;

function payloadOf(len: number, salt: number): Buffer {
  const p = Buffer.alloc(len);
  for (let i = 0; i < len; i++) p[i] = (i * 13 + salt) & 0xff;
  return p;
}

/** 802.1Q tag inserted after the MACs (VID 5); the mark's offsets move with it. */
function tagged(frame: Buffer): Buffer {
  return Buffer.concat([frame.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), frame.subarray(12)]);
}

function build(s: Spec, salt: number): Buffer {
  if (s.kind === "udp") {
    const payload = payloadOf(s.len, salt);
    const dgram = Buffer.alloc(8 + payload.length);
    const policy = s.partial ? checksumOffloaded : checksumFull;
    const checksum = pseudoHeaderSum(src, dst, IpProto.udp, dgram.length);
    encodeUdp({ srcPort: 53, dstPort: 4000, payload, checksum }, dgram, 0, { src, dst }, policy);
    const [f] = out.frames({ srcMac, dstMac, src, dst, protocol: IpProto.udp, payload: dgram });
    if (!f) throw new Error("no frame");
    if (s.partial) markOffload(f, { checksum: "partial", csumStart: 34, csumOffset: 6, gsoSize: 0 });
    return f;
  }
  const payload = payloadOf(s.len, salt);
  const seg: TcpSegment = {
    srcPort: 5201,
    dstPort: 40000,
    seq: s.seq,
    ack: 77,
    flags: s.flags,
    window: 500,
    urgent: 0,
    payload,
    ...(s.ts ? { tsVal: 1234, tsEcr: 5678 } : {}),
  };
  // tails come with partial checksums only (the stack's super frames)
  const tail = s.asTail && s.partial && !s.vlan && payload.length > 0 ? payload : undefined;
  const l4 = tcpEncodingLength(seg);
  const withSum = { ...seg, checksum: pseudoHeaderSum(src, dst, IpProto.tcp, l4) };
  if (tail) withSum.payload = Buffer.alloc(0);
  let f = out.tcp(srcMac, dstMac, src, dst, withSum, s.partial ? checksumOffloaded : checksumFull, tail);
  const at = s.vlan ? 38 : 34;
  if (s.vlan) f = tagged(f);
  const mark: FrameOffload = s.partial
    ? { checksum: "partial", csumStart: at, csumOffset: 16, gsoSize: s.gso, ...(tail ? { tail } : {}) }
    : { checksum: "valid", csumStart: 0, csumOffset: 0, gsoSize: s.gso, ...(tail ? { tail } : {}) };
  if (s.partial || s.gso > 0 || tail) markOffload(f, mark);
  return f;
}

const arbTcp: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant("tcp" as const),
  len: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 65_000 })),
  gso: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1460 })),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  flags: fc
    .subarray([TcpFlag.fin, TcpFlag.psh, TcpFlag.cwr])
    .map((x) => TcpFlag.ack | x.reduce((a, b) => a | b, 0)),
  ts: fc.boolean(),
  asTail: fc.boolean(),
  vlan: fc.boolean(),
  partial: fc.boolean(),
});
const arbUdp: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant("udp" as const),
  len: fc.integer({ min: 0, max: 1400 }),
  partial: fc.boolean(),
});

/** Every frame of a stream, checksums verified; throws on the first bad one. */
function verifyAll(wire: Buffer): number {
  const r = new LengthPrefixedFrames().push(wire);
  for (const f of r.frames) {
    const eth = decodeEthernet(f);
    if (!eth.ok) throw new Error(eth.reason);
    const ip = decodeIpv4(eth.value.payload);
    if (!ip.ok) throw new Error(ip.reason);
    const l4 =
      ip.value.protocol === IpProto.tcp
        ? decodeTcp(ip.value.payload, ip.value)
        : decodeUdp(ip.value.payload, ip.value);
    if (!l4.ok) throw new Error(l4.reason);
  }
  return r.frames.length;
}

describeWith("OffloadedFrameEncoder", ["addon"], () => {
  const encoder = new OffloadedFrameEncoder();

  test.prop([fc.array(fc.oneof(arbTcp, arbUdp), { minLength: 1, maxLength: 6 })], { numRuns: 300 })(
    "writes exactly what resolveOffloads and encodeFrames would, every checksum valid",
    (specs) => {
      const frames = specs.map((s, i) => build(s, i));
      const before = frames.map((f) => Buffer.from(f));
      const want = encodeFrames(resolveOffloads(frames));
      const got = encoder.encode(frames).wire;
      expect(got.equals(want)).toBe(true);
      expect(verifyAll(got)).toBeGreaterThanOrEqual(frames.length);
      // never changed in place
      expect(frames.map((f, i) => f.equals(before[i] as Buffer))).not.toContain(false);
    },
  );

  it("cuts a 64 KiB super frame whose payload is a tail into MSS segments", () => {
    const spec: TcpSpec = {
      kind: "tcp",
      len: 65_000,
      gso: 1448,
      seq: 0xfffff000, // wraps
      flags: TcpFlag.ack | TcpFlag.psh,
      ts: true,
      asTail: true,
      vlan: false,
      partial: true,
    };
    const wire = new OffloadedFrameEncoder().encode([build(spec, 1)]).wire;
    expect(verifyAll(wire)).toBe(Math.ceil(65_000 / 1448));
    expect(wire.length).toBe(Math.ceil(65_000 / 1448) * (4 + 14 + 20 + 32) + 65_000);
  });

  it("reuses its buffer until told it is held, takes it back when the write is done, grows it", () => {
    const e = new OffloadedFrameEncoder();
    const small = [Buffer.alloc(60, 1)];
    const a = e.encode(small);
    const b = e.encode(small);
    expect(b.wire.buffer).toBe(a.wire.buffer); // written at once: the next writes over it
    b.retire();
    const c = e.encode([Buffer.alloc(60, 2)]);
    expect(c.wire.buffer).not.toBe(b.wire.buffer);
    expect(b.wire.equals(encodeFrames(small))).toBe(true); // a retired encoding is never written over
    c.retire();
    b.done(); // the socket wrote b: its buffer serves the next encoding
    const d = e.encode(small);
    expect(d.wire.buffer).toBe(b.wire.buffer);
    c.done();
    c.done(); // twice changes nothing
    const big = Array.from({ length: 300 }, (_, i) => Buffer.alloc(1514, i));
    const f = e.encode(big);
    expect(f.wire.equals(encodeFrames(big))).toBe(true);
  });

  it("writes nothing into a Buffer too small and says how much it needs", () => {
    const f = Buffer.alloc(60, 3);
    const out = Buffer.alloc(63, 0xee);
    expect(encodeStreamFrames(out, [f])).toBe(-64);
    expect(out.every((b) => b === 0xee)).toBe(true);
    const fits = Buffer.alloc(64);
    expect(encodeStreamFrames(fits, [f], [null], Int32Array.of(-1, 0, 0))).toBe(64);
    expect(fits.equals(encodeFrames([f]))).toBe(true);
  });

  it("refuses arguments of the wrong shape with a TypeError", () => {
    const f = Buffer.alloc(60);
    const out = Buffer.alloc(100);
    expect(() => encodeStreamFrames("x" as unknown as Buffer, [f])).toThrow(TypeError);
    expect(() => encodeStreamFrames(out, "x" as unknown as Buffer[])).toThrow(TypeError);
    expect(() => encodeStreamFrames(out, [f, "x" as unknown as Buffer])).toThrow(TypeError);
    expect(() => encodeStreamFrames(out, [f], [])).toThrow(TypeError);
    expect(() => encodeStreamFrames(out, [f], null, new Int32Array(2))).toThrow(TypeError);
    expect(() => encodeStreamFrames(out, [f], null, new Uint32Array(3) as unknown as Int32Array)).toThrow(
      TypeError,
    );
  });
});
