import { test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  ArpOp,
  type ArpPacket,
  arpPacketLength,
  decodeArp,
  encodeArp,
} from "../../../../src/stack/wire/arp.js";
import { arbArpPacket, arbGarbage, arbMutation, hex, mutate, reasonOf, unwrap } from "./arbitraries.js";
import { arpReply, arpRequest } from "./frames.js";

function encode(p: ArpPacket): Buffer {
  const out = Buffer.alloc(arpPacketLength, 0xa5);
  expect(encodeArp(p, out)).toBe(28);
  return out;
}

describe("decode real packets", () => {
  test("a Linux ARP request: who-has 10.99.0.2 tell 10.99.0.1", () => {
    const p = unwrap(decodeArp(arpRequest.subarray(14)));
    expect(p.op).toBe(ArpOp.request);
    expect(p.senderMac.toString("hex")).toBe("525400123456");
    expect(p.senderIp).toBe(0x0a630001);
    expect(p.targetMac.toString("hex")).toBe("000000000000");
    expect(p.targetIp).toBe(0x0a630002);
    expect(encode(p).equals(arpRequest.subarray(14))).toBe(true);
  });

  test("the reply: 10.99.0.2 is-at 52:55:0a:63:00:02", () => {
    const p = unwrap(decodeArp(arpReply.subarray(14)));
    expect(p.op).toBe(ArpOp.reply);
    expect(p.senderMac.toString("hex")).toBe("52550a630002");
    expect(p.senderIp).toBe(0x0a630002);
    expect(p.targetMac.toString("hex")).toBe("525400123456");
    expect(p.targetIp).toBe(0x0a630001);
  });

  test("Ethernet padding after the 28 bytes is ignored", () => {
    const padded = Buffer.concat([arpRequest.subarray(14), Buffer.alloc(18)]);
    expect(unwrap(decodeArp(padded)).targetIp).toBe(0x0a630002);
  });
});

describe("rejects", () => {
  const base = arpRequest.subarray(14);
  const patched = (at: number, bytes: string) => {
    const b = Buffer.from(base);
    hex(bytes).copy(b, at);
    return b;
  };

  test("truncated and empty packets", () => {
    expect(reasonOf(decodeArp(Buffer.alloc(0)))).toBe("arp-truncated");
    expect(reasonOf(decodeArp(base.subarray(0, 27)))).toBe("arp-truncated");
  });

  test("other hardware, protocols, address lengths and operations", () => {
    expect(reasonOf(decodeArp(patched(0, "0006")))).toBe("arp-unsupported-hardware");
    expect(reasonOf(decodeArp(patched(2, "86dd")))).toBe("arp-unsupported-protocol");
    expect(reasonOf(decodeArp(patched(4, "0804")))).toBe("arp-bad-address-length");
    expect(reasonOf(decodeArp(patched(4, "0610")))).toBe("arp-bad-address-length");
    expect(reasonOf(decodeArp(patched(6, "0003")))).toBe("arp-unsupported-op"); // RARP request
    expect(reasonOf(decodeArp(patched(6, "0000")))).toBe("arp-unsupported-op");
  });

  test("encode refuses a too small buffer", () => {
    const p = unwrap(decodeArp(base));
    expect(() => encodeArp(p, Buffer.alloc(30), 3)).toThrow(RangeError);
  });
});

describe("properties", () => {
  test.prop([arbArpPacket])("decode(encode(x)) equals x", (p) => {
    expect(unwrap(decodeArp(encode(p)))).toEqual(p);
  });

  test.prop([arbArpPacket])("encode(decode(bytes)) reproduces the bytes", (p) => {
    const bytes = encode(p);
    expect(encode(unwrap(decodeArp(bytes))).equals(bytes)).toBe(true);
  });

  test.prop([arbGarbage(40)])(
    "random bytes never throw; accepted ones re-encode their first 28 bytes",
    (b) => {
      const r = decodeArp(b);
      if (r.ok) expect(encode(r.value).equals(b.subarray(0, 28))).toBe(true);
      else expect(r.reason).toMatch(/^arp-[a-z-]+$/);
    },
  );

  test.prop([arbArpPacket, arbMutation])("mutated packets never throw; accepted ones re-encode", (p, m) => {
    const b = mutate(encode(p), m);
    const r = decodeArp(b);
    if (r.ok) expect(encode(r.value).equals(b.subarray(0, 28))).toBe(true);
  });
});
