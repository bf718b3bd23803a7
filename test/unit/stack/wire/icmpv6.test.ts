import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { onesSum, pseudoHeader6, pseudoHeaderSum } from "../../../../src/stack/wire/checksum.js";
import {
  decodeIcmp6,
  encodeIcmp6,
  type Icmp6Message,
  icmp6EncodingLength,
} from "../../../../src/stack/wire/icmpv6.js";
import { parseIpv6 } from "../../../../src/stack/wire/ipv6-addr.js";
import { arbBytes, arbU8, arbU16, arbU32, reasonOf, unwrap } from "./arbitraries.js";

const src = parseIpv6("fe80::5054:ff:fe12:3456") as Buffer;
const dst = parseIpv6("fe80::2") as Buffer;
const ph = pseudoHeader6(src, dst);

const arbMessage: fc.Arbitrary<Icmp6Message> = fc.oneof(
  fc.record({
    kind: fc.constantFrom("echo-request" as const, "echo-reply" as const),
    code: arbU8,
    id: arbU16,
    seq: arbU16,
    payload: arbBytes(100),
  }),
  fc.record({ kind: fc.constant("dest-unreachable" as const), code: arbU8, payload: arbBytes(100) }),
  fc.record({ kind: fc.constant("time-exceeded" as const), code: arbU8, payload: arbBytes(100) }),
  fc.record({
    kind: fc.constant("packet-too-big" as const),
    code: arbU8,
    mtu: arbU32,
    payload: arbBytes(100),
  }),
  fc.record({
    kind: fc.constant("parameter-problem" as const),
    code: arbU8,
    pointer: arbU32,
    payload: arbBytes(100),
  }),
  fc.record({
    kind: fc.constant("other" as const),
    type: arbU8.filter((t) => ![1, 2, 3, 4, 128, 129].includes(t)),
    code: arbU8,
    rest: arbU32,
    payload: arbBytes(100),
  }),
);

function encode(m: Icmp6Message): Buffer {
  const b = Buffer.alloc(icmp6EncodingLength(m));
  encodeIcmp6(m, b, 0, ph);
  return b;
}

describe("ICMPv6", () => {
  test.prop([arbMessage])("round-trips with a valid checksum", (m) => {
    const b = encode(m);
    const d = unwrap(decodeIcmp6(b, ph));
    expect({ ...d, checksum: undefined }).toEqual({ ...m, checksum: undefined });
  });

  test.prop([arbBytes(64)])("random bytes never throw", (b) => {
    decodeIcmp6(b, ph);
    decodeIcmp6(b, ph, { verifyRx: false, fillTx: true });
  });

  test("the checksum covers the IPv6 pseudo-header", () => {
    const b = encode({ kind: "echo-request", code: 0, id: 1, seq: 2, payload: Buffer.from("ping") });
    expect(reasonOf(decodeIcmp6(b, pseudoHeader6(dst, parseIpv6("fe80::3") as Buffer)))).toBe(
      "icmpv6-bad-checksum",
    );
    // the pseudo-header by the book: src, dst, 32-bit length, three zeros, next header 58
    const book = Buffer.alloc(40);
    src.copy(book, 0);
    dst.copy(book, 16);
    book.writeUInt32BE(b.length, 32);
    book[39] = 58;
    expect(onesSum(b, 0, b.length, onesSum(book))).toBe(0xffff);
    expect(pseudoHeaderSum(ph.src, ph.dst, 58, b.length)).toBe(onesSum(book));
    expect(reasonOf(decodeIcmp6(Buffer.alloc(7), ph))).toBe("icmpv6-truncated");
  });
});
