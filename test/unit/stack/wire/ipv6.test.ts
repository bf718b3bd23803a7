import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  decodeIpv6,
  encodeIpv6,
  encodeIpv6Quote,
  Ipv6Next,
  type Ipv6Packet,
  ipv6EncodingLength,
  walkExtensions,
} from "../../../../src/stack/wire/ipv6.js";
import { parseIpv6 } from "../../../../src/stack/wire/ipv6-addr.js";
import { arbBytes, arbU8, reasonOf, unwrap } from "./arbitraries.js";

const arbAddr = arbBytes(16, 16);
const arbPacket: fc.Arbitrary<Ipv6Packet> = fc.record({
  trafficClass: arbU8,
  flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  hopLimit: arbU8,
  src: arbAddr,
  dst: arbAddr,
  protocol: fc.constantFrom(6, 17, 58, 59, 50),
  fragment: fc.option(
    fc
      .record({
        id: fc.integer({ min: 0, max: 0xffffffff }),
        offset: fc.integer({ min: 0, max: 0x1fff }).map((x) => x * 8),
        more: fc.boolean(),
      })
      .filter((f) => f.offset !== 0 || f.more),
    { nil: undefined },
  ),
  payload: arbBytes(200),
});

function encode(p: Ipv6Packet): Buffer {
  const b = Buffer.alloc(ipv6EncodingLength(p));
  expect(encodeIpv6(p, b)).toBe(b.length);
  return b;
}

/** A packet with the extension headers `exts` ([type, body bytes]) before a UDP-ish payload. */
function withExtensions(exts: [number, Buffer][], last: number, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  exts.forEach(([, body], i) => {
    const next = i + 1 < exts.length ? (exts[i + 1] as [number, Buffer])[0] : last;
    const h = Buffer.alloc(2 + body.length);
    h[0] = next;
    h[1] = (2 + body.length) / 8 - 1;
    body.copy(h, 2);
    parts.push(h);
  });
  const inner = Buffer.concat([...parts, payload]);
  const src = parseIpv6("fec0::15") as Buffer;
  const dst = parseIpv6("fec0::2") as Buffer;
  const b = encode({
    trafficClass: 0,
    flowLabel: 0,
    hopLimit: 64,
    src,
    dst,
    protocol: exts.length ? (exts[0] as [number, Buffer])[0] : last,
    payload: inner,
  });
  return b;
}

describe("IPv6", () => {
  test.prop([arbPacket])("round-trips", (p) => {
    const d = unwrap(decodeIpv6(encode(p)));
    expect({ ...d, headerLength: undefined }).toEqual({ ...p, headerLength: undefined });
    expect(d.headerLength).toBe(p.fragment ? 48 : 40);
  });

  test.prop([arbBytes(120)])("random bytes never throw", (b) => {
    decodeIpv6(b);
    if (b.length > 0) decodeIpv6(Buffer.concat([Buffer.from([0x60]), b]));
  });

  test.prop([arbPacket, fc.integer({ min: 0, max: 200 }), arbU8])(
    "mutated packets never throw",
    (p, at, v) => {
      const b = encode(p);
      b[at % b.length] = v;
      decodeIpv6(b);
    },
  );

  test("trims Ethernet padding, refuses short and foreign packets", () => {
    const b = withExtensions([], Ipv6Next.udp, Buffer.from("abcd"));
    const padded = Buffer.concat([b, Buffer.alloc(10)]);
    expect(unwrap(decodeIpv6(padded)).payload).toEqual(Buffer.from("abcd"));
    expect(reasonOf(decodeIpv6(b.subarray(0, b.length - 1)))).toBe("ipv6-truncated");
    expect(reasonOf(decodeIpv6(b.subarray(0, 39)))).toBe("ipv6-truncated");
    const v4 = Buffer.from(b);
    v4[0] = 0x45;
    expect(reasonOf(decodeIpv6(v4))).toBe("ipv6-bad-version");
  });

  test("skips hop-by-hop, destination options and spent routing headers", () => {
    const padN = Buffer.from([1, 4, 0, 0, 0, 0]);
    const routerAlert = Buffer.from([5, 2, 0, 0, 1, 0]);
    const spentRouting = Buffer.from([4, 0, 0, 0, 0, 0]); // type 4, segments left 0
    const b = withExtensions(
      [
        [Ipv6Next.hopByHop, routerAlert],
        [Ipv6Next.destinationOptions, padN],
        [Ipv6Next.routing, spentRouting],
        [Ipv6Next.destinationOptions, padN],
      ],
      Ipv6Next.udp,
      Buffer.from("data"),
    );
    const d = unwrap(decodeIpv6(b));
    expect(d.protocol).toBe(Ipv6Next.udp);
    expect(d.headerLength).toBe(40 + 32);
    expect(d.payload).toEqual(Buffer.from("data"));
  });

  test("refuses what it must not skip", () => {
    const unknownDiscard = Buffer.from([0x80, 4, 0, 0, 0, 0]);
    const unknownSkip = Buffer.from([0x1e, 4, 0, 0, 0, 0]);
    const jumbo = Buffer.from([0xc2, 4, 0, 1, 0, 0]);
    const liveRouting = Buffer.from([4, 1, 0, 0, 0, 0]);
    const pad = Buffer.from([1, 4, 0, 0, 0, 0]);
    const udp = (e: [number, Buffer][]) => decodeIpv6(withExtensions(e, Ipv6Next.udp, Buffer.alloc(8)));
    expect(unwrap(udp([[Ipv6Next.destinationOptions, unknownSkip]])).protocol).toBe(17);
    expect(reasonOf(udp([[Ipv6Next.destinationOptions, unknownDiscard]]))).toBe("ipv6-unknown-option");
    expect(reasonOf(udp([[Ipv6Next.hopByHop, jumbo]]))).toBe("ipv6-jumbogram");
    expect(reasonOf(udp([[Ipv6Next.routing, liveRouting]]))).toBe("ipv6-routing-header");
    expect(
      reasonOf(
        udp([
          [Ipv6Next.destinationOptions, pad],
          [Ipv6Next.hopByHop, pad],
        ]),
      ),
    ).toBe("ipv6-hop-by-hop-not-first");
    const many: [number, Buffer][] = Array.from({ length: 9 }, () => [Ipv6Next.destinationOptions, pad]);
    expect(reasonOf(udp(many))).toBe("ipv6-too-many-extension-headers");
  });

  test("a fragment stops the walk; an atomic fragment does not", () => {
    const frag = (offset: number, more: boolean, next: number) => {
      const h = Buffer.alloc(8);
      h[0] = next;
      h.writeUInt16BE(offset | (more ? 1 : 0), 2);
      h.writeUInt32BE(0x12345678, 4);
      return h;
    };
    const src = parseIpv6("fec0::15") as Buffer;
    const dst = parseIpv6("fec0::2") as Buffer;
    const pkt = (payload: Buffer) =>
      encode({ trafficClass: 0, flowLabel: 0, hopLimit: 64, src, dst, protocol: Ipv6Next.fragment, payload });
    const first = unwrap(decodeIpv6(pkt(Buffer.concat([frag(0, true, 17), Buffer.alloc(16, 7)]))));
    expect(first.fragment).toEqual({ id: 0x12345678, offset: 0, more: true });
    expect(first.protocol).toBe(17);
    expect(first.payload.length).toBe(16);
    const atomic = unwrap(decodeIpv6(pkt(Buffer.concat([frag(0, false, 17), Buffer.alloc(16, 7)]))));
    expect(atomic.fragment).toBeUndefined();
    expect(atomic.protocol).toBe(17);
    // after reassembly the walk goes on from the fragment header's next header
    const rest = Buffer.concat([Buffer.from([17, 0, 1, 4, 0, 0, 0, 0]), Buffer.from("udp!")]);
    const chain = unwrap(walkExtensions(rest, Ipv6Next.destinationOptions, 0));
    expect(chain).toEqual({ protocol: 17, at: 8 });
  });

  test("quotes at most what fits a 1280-byte error", () => {
    const src = parseIpv6("fec0::15") as Buffer;
    const dst = parseIpv6("2001:db8::1") as Buffer;
    const q = encodeIpv6Quote(src, dst, 17, Buffer.alloc(8000, 1));
    expect(q.length).toBe(1280 - 48);
    expect(q.readUInt16BE(4)).toBe(8000);
    const small = encodeIpv6Quote(src, dst, 17, Buffer.alloc(30, 1));
    expect(small.length).toBe(70);
  });
});
