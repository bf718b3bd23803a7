import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  checksumFull,
  checksumOffloaded,
  onesSum,
  type PseudoHeader,
  pseudoHeaderSum,
} from "../../../../src/stack/wire/checksum.js";
import { decodeIpv4 } from "../../../../src/stack/wire/ipv4.js";
import {
  decodeUdp,
  encodeUdp,
  type UdpDatagram,
  udpEncodingLength,
  udpMaxPayload,
} from "../../../../src/stack/wire/udp.js";
import {
  arbGarbage,
  arbMutation,
  arbPseudo,
  arbUdpDatagram,
  hex,
  mutate,
  reasonOf,
  unwrap,
} from "./arbitraries.js";
import { udpDatagram } from "./frames.js";

function encode(d: UdpDatagram, ip: PseudoHeader, policy = checksumFull): Buffer {
  const out = Buffer.alloc(udpEncodingLength(d), 0xa5);
  expect(encodeUdp(d, out, 0, ip, policy)).toBe(out.length);
  return out;
}

const ip = unwrap(decodeIpv4(udpDatagram.subarray(14)));
const captured = ip.payload;

/** Sum over a datagram's first `length` bytes plus its pseudo-header. */
const verifySum = (b: Buffer, p: PseudoHeader, length = b.length) =>
  onesSum(b, 0, length, pseudoHeaderSum(p.src, p.dst, 17, length));

describe("decode real datagrams", () => {
  test("Linux's 10.99.0.1:35410 → 10.99.0.2:9999 'udp payload!'", () => {
    const d = unwrap(decodeUdp(captured, ip));
    expect(d).toMatchObject({ srcPort: 35410, dstPort: 9999, checksum: 0x96c6 });
    expect(d.payload.toString()).toBe("udp payload!");
    expect(d.payload.buffer).toBe(udpDatagram.buffer);
    expect(encode(d, ip).equals(captured)).toBe(true);
  });

  test("the checksum depends on the pseudo-header addresses", () => {
    expect(reasonOf(decodeUdp(captured, { src: ip.src, dst: ip.dst + 1 }))).toBe("udp-bad-checksum");
    expect(decodeUdp(captured, { src: ip.src, dst: ip.dst + 1 }, checksumOffloaded).ok).toBe(true);
  });

  test("a checksum of 0 means none and is accepted", () => {
    const b = Buffer.from(captured);
    b.writeUInt16BE(0, 6);
    expect(unwrap(decodeUdp(b, ip)).checksum).toBe(0);
  });

  test("the payload is trimmed to the length field", () => {
    const d = hex("0035 0400 000a 0000 6869 ffff ffff");
    expect(unwrap(decodeUdp(d, ip)).payload.toString()).toBe("hi");
  });
});

describe("rejects", () => {
  test("under 8 bytes", () => {
    expect(reasonOf(decodeUdp(Buffer.alloc(0), ip))).toBe("udp-truncated");
    expect(reasonOf(decodeUdp(captured.subarray(0, 7), ip))).toBe("udp-truncated");
  });

  test("a length field below 8 or beyond the bytes present", () => {
    expect(reasonOf(decodeUdp(hex("0035 0035 0007 0000"), ip))).toBe("udp-bad-length");
    expect(reasonOf(decodeUdp(captured.subarray(0, 19), ip))).toBe("udp-bad-length");
  });

  test("a corrupted payload", () => {
    const b = Buffer.from(captured);
    b[10] = (b[10] ?? 0) ^ 1;
    expect(reasonOf(decodeUdp(b, ip))).toBe("udp-bad-checksum");
  });
});

describe("encode", () => {
  test("a computed checksum of 0 is sent as 0xffff", () => {
    // Choose the payload word so the sum over everything else is cancelled exactly.
    const p = { src: 0x0a000202, dst: 0x0a00020f };
    const d: UdpDatagram = { srcPort: 53, dstPort: 1024, payload: Buffer.alloc(2) };
    const zero = encode(d, p);
    zero.writeUInt16BE(0, 6);
    const rest = verifySum(zero, p);
    d.payload.writeUInt16BE(~rest & 0xffff, 0);
    const b = encode(d, p);
    expect(b.readUInt16BE(6)).toBe(0xffff);
    expect(verifySum(b, p)).toBe(0xffff);
    expect(unwrap(decodeUdp(b, p)).payload.equals(d.payload)).toBe(true);
  });

  test("without fillTx writes the record's checksum (or 0, 'none')", () => {
    const d = unwrap(decodeUdp(captured, ip));
    expect(encode({ ...d, checksum: 0x1111 }, ip, checksumOffloaded).readUInt16BE(6)).toBe(0x1111);
    expect(encode({ ...d, checksum: undefined }, ip, checksumOffloaded).readUInt16BE(6)).toBe(0);
  });

  test("builds in place; refuses oversize payloads and small buffers", () => {
    const out = Buffer.alloc(8 + 5, 0xa5);
    out.write("hello", 8);
    const d: UdpDatagram = { srcPort: 1, dstPort: 2, payload: out.subarray(8) };
    expect(encodeUdp(d, out, 0, ip)).toBe(13);
    expect(unwrap(decodeUdp(out, ip)).payload.toString()).toBe("hello");
    expect(() => encodeUdp(d, Buffer.alloc(12), 0, ip)).toThrow(RangeError);
    const huge: UdpDatagram = { srcPort: 1, dstPort: 2, payload: Buffer.alloc(udpMaxPayload + 1) };
    expect(() => encodeUdp(huge, Buffer.alloc(70000), 0, ip)).toThrow(RangeError);
    const max = encode({ ...huge, payload: Buffer.alloc(udpMaxPayload, 1) }, ip);
    expect(max.readUInt16BE(4)).toBe(65535);
    expect(unwrap(decodeUdp(max, ip)).payload.length).toBe(udpMaxPayload);
  });
});

describe("properties", () => {
  test.prop([arbUdpDatagram, arbPseudo])("decode(encode(x)) equals x; the checksum verifies", (d, p) => {
    const b = encode(d, p);
    expect(b.readUInt16BE(6)).not.toBe(0);
    expect(verifySum(b, p)).toBe(0xffff);
    const got = unwrap(decodeUdp(b, p));
    expect(got).toEqual({ ...d, checksum: got.checksum });
  });

  test.prop([arbUdpDatagram, arbPseudo, fc.integer({ min: 0, max: 0xffff })])(
    "without checksums, the record's checksum round-trips too",
    (d, p, checksum) => {
      const x = { ...d, checksum };
      expect(unwrap(decodeUdp(encode(x, p, checksumOffloaded), p, checksumOffloaded))).toEqual(x);
    },
  );

  test.prop([arbUdpDatagram, arbPseudo])("encode(decode(bytes)) reproduces the bytes", (d, p) => {
    const bytes = encode(d, p);
    expect(encode(unwrap(decodeUdp(bytes, p)), p).equals(bytes)).toBe(true);
  });

  test.prop([arbGarbage(60), arbPseudo, fc.option(fc.nat(), { nil: undefined })])(
    "random bytes never throw; accepted ones re-encode",
    (bytes, p, lengthField) => {
      const b = Buffer.from(bytes);
      if (lengthField !== undefined && b.length >= 8) b.writeUInt16BE(lengthField % (b.length + 1), 4);
      const r = decodeUdp(b, p, checksumOffloaded);
      if (r.ok) {
        const length = b.readUInt16BE(4);
        expect(encode(r.value, p, checksumOffloaded).equals(b.subarray(0, length))).toBe(true);
      } else {
        expect(["udp-truncated", "udp-bad-length"]).toContain(r.reason);
      }
      const v = decodeUdp(b, p);
      if (v.ok && v.value.checksum !== 0) expect(verifySum(b, p, b.readUInt16BE(4))).toBe(0xffff);
    },
  );

  test.prop([arbUdpDatagram, arbPseudo, arbMutation])(
    "mutated datagrams never throw; accepted ones verify",
    (d, p, m) => {
      const b = mutate(encode(d, p), m);
      const r = decodeUdp(b, p);
      if (r.ok && r.value.checksum !== 0) expect(verifySum(b, p, b.readUInt16BE(4))).toBe(0xffff);
    },
  );
});
