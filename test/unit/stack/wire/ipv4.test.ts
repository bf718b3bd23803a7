import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { checksumFull, checksumOffloaded, onesSum } from "../../../../src/stack/wire/checksum.js";
import {
  decodeIpv4,
  decodeIpv4Quote,
  encodeIpv4,
  IpProto,
  type Ipv4Packet,
  ipv4EncodingLength,
  ipv4HeaderLengthOf,
  isFragment,
} from "../../../../src/stack/wire/ipv4.js";
import { arbGarbage, arbIpv4Packet, arbMutation, hex, mutate, reasonOf, unwrap } from "./arbitraries.js";
import { firstFragmentHeader, icmpEchoRequest, icmpPortUnreachable, lastFragment, tcpSyn } from "./frames.js";

function encode(p: Ipv4Packet, policy = checksumFull): Buffer {
  const out = Buffer.alloc(ipv4EncodingLength(p), 0xa5);
  expect(encodeIpv4(p, out, 0, policy)).toBe(out.length);
  return out;
}

/** A decoded header re-encodes to the input up to the reserved flag bit, which is dropped. */
function canonical(b: Buffer): Buffer {
  const total = b.readUInt16BE(2);
  const c = Buffer.from(b.subarray(0, total));
  c[6] = (c[6] ?? 0) & 0x7f;
  return c;
}

describe("known vectors", () => {
  test("the textbook header 45 00 00 73 ... b8 61 ... decodes and verifies", () => {
    const h = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
    const b = Buffer.concat([h, Buffer.alloc(0x73 - 20)]);
    const p = unwrap(decodeIpv4(b));
    expect(p).toMatchObject({
      tos: 0,
      id: 0,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 64,
      protocol: IpProto.udp,
      src: 0xc0a80001,
      dst: 0xc0a800c7,
      checksum: 0xb861,
    });
    expect(p.options.length).toBe(0);
    expect(p.payload.length).toBe(0x73 - 20);
    expect(encode(p).subarray(0, 20).equals(h)).toBe(true);
  });

  test("the filled checksum makes the header verify (sum 0xffff)", () => {
    const p = unwrap(decodeIpv4(icmpEchoRequest.subarray(14)));
    const out = encode({ ...p, ttl: 63, checksum: undefined });
    expect(onesSum(out, 0, 20)).toBe(0xffff);
  });
});

describe("decode real packets", () => {
  test("ping's echo request: DF, id 20779, ICMP, 64 bytes of payload", () => {
    const p = unwrap(decodeIpv4(icmpEchoRequest.subarray(14)));
    expect(p).toMatchObject({
      id: 20779,
      dontFragment: true,
      moreFragments: false,
      ttl: 64,
      protocol: IpProto.icmp,
      src: 0x0a630001,
      dst: 0x0a630002,
    });
    expect(p.payload.length).toBe(64);
    expect(isFragment(p)).toBe(false);
  });

  test("the kernel's port unreachable carries TOS 0xc0", () => {
    const p = unwrap(decodeIpv4(icmpPortUnreachable.subarray(14)));
    expect(p.tos).toBe(0xc0);
    expect(p.dontFragment).toBe(false);
  });

  test("fragments: first (MF, offset 0) and last (offset 2960)", () => {
    const first = unwrap(decodeIpv4Quote(firstFragmentHeader));
    expect(first).toMatchObject({ id: 20868, moreFragments: true, fragmentOffset: 0 });
    expect(isFragment(first)).toBe(true);
    const last = unwrap(decodeIpv4(lastFragment));
    expect(last).toMatchObject({ id: 20868, moreFragments: false, fragmentOffset: 2960 });
    expect(isFragment(last)).toBe(true);
    expect(last.payload.length).toBe(48);
    expect(encode(last).equals(lastFragment)).toBe(true);
  });

  test("Ethernet padding is trimmed by the total length; the payload is a view", () => {
    const udp = hex("4500 001c 0001 0000 4011 0000 0a000202 0a00020f 0035 0035 0008 0000");
    const padded = Buffer.concat([udp, Buffer.alloc(18)]);
    const p = unwrap(decodeIpv4(padded, checksumOffloaded));
    expect(p.payload.length).toBe(8);
    expect(p.payload.buffer).toBe(padded.buffer);
    expect(p.payload.byteOffset).toBe(padded.byteOffset + 20);
  });

  test("options are kept as a view (router alert), and re-encode", () => {
    const h = hex("4600 001c 1234 0000 0102 0000 0a000201 e0000016 94040000 11223344");
    h.writeUInt16BE(~onesSum(h, 0, 24) & 0xffff, 10);
    const p = unwrap(decodeIpv4(h));
    expect(p.options.toString("hex")).toBe("94040000");
    expect(ipv4HeaderLengthOf(p)).toBe(24);
    expect(p.payload.toString("hex")).toBe("11223344");
    expect(encode(p).equals(h)).toBe(true);
  });

  test("the TCP SYN re-encodes byte for byte", () => {
    const ip = tcpSyn.subarray(14);
    expect(encode(unwrap(decodeIpv4(ip))).equals(ip)).toBe(true);
  });
});

describe("rejects", () => {
  const good = icmpEchoRequest.subarray(14);
  const patched = (at: number, bytes: string) => {
    const b = Buffer.from(good);
    hex(bytes).copy(b, at);
    return b;
  };

  test("truncated, empty, and short-of-total-length datagrams", () => {
    expect(reasonOf(decodeIpv4(Buffer.alloc(0)))).toBe("ipv4-truncated");
    expect(reasonOf(decodeIpv4(good.subarray(0, 19)))).toBe("ipv4-truncated");
    expect(reasonOf(decodeIpv4(good.subarray(0, 83)))).toBe("ipv4-truncated");
  });

  test("version other than 4 (an IPv6 packet)", () => {
    expect(reasonOf(decodeIpv4(patched(0, "65")))).toBe("ipv4-bad-version");
    expect(reasonOf(decodeIpv4(hex(`6000000000083a40${"00".repeat(40)}`)))).toBe("ipv4-bad-version");
  });

  test("IHL below 5 or beyond the buffer", () => {
    expect(reasonOf(decodeIpv4(patched(0, "44")))).toBe("ipv4-bad-header-length");
    expect(reasonOf(decodeIpv4(patched(0, "4f").subarray(0, 40)))).toBe("ipv4-truncated");
  });

  test("total length below the header length", () => {
    expect(reasonOf(decodeIpv4(patched(2, "0013")))).toBe("ipv4-bad-total-length");
  });

  test("a bad header checksum unless the policy skips verification", () => {
    const b = patched(10, "0000");
    expect(reasonOf(decodeIpv4(b))).toBe("ipv4-bad-checksum");
    expect(decodeIpv4(b, checksumOffloaded).ok).toBe(true);
  });

  test("the quote decoder accepts a datagram cut short, and still checks the header", () => {
    const q = unwrap(decodeIpv4Quote(good.subarray(0, 28)));
    expect(q.payload.length).toBe(8);
    expect(q.protocol).toBe(IpProto.icmp);
    expect(reasonOf(decodeIpv4Quote(good.subarray(0, 19)))).toBe("ipv4-truncated");
    expect(reasonOf(decodeIpv4Quote(patched(0, "55")))).toBe("ipv4-bad-version");
  });
});

describe("encode", () => {
  const p = unwrap(decodeIpv4(icmpEchoRequest.subarray(14)));

  test("pads options to 4 bytes with zeros", () => {
    const out = encode({ ...p, options: hex("9404"), payload: Buffer.alloc(0) });
    expect(out.length).toBe(24);
    expect(out[0]).toBe(0x46);
    expect(out.subarray(20, 24).toString("hex")).toBe("94040000");
    expect(unwrap(decodeIpv4(out)).options.toString("hex")).toBe("94040000");
  });

  test("without fillTx writes the record's checksum (or 0)", () => {
    expect(encode({ ...p, checksum: 0x1234 }, checksumOffloaded).readUInt16BE(10)).toBe(0x1234);
    expect(encode({ ...p, checksum: undefined }, checksumOffloaded).readUInt16BE(10)).toBe(0);
  });

  test("builds in place: payload already after the header is not copied", () => {
    const out = Buffer.alloc(20 + 3, 0xa5);
    out.write("xyz", 20);
    const n = encodeIpv4({ ...p, payload: out.subarray(20) }, out);
    expect(n).toBe(23);
    expect(out.subarray(20).toString()).toBe("xyz");
    expect(unwrap(decodeIpv4(out)).payload.toString()).toBe("xyz");
  });

  test("refuses what no header can hold", () => {
    const big = Buffer.alloc(100);
    expect(() => encodeIpv4({ ...p, options: Buffer.alloc(44) }, big)).toThrow(RangeError);
    expect(() => encodeIpv4({ ...p, fragmentOffset: 12 }, big)).toThrow(RangeError);
    expect(() => encodeIpv4({ ...p, fragmentOffset: 0x2000 * 8 }, big)).toThrow(RangeError);
    expect(() => encodeIpv4({ ...p, payload: Buffer.alloc(65516) }, Buffer.alloc(70000))).toThrow(RangeError);
    expect(() => encodeIpv4(p, Buffer.alloc(83))).toThrow(RangeError);
  });

  test("the largest datagram (65535 bytes) is fine", () => {
    const q = { ...p, payload: Buffer.alloc(65515, 7) };
    const out = encode(q);
    expect(out.length).toBe(65535);
    expect(unwrap(decodeIpv4(out)).payload.length).toBe(65515);
  });
});

describe("properties", () => {
  test.prop([arbIpv4Packet])("decode(encode(x)) equals x (checksum filled and verified)", (p) => {
    const d = unwrap(decodeIpv4(encode(p)));
    expect(d).toEqual({ ...p, checksum: d.checksum });
  });

  test.prop([arbIpv4Packet, fc.integer({ min: 0, max: 0xffff })])(
    "without checksums, the record's checksum round-trips too",
    (p, checksum) => {
      const q = { ...p, checksum };
      expect(unwrap(decodeIpv4(encode(q, checksumOffloaded), checksumOffloaded))).toEqual(q);
    },
  );

  test.prop([arbIpv4Packet])("encode(decode(bytes)) reproduces the bytes", (p) => {
    const bytes = encode(p);
    expect(encode(unwrap(decodeIpv4(bytes))).equals(bytes)).toBe(true);
  });

  test.prop([arbGarbage(80)])("random bytes never throw; accepted ones re-encode", (b) => {
    for (const r of [decodeIpv4(b), decodeIpv4(b, checksumOffloaded)]) {
      if (r.ok) expect(encode(r.value, checksumOffloaded).equals(canonical(b))).toBe(true);
      else expect(r.reason).toMatch(/^ipv4-[a-z-]+$/);
    }
    const q = decodeIpv4Quote(b);
    if (q.ok) expect(q.value.payload.length).toBeLessThanOrEqual(b.length);
  });

  test.prop([arbGarbage(100), fc.integer({ min: 5, max: 15 }), fc.nat()])(
    "random bytes with a plausible first byte and total length never throw; accepted ones re-encode",
    (bytes, ihl, total) => {
      const b = Buffer.concat([bytes, Buffer.alloc(20)]);
      b[0] = 0x40 | ihl;
      b.writeUInt16BE(total % (b.length + 1), 2);
      const r = decodeIpv4(b, checksumOffloaded);
      if (r.ok) expect(encode(r.value, checksumOffloaded).equals(canonical(b))).toBe(true);
      else expect(["ipv4-truncated", "ipv4-bad-total-length"]).toContain(r.reason);
    },
  );

  test.prop([arbIpv4Packet, arbMutation])(
    "mutated datagrams never throw; accepted ones re-encode",
    (p, m) => {
      const b = mutate(encode(p), m);
      const r = decodeIpv4(b, checksumOffloaded);
      if (r.ok) expect(encode(r.value, checksumOffloaded).equals(canonical(b))).toBe(true);
      const v = decodeIpv4(b);
      if (v.ok) expect(onesSum(b, 0, ipv4HeaderLengthOf(v.value))).toBe(0xffff);
      decodeIpv4Quote(b);
    },
  );
});
