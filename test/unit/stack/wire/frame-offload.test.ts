import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { Ipv4Output } from "../../../../src/stack/ipv4-output.js";
import { Ipv6Output } from "../../../../src/stack/ipv6-output.js";
import {
  checksumOffloaded,
  foldSum,
  internetChecksum,
  pseudoHeader6,
  pseudoHeaderSum,
} from "../../../../src/stack/wire/checksum.js";
import { decodeEthernet } from "../../../../src/stack/wire/ethernet.js";
import {
  anyOffloaded,
  completePartialChecksum,
  joinTail,
  markOffload,
  offloadOf,
  resolveOffloads,
} from "../../../../src/stack/wire/frame-offload.js";
import { decodeIpv4, IpProto } from "../../../../src/stack/wire/ipv4.js";
import { decodeIpv6 } from "../../../../src/stack/wire/ipv6.js";
import { decodeTcp, TcpFlag, type TcpSegment, tcpEncodingLength } from "../../../../src/stack/wire/tcp.js";
import { decodeUdp, encodeUdp } from "../../../../src/stack/wire/udp.js";

const src = 0x0a000202;
const dst = 0x0a00020f;
const macs = { srcMac: Buffer.from("525500000202", "hex"), dstMac: Buffer.from("525400123456", "hex") };
const EMPTY = Buffer.alloc(0);

/** A TCP frame with a partial checksum, as a TAP with offloads writes or reads it; optionally with a tail. */
function partialTcp(seg: TcpSegment, gsoSize: number, asTail: boolean): Buffer {
  const l4 = tcpEncodingLength(seg);
  const tail = asTail && seg.payload.length > 0 ? seg.payload : undefined;
  const withSum = { ...seg, checksum: pseudoHeaderSum(src, dst, IpProto.tcp, l4) };
  if (tail) withSum.payload = EMPTY;
  const frame = new Ipv4Output(65535).tcp(
    macs.srcMac,
    macs.dstMac,
    src,
    dst,
    withSum,
    checksumOffloaded,
    tail,
  );
  return markOffload(frame, { checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize, tail });
}

/** Decodes a resolved frame, verifying the IPv4 and TCP checksums. */
function tcpOf(frame: Buffer) {
  const eth = decodeEthernet(frame);
  if (!eth.ok) throw new Error(eth.reason);
  const ip = decodeIpv4(eth.value.payload);
  if (!ip.ok) throw new Error(ip.reason);
  const t = decodeTcp(ip.value.payload, ip.value);
  if (!t.ok) throw new Error(t.reason);
  return { ip: ip.value, tcp: t.value };
}

describe("resolveOffloads", () => {
  test.prop([
    fc.integer({ min: 0, max: 20_000 }),
    fc.integer({ min: 64, max: 1460 }),
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.subarray([TcpFlag.fin, TcpFlag.psh, TcpFlag.cwr]),
    fc.boolean(),
    fc.boolean(),
  ])(
    "splits a TCP super frame as TSO would, every segment checksummed",
    (len, mss, seq, extra, ts, asTail) => {
      const payload = Buffer.alloc(len);
      for (let i = 0; i < len; i++) payload[i] = (i * 7 + 3) & 0xff;
      const flags = TcpFlag.ack | extra.reduce((a, b) => a | b, 0);
      const seg: TcpSegment = {
        srcPort: 5201,
        dstPort: 40000,
        seq,
        ack: 77,
        flags,
        window: 500,
        urgent: 0,
        payload,
      };
      if (ts) {
        seg.tsVal = 1234;
        seg.tsEcr = 5678;
      }
      const frame = partialTcp(seg, mss, asTail);
      const before = Buffer.from(frame);
      const out = resolveOffloads([frame]);
      expect(out.length).toBe(Math.max(1, Math.ceil(len / mss)));
      const got: Buffer[] = [];
      out.forEach((f, i) => {
        expect(offloadOf(f)).toBeUndefined();
        const { ip, tcp } = tcpOf(f);
        const last = i === out.length - 1;
        expect(tcp.seq).toBe((seq + i * mss) >>> 0);
        expect(tcp.payload.length).toBe(last ? len - i * mss : mss);
        expect((tcp.flags & (TcpFlag.fin | TcpFlag.psh)) !== 0).toBe(
          last && (flags & (TcpFlag.fin | TcpFlag.psh)) !== 0,
        );
        expect((tcp.flags & TcpFlag.cwr) !== 0).toBe(i === 0 && (flags & TcpFlag.cwr) !== 0);
        expect(tcp.tsVal).toBe(ts ? 1234 : undefined);
        expect(ip.id).toBe((out.length > 0 ? tcpOf(out[0] as Buffer).ip.id + i : 0) & 0xffff);
        got.push(tcp.payload);
      });
      expect(Buffer.concat(got).equals(payload)).toBe(true);
      expect(frame.equals(before)).toBe(true); // the marked frame is never changed in place
    },
  );

  it("completes a partial UDP checksum in a copy and leaves unmarked frames alone", () => {
    const payload = Buffer.from("hello, offloads");
    const dgram = Buffer.alloc(8 + payload.length);
    const partial = pseudoHeaderSum(src, dst, IpProto.udp, dgram.length);
    encodeUdp(
      { srcPort: 53, dstPort: 4000, payload, checksum: partial },
      dgram,
      0,
      { src, dst },
      checksumOffloaded,
    );
    const [frame] = new Ipv4Output(1500).frames({ ...macs, src, dst, protocol: IpProto.udp, payload: dgram });
    if (!frame) throw new Error("no frame");
    markOffload(frame, { checksum: "partial", csumStart: 34, csumOffset: 6, gsoSize: 0 });
    const plain = Buffer.from(frame);
    const [resolved, untouched] = resolveOffloads([frame, plain]);
    expect(untouched).toBe(plain);
    expect(resolved).not.toBe(frame);
    const ip = decodeIpv4((resolved as Buffer).subarray(14));
    expect(ip.ok && decodeUdp(ip.value.payload, ip.value).ok).toBe(true);
    expect(anyOffloaded([plain])).toBe(false);
    expect(anyOffloaded([plain, frame])).toBe(true);
  });

  it("joins a tail to its headers", () => {
    const payload = Buffer.alloc(3000, 9);
    const seg: TcpSegment = {
      srcPort: 1,
      dstPort: 2,
      seq: 10,
      ack: 0,
      flags: TcpFlag.ack,
      window: 1,
      urgent: 0,
      payload,
    };
    const f = partialTcp(seg, 0, true);
    expect(f.length).toBe(14 + 20 + 20);
    const w = joinTail(f);
    expect(w.length).toBe(14 + 20 + 20 + 3000);
    const [resolved] = resolveOffloads([f]);
    expect(tcpOf(resolved as Buffer).tcp.payload.equals(payload)).toBe(true);
  });
});

/** An Ethernet + IPv4 + UDP or TCP frame with a correct L4 checksum. */
function frameWithChecksum(proto: 6 | 17, payload: Buffer): { frame: Buffer; csumOffset: number } {
  const l4Len = (proto === 6 ? 20 : 8) + payload.length;
  const f = Buffer.alloc(14 + 20 + l4Len);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + l4Len, 16);
  f[22] = 64;
  f[23] = proto;
  f.writeUInt32BE(0x0a000201, 26);
  f.writeUInt32BE(0x0a00020f, 30);
  f.writeUInt16BE(1234, 34);
  f.writeUInt16BE(80, 36);
  const csumOffset = proto === 6 ? 16 : 6;
  if (proto === 6) {
    f.writeUInt32BE(1000, 38);
    f[46] = 5 << 4;
    f[47] = 0x18;
    f.writeUInt16BE(65535, 48);
  } else {
    f.writeUInt16BE(l4Len, 38);
  }
  payload.copy(f, 34 + (proto === 6 ? 20 : 8));
  let c = internetChecksum(f, 34, f.length, pseudoHeaderSum(0x0a000201, 0x0a00020f, proto, l4Len));
  if (c === 0 && proto === 17) c = 0xffff;
  f.writeUInt16BE(c, 34 + csumOffset);
  return { frame: f, csumOffset };
}

describe("completePartialChecksum", () => {
  test.prop([fc.constantFrom(6 as const, 17 as const), fc.uint8Array({ maxLength: 1500 })])(
    "turns a partial (pseudo-header) checksum into the full one",
    (proto, payload) => {
      const { frame, csumOffset } = frameWithChecksum(proto, Buffer.from(payload));
      const want = frame.readUInt16BE(34 + csumOffset);
      const partial = Buffer.from(frame);
      const l4Len = frame.length - 34;
      // What the kernel hands over with NEEDS_CSUM: the folded pseudo-header sum, not complemented.
      partial.writeUInt16BE(foldSum(pseudoHeaderSum(0x0a000201, 0x0a00020f, proto, l4Len)), 34 + csumOffset);
      expect(completePartialChecksum(partial, 34, csumOffset)).toBe(true);
      const got = partial.readUInt16BE(34 + csumOffset);
      // 0x0000 and 0xffff are the same ones'-complement value; TCP may carry either.
      expect(got === want || (proto === 6 && (got ^ want) === 0xffff && (got === 0 || want === 0))).toBe(
        true,
      );
      expect(
        internetChecksum(partial, 34, partial.length, pseudoHeaderSum(0x0a000201, 0x0a00020f, proto, l4Len)),
      ).toBe(0);
    },
  );

  it("refuses a checksum position outside the frame", () => {
    expect(completePartialChecksum(Buffer.alloc(40), 34, 16)).toBe(false);
    expect(completePartialChecksum(Buffer.alloc(40), 41, 0)).toBe(false);
  });
});

describe("resolveOffloads over IPv6", () => {
  it("splits a TCP/IPv6 super frame into MSS segments with IPv6 pseudo-header checksums", () => {
    const s6 = Buffer.from("fec00000000000000000000000000002", "hex");
    const d6 = Buffer.from("fec0000000000000505400fffe123456", "hex");
    const payload = Buffer.alloc(5000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const seg: TcpSegment = {
      srcPort: 80,
      dstPort: 40000,
      seq: 0xfffff000,
      ack: 1,
      flags: TcpFlag.ack | TcpFlag.psh | TcpFlag.fin,
      window: 1000,
      urgent: 0,
      payload,
    };
    const ph = pseudoHeader6(s6, d6);
    seg.checksum = pseudoHeaderSum(ph.src, ph.dst, IpProto.tcp, tcpEncodingLength(seg));
    const f = new Ipv6Output(65535).tcp(macs.srcMac, macs.dstMac, s6, d6, seg, checksumOffloaded);
    markOffload(f, { checksum: "partial", csumStart: 54, csumOffset: 16, gsoSize: 1440, tail: undefined });
    const out = resolveOffloads([f]);
    expect(out.map((o) => o.length)).toEqual([1440, 1440, 1440, 680].map((n) => 74 + n));
    let at = 0;
    out.forEach((o, i) => {
      const ip = decodeIpv6((decodeEthernet(o) as { ok: true; value: { payload: Buffer } }).value.payload);
      if (!ip.ok) throw new Error(ip.reason);
      const t = decodeTcp(ip.value.payload, pseudoHeader6(ip.value.src, ip.value.dst));
      if (!t.ok) throw new Error(t.reason);
      expect(t.value.seq).toBe((0xfffff000 + at) >>> 0);
      expect(t.value.payload).toEqual(payload.subarray(at, at + t.value.payload.length));
      expect(t.value.flags & (TcpFlag.fin | TcpFlag.psh)).toBe(
        i === out.length - 1 ? TcpFlag.fin | TcpFlag.psh : 0,
      );
      at += t.value.payload.length;
    });
    expect(at).toBe(5000);
  });
});
