import { test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  decodeEthernet,
  type EthernetFrame,
  EtherType,
  encodeEthernet,
  ethernetEncodingLength,
  ethernetHeaderLengthOf,
} from "../../../../src/stack/wire/ethernet.js";
import { arbEthernetFrame, arbGarbage, arbMutation, hex, mutate, reasonOf, unwrap } from "./arbitraries.js";
import { arpRequest, icmpEchoRequest } from "./frames.js";

function encode(f: EthernetFrame): Buffer {
  const out = Buffer.alloc(ethernetEncodingLength(f), 0xa5);
  expect(encodeEthernet(f, out)).toBe(out.length);
  return out;
}

describe("decode real frames", () => {
  test("a Linux ARP request: broadcast, ethertype 0x0806", () => {
    const f = unwrap(decodeEthernet(arpRequest));
    expect(f.dst.toString("hex")).toBe("ffffffffffff");
    expect(f.src.toString("hex")).toBe("525400123456");
    expect(f.vlan).toBeUndefined();
    expect(f.ethertype).toBe(EtherType.arp);
    expect(f.payload.length).toBe(28);
  });

  test("padding stays in the payload, as a view into the frame", () => {
    const padded = Buffer.concat([arpRequest, Buffer.alloc(18)]);
    const f = unwrap(decodeEthernet(padded));
    expect(f.payload.length).toBe(46);
    expect(f.payload.buffer).toBe(padded.buffer);
    expect(f.payload.byteOffset).toBe(padded.byteOffset + 14);
  });

  test("an 802.1Q tagged frame: pcp 5, dei, vid 42, inner IPv4", () => {
    const tagged = Buffer.concat([
      icmpEchoRequest.subarray(0, 12),
      hex("8100 b02a"),
      icmpEchoRequest.subarray(12),
    ]);
    const f = unwrap(decodeEthernet(tagged));
    expect(f.vlan).toEqual({ pcp: 5, dei: true, vid: 42 });
    expect(f.ethertype).toBe(EtherType.ipv4);
    expect(f.payload.equals(icmpEchoRequest.subarray(14))).toBe(true);
    expect(ethernetHeaderLengthOf(f)).toBe(18);
    expect(encode(f).equals(tagged)).toBe(true);
  });
});

describe("rejects", () => {
  test("frames shorter than 14 bytes (the QEMU socket-backend killer) and empty ones", () => {
    expect(reasonOf(decodeEthernet(Buffer.alloc(0)))).toBe("ethernet-truncated");
    expect(reasonOf(decodeEthernet(arpRequest.subarray(0, 13)))).toBe("ethernet-truncated");
  });

  test("a tag without room for the inner ethertype", () => {
    expect(reasonOf(decodeEthernet(hex("ffffffffffff 525400123456 8100 0001 08")))).toBe(
      "ethernet-truncated",
    );
  });

  test("802.3 length-field frames (e.g. STP)", () => {
    const stp = hex("0180c2000000 525400123456 0026 424203");
    expect(reasonOf(decodeEthernet(stp))).toBe("ethernet-8023-length-field");
  });

  test("a header-only frame decodes with an empty payload", () => {
    const f = unwrap(decodeEthernet(arpRequest.subarray(0, 14)));
    expect(f.payload.length).toBe(0);
  });
});

describe("encode", () => {
  test("skips the payload copy when the payload already sits after the header", () => {
    const out = Buffer.alloc(14 + 4, 0xa5);
    out.write("abcd", 14);
    const payload = out.subarray(14);
    const n = encodeEthernet(
      { dst: Buffer.alloc(6, 1), src: Buffer.alloc(6, 2), ethertype: 0x0800, payload },
      out,
    );
    expect(n).toBe(18);
    expect(out.toString("hex")).toBe(
      `${"01".repeat(6)}${"02".repeat(6)}0800${Buffer.from("abcd").toString("hex")}`,
    );
  });

  test("writes at an offset and refuses a too small buffer", () => {
    const f = unwrap(decodeEthernet(arpRequest));
    const out = Buffer.alloc(100, 0xa5);
    expect(encodeEthernet(f, out, 7)).toBe(42);
    expect(out.subarray(7, 49).equals(arpRequest)).toBe(true);
    expect(() => encodeEthernet(f, Buffer.alloc(41))).toThrow(RangeError);
  });
});

describe("properties", () => {
  test.prop([arbEthernetFrame])("decode(encode(x)) equals x", (f) => {
    expect(unwrap(decodeEthernet(encode(f)))).toEqual(f);
  });

  test.prop([arbEthernetFrame])("encode(decode(bytes)) reproduces the bytes", (f) => {
    const bytes = encode(f);
    expect(encode(unwrap(decodeEthernet(bytes))).equals(bytes)).toBe(true);
  });

  test.prop([arbGarbage()])("random bytes never throw; accepted ones re-encode exactly", (b) => {
    const r = decodeEthernet(b);
    if (r.ok) expect(encode(r.value).equals(b)).toBe(true);
    else expect(r.reason).toMatch(/^ethernet-[a-z0-9-]+$/);
  });

  test.prop([arbEthernetFrame, arbMutation])(
    "mutated frames never throw; accepted ones re-encode",
    (f, m) => {
      const b = mutate(encode(f), m);
      const r = decodeEthernet(b);
      if (r.ok) expect(encode(r.value).equals(b)).toBe(true);
    },
  );
});
