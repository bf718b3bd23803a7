import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  completeChecksum,
  decodeVnetHdr,
  encodeVnetHdr,
  noOffloadHdr,
  splitVnetFrame,
  VnetFlags,
  VnetGso,
  type VnetHdr,
  vnetHdrBuffer,
} from "../../../src/native/vnet-hdr.js";
import { foldSum, internetChecksum, pseudoHeaderSum } from "../../../src/stack/wire/checksum.js";

const u16 = fc.integer({ min: 0, max: 0xffff });
const arbHdr: fc.Arbitrary<VnetHdr> = fc
  .record({
    flags: fc.constantFrom(0, VnetFlags.needsCsum, VnetFlags.dataValid, 3),
    gso: fc.constantFrom(VnetGso.none, VnetGso.tcpv4, VnetGso.udp, VnetGso.tcpv6),
    ecn: fc.boolean(),
    hdrLen: u16,
    gsoSize: fc.integer({ min: 1, max: 0xffff }),
    csumStart: u16,
    csumOffset: u16,
  })
  .map(({ gso, ecn, gsoSize, ...r }) => ({
    ...r,
    gsoType: gso | (ecn ? VnetGso.ecn : 0),
    gsoSize: gso === VnetGso.none ? 0 : gsoSize,
  }));

describe("virtio_net_hdr", () => {
  test.prop([arbHdr, fc.constantFrom(10 as const, 12 as const)])("round-trips", (h, len) => {
    const b = Buffer.alloc(len + 4, 0xee);
    expect(encodeVnetHdr(h, b, 2, len)).toBe(len);
    const d = decodeVnetHdr(b.subarray(2), len);
    expect(d).toEqual({ ok: true, value: h });
    if (len === 12) expect(b.readUInt16LE(2 + 10)).toBe(0);
    expect(b[len + 2]).toBe(0xee); // nothing written past the header
  });

  it("lays fields out little-endian at the kernel's offsets", () => {
    const b = vnetHdrBuffer({
      flags: VnetFlags.needsCsum,
      gsoType: VnetGso.tcpv4,
      hdrLen: 0x0036,
      gsoSize: 0x05b4,
      csumStart: 0x0022,
      csumOffset: 0x0010,
    });
    expect(b).toEqual(Buffer.from([1, 1, 0x36, 0, 0xb4, 5, 0x22, 0, 0x10, 0, 0, 0]));
  });

  it("reads the all-zero header of a plain frame as no offload", () => {
    expect(decodeVnetHdr(Buffer.alloc(12))).toEqual({ ok: true, value: { ...noOffloadHdr } });
  });

  it("refuses short, unknown and inconsistent headers with a reason", () => {
    expect(decodeVnetHdr(Buffer.alloc(11))).toEqual({ ok: false, reason: "vnet-hdr-short" });
    expect(decodeVnetHdr(Buffer.alloc(9), 10)).toEqual({ ok: false, reason: "vnet-hdr-short" });
    expect(decodeVnetHdr(Buffer.from([4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 10)).toEqual({
      ok: false,
      reason: "vnet-hdr-bad-flags",
    });
    expect(decodeVnetHdr(Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0]), 10)).toEqual({
      ok: false,
      reason: "vnet-hdr-bad-gso-type",
    });
    expect(decodeVnetHdr(Buffer.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), 10)).toEqual({
      ok: false,
      reason: "vnet-hdr-gso-without-size",
    });
  });

  test.prop([fc.uint8Array({ maxLength: 40 })])("never throws on arbitrary bytes", (bytes) => {
    const b = Buffer.from(bytes);
    expect(() => decodeVnetHdr(b)).not.toThrow();
    expect(() => splitVnetFrame(b)).not.toThrow();
  });

  it("splits header and frame without copying and checks the checksum position", () => {
    const b = Buffer.concat([
      vnetHdrBuffer({ ...noOffloadHdr, flags: VnetFlags.needsCsum, csumStart: 34, csumOffset: 16 }),
      Buffer.alloc(60),
    ]);
    const s = splitVnetFrame(b);
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    expect(s.value.frame.length).toBe(60);
    expect(s.value.frame.buffer).toBe(b.buffer);
    expect(s.value.frame.byteOffset).toBe(b.byteOffset + 12);
    const short = Buffer.concat([
      vnetHdrBuffer({ ...noOffloadHdr, flags: VnetFlags.needsCsum, csumStart: 34, csumOffset: 16 }),
      Buffer.alloc(51),
    ]);
    expect(splitVnetFrame(short)).toEqual({ ok: false, reason: "vnet-hdr-csum-outside-frame" });
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

describe("completeChecksum", () => {
  test.prop([fc.constantFrom(6 as const, 17 as const), fc.uint8Array({ maxLength: 1500 })])(
    "turns a partial (pseudo-header) checksum into the full one",
    (proto, payload) => {
      const { frame, csumOffset } = frameWithChecksum(proto, Buffer.from(payload));
      const want = frame.readUInt16BE(34 + csumOffset);
      const partial = Buffer.from(frame);
      const l4Len = frame.length - 34;
      // What the kernel hands over with NEEDS_CSUM: the folded pseudo-header sum, not complemented.
      partial.writeUInt16BE(foldSum(pseudoHeaderSum(0x0a000201, 0x0a00020f, proto, l4Len)), 34 + csumOffset);
      expect(completeChecksum(partial, 34, csumOffset)).toBe(true);
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
    expect(completeChecksum(Buffer.alloc(40), 34, 16)).toBe(false);
    expect(completeChecksum(Buffer.alloc(40), 41, 0)).toBe(false);
  });
});
