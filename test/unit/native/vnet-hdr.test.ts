import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  decodeVnetHdr,
  encodeVnetHdr,
  noOffloadHdr,
  splitVnetFrame,
  VnetFlags,
  VnetGso,
  type VnetHdr,
  vnetCsumOffsetAt,
  vnetCsumStartAt,
  vnetFlagsAt,
  vnetFrameProblem,
  vnetGsoSizeAt,
  vnetGsoTypeAt,
  vnetHdrBuffer,
} from "../../../src/native/vnet-hdr.js";

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

  test.prop([
    fc.oneof(
      arbHdr.map((h) => vnetHdrBuffer(h)),
      fc.uint8Array({ minLength: 12, maxLength: 12 }).map((a) => Buffer.from(a)),
      fc.uint8Array({ maxLength: 11 }).map((a) => Buffer.from(a)),
    ),
    fc.integer({ min: 0, max: 80 }),
  ])("checks and reads in place exactly as splitVnetFrame decodes", (hdr, frameLength) => {
    const b = Buffer.concat([hdr, Buffer.alloc(frameLength)]);
    const s = splitVnetFrame(b);
    expect(vnetFrameProblem(b)).toBe(s.ok ? undefined : s.reason);
    if (!s.ok) return;
    expect({
      flags: vnetFlagsAt(b),
      gsoType: vnetGsoTypeAt(b),
      gsoSize: vnetGsoSizeAt(b),
      csumStart: vnetCsumStartAt(b),
      csumOffset: vnetCsumOffsetAt(b),
    }).toEqual({
      flags: s.value.hdr.flags,
      gsoType: s.value.hdr.gsoType,
      gsoSize: s.value.hdr.gsoSize,
      csumStart: s.value.hdr.csumStart,
      csumOffset: s.value.hdr.csumOffset,
    });
  });
});
