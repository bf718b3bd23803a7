import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { checksumFull, checksumOffloaded, onesSum } from "../../../../src/stack/wire/checksum.js";
import {
  decodeIcmp,
  encodeIcmp,
  type IcmpMessage,
  IcmpType,
  IcmpUnreachableCode,
  icmpEncodingLength,
  icmpTypeOf,
} from "../../../../src/stack/wire/icmp.js";
import { decodeIpv4Quote, IpProto } from "../../../../src/stack/wire/ipv4.js";
import { arbGarbage, arbIcmpMessage, arbMutation, hex, mutate, reasonOf, unwrap } from "./arbitraries.js";
import { icmpEchoReply, icmpEchoRequest, icmpPortUnreachable } from "./frames.js";

function encode(m: IcmpMessage, policy = checksumFull): Buffer {
  const out = Buffer.alloc(icmpEncodingLength(m), 0xa5);
  expect(encodeIcmp(m, out, 0, policy)).toBe(out.length);
  return out;
}

/** The ICMP message inside one of the captured frames (Ethernet + 20-byte IPv4 header). */
const icmpOf = (frame: Buffer) => frame.subarray(34);

/** What re-encoding keeps: the unused bytes of error messages are written as zero. */
function canonical(b: Buffer): Buffer {
  const c = Buffer.from(b);
  if (c[0] === IcmpType.destUnreachable) c.writeUInt16BE(0, 4);
  if (c[0] === IcmpType.timeExceeded) c.writeUInt32BE(0, 4);
  return c;
}

describe("decode real messages", () => {
  test("ping's echo request: id 11975, seq 0, 56 data bytes", () => {
    const m = unwrap(decodeIcmp(icmpOf(icmpEchoRequest)));
    expect(m).toMatchObject({ kind: "echo-request", code: 0, id: 11975, seq: 0, checksum: 0xe9c7 });
    expect(m.payload.length).toBe(56);
    expect(m.payload.subarray(0, 4).toString("hex")).toBe("1846c72a");
    expect(icmpTypeOf(m)).toBe(IcmpType.echoRequest);
    expect(encode(m).equals(icmpOf(icmpEchoRequest))).toBe(true);
  });

  test("turning the request into the reply gives the kernel's bytes", () => {
    const req = unwrap(decodeIcmp(icmpOf(icmpEchoRequest)));
    if (req.kind !== "echo-request") throw new Error("not an echo request");
    const reply = encode({ ...req, kind: "echo-reply" });
    expect(reply.equals(icmpOf(icmpEchoReply))).toBe(true);
  });

  test("port unreachable quoting the UDP datagram; the quote decodes", () => {
    const m = unwrap(decodeIcmp(icmpOf(icmpPortUnreachable)));
    expect(m).toMatchObject({ kind: "dest-unreachable", code: IcmpUnreachableCode.port, nextHopMtu: 0 });
    const quote = unwrap(decodeIpv4Quote(m.payload));
    expect(quote).toMatchObject({ protocol: IpProto.udp, src: 0x0a630001, dst: 0x0a630002 });
    expect(quote.payload.readUInt16BE(0)).toBe(35410);
    expect(quote.payload.readUInt16BE(2)).toBe(9999);
    expect(encode(m).equals(icmpOf(icmpPortUnreachable))).toBe(true);
  });

  test("fragmentation needed carries the next-hop MTU", () => {
    const quote = icmpOf(icmpPortUnreachable).subarray(8, 36);
    const m: IcmpMessage = {
      kind: "dest-unreachable",
      code: IcmpUnreachableCode.fragmentationNeeded,
      nextHopMtu: 1400,
      payload: quote,
    };
    const b = encode(m);
    expect(b.subarray(0, 8).toString("hex")).toMatch(/^0304....00000578$/);
    expect(unwrap(decodeIcmp(b))).toMatchObject({ kind: "dest-unreachable", code: 4, nextHopMtu: 1400 });
  });

  test("time exceeded and an unknown type (timestamp request) decode", () => {
    const te = encode({ kind: "time-exceeded", code: 0, payload: hex("4500") });
    expect(unwrap(decodeIcmp(te))).toMatchObject({ kind: "time-exceeded", code: 0 });
    const ts = encode({ kind: "other", type: 13, code: 0, rest: 0x00010002, payload: Buffer.alloc(12) });
    const m = unwrap(decodeIcmp(ts));
    expect(m).toMatchObject({ kind: "other", type: 13, code: 0, rest: 0x00010002 });
    expect(icmpTypeOf(m)).toBe(13);
  });

  test("an odd-length echo payload checksums correctly", () => {
    const b = encode({ kind: "echo-request", code: 0, id: 1, seq: 2, payload: hex("010203") });
    expect(onesSum(b)).toBe(0xffff);
    expect(unwrap(decodeIcmp(b)).payload.toString("hex")).toBe("010203");
  });
});

describe("rejects", () => {
  test("messages under 8 bytes", () => {
    expect(reasonOf(decodeIcmp(Buffer.alloc(0)))).toBe("icmp-truncated");
    expect(reasonOf(decodeIcmp(icmpOf(icmpEchoRequest).subarray(0, 7)))).toBe("icmp-truncated");
  });

  test("a bad checksum unless the policy skips verification", () => {
    const b = Buffer.from(icmpOf(icmpEchoRequest));
    b[20] = 0xff;
    expect(reasonOf(decodeIcmp(b))).toBe("icmp-bad-checksum");
    expect(decodeIcmp(b, checksumOffloaded).ok).toBe(true);
  });

  test("a checksum that only covers part of the data does not verify (whole message counts)", () => {
    const b = encode({ kind: "echo-request", code: 0, id: 1, seq: 1, payload: Buffer.from("abcdef") });
    expect(decodeIcmp(b).ok).toBe(true);
    expect(reasonOf(decodeIcmp(b.subarray(0, b.length - 2)))).toBe("icmp-bad-checksum");
  });
});

describe("encode", () => {
  test("without fillTx writes the record's checksum (or 0)", () => {
    const m = unwrap(decodeIcmp(icmpOf(icmpEchoRequest)));
    expect(encode({ ...m, checksum: 0xabcd }, checksumOffloaded).readUInt16BE(2)).toBe(0xabcd);
    expect(encode({ ...m, checksum: undefined }, checksumOffloaded).readUInt16BE(2)).toBe(0);
  });

  test("builds in place and refuses a too small buffer", () => {
    const out = Buffer.alloc(8 + 4, 0xa5);
    out.write("ping", 8);
    const m: IcmpMessage = { kind: "echo-reply", code: 0, id: 7, seq: 9, payload: out.subarray(8) };
    expect(encodeIcmp(m, out)).toBe(12);
    expect(unwrap(decodeIcmp(out))).toMatchObject({ kind: "echo-reply", id: 7, seq: 9 });
    expect(out.subarray(8).toString()).toBe("ping");
    expect(() => encodeIcmp(m, Buffer.alloc(11))).toThrow(RangeError);
  });
});

describe("properties", () => {
  test.prop([arbIcmpMessage])("decode(encode(x)) equals x, and the filled checksum verifies", (m) => {
    const b = encode(m);
    expect(onesSum(b)).toBe(0xffff);
    const d = unwrap(decodeIcmp(b));
    expect(d).toEqual({ ...m, checksum: d.checksum });
  });

  test.prop([arbIcmpMessage, fc.integer({ min: 0, max: 0xffff })])(
    "without checksums, the record's checksum round-trips too",
    (m, checksum) => {
      const x = { ...m, checksum };
      expect(unwrap(decodeIcmp(encode(x, checksumOffloaded), checksumOffloaded))).toEqual(x);
    },
  );

  test.prop([arbIcmpMessage])("encode(decode(bytes)) reproduces the bytes", (m) => {
    const bytes = encode(m);
    expect(encode(unwrap(decodeIcmp(bytes))).equals(bytes)).toBe(true);
  });

  test.prop([arbGarbage(60)])("random bytes never throw; accepted ones re-encode", (b) => {
    const r = decodeIcmp(b, checksumOffloaded);
    if (r.ok) expect(encode(r.value, checksumOffloaded).equals(canonical(b))).toBe(true);
    else expect(r.reason).toBe("icmp-truncated");
    const v = decodeIcmp(b);
    if (!v.ok) expect(["icmp-truncated", "icmp-bad-checksum"]).toContain(v.reason);
  });

  test.prop([arbIcmpMessage, arbMutation])("mutated messages never throw; accepted ones verify", (m, mu) => {
    const b = mutate(encode(m), mu);
    const r = decodeIcmp(b);
    if (r.ok) expect(onesSum(b)).toBe(0xffff);
    const o = decodeIcmp(b, checksumOffloaded);
    if (o.ok) expect(encode(o.value, checksumOffloaded).equals(canonical(b))).toBe(true);
  });
});
