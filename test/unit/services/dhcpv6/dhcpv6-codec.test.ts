import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  type Dhcpv6Message,
  Dhcpv6Option,
  decodeDhcpv6,
  decodeIaAddr,
  decodeIaNa,
  decodeNameList,
  decodeOro,
  decodeStatus,
  duidLl,
  encodeDhcpv6,
  encodeIaAddr,
  encodeIaNa,
  encodeNameList,
  statusOption,
} from "../../../../src/services/dhcpv6/dhcpv6-codec.js";

function unwrap<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!r.ok) throw new Error(`expected ok, got ${r.reason}`);
  return r.value;
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const arbOpt = fc.record({ code: fc.integer({ min: 0, max: 0xffff }), data: bytes(300) });
const arbMessage: fc.Arbitrary<Dhcpv6Message> = fc.record({
  type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 12 && t !== 13),
  transactionId: fc.integer({ min: 0, max: 0xffffff }),
  options: fc.array(arbOpt, { maxLength: 10 }),
});

/**
 * ISC dhclient 4.4 `-6` on a veth in a private namespace (MAC 52:54:00:12:34:56), its
 * first SOLICIT as tcpdump captured it: client id (DUID-LLT), ORO (23, 24, 39, 31),
 * elapsed time, IA_NA (IAID 00:12:34:56, T1 3600, T2 5400).
 */
const DHCLIENT_SOLICIT = Buffer.from(
  "01185ec90001000e0001000132aa2714525400123456000600080017001800270" +
    "01f0008000200000003000c0012345600000e1000001518",
  "hex",
);

describe("DHCPv6 messages", () => {
  test.prop([arbMessage])("round-trip", (m) => {
    expect(unwrap(decodeDhcpv6(encodeDhcpv6(m)))).toEqual(m);
  });

  test.prop([bytes(600)])("random bytes never throw", (b) => {
    const r = decodeDhcpv6(b);
    if (r.ok) {
      for (const o of r.value.options) {
        if (o.code === Dhcpv6Option.IA_NA) decodeIaNa(o.data);
        if (o.code === Dhcpv6Option.IAADDR) decodeIaAddr(o.data);
        if (o.code === Dhcpv6Option.STATUS_CODE) decodeStatus(o.data);
        if (o.code === Dhcpv6Option.DOMAIN_LIST) decodeNameList(o.data);
      }
    }
  });

  it("reads a client's SOLICIT", () => {
    const m = unwrap(decodeDhcpv6(DHCLIENT_SOLICIT));
    expect(m.type).toBe(1);
    expect(m.transactionId).toBe(0x185ec9);
    expect(m.options.map((o) => o.code)).toEqual([1, 6, 8, 3]);
    expect(decodeOro(m.options[1]?.data)).toEqual([23, 24, 39, 31]);
    expect(unwrap(decodeIaNa(m.options[3]?.data as Buffer))).toEqual({
      iaid: 0x123456,
      t1: 3600,
      t2: 5400,
      options: [],
    });
    expect(encodeDhcpv6(m)).toEqual(DHCLIENT_SOLICIT);
  });

  it("refuses short input, truncated options and relay messages", () => {
    expect(decodeDhcpv6(Buffer.of(1, 2))).toEqual({ ok: false, reason: "dhcpv6-too-short" });
    expect(decodeDhcpv6(Buffer.from("01000001000100", "hex"))).toEqual({
      ok: false,
      reason: "dhcpv6-option-truncated",
    });
    expect(decodeDhcpv6(Buffer.from(`0c00${"00".repeat(32)}`, "hex"))).toEqual({
      ok: false,
      reason: "dhcpv6-relay",
    });
  });
});

describe("IA_NA and IAADDR", () => {
  test.prop([
    u32,
    u32,
    u32,
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
    u32,
    u32,
  ])("round-trip nested", (iaid, t1, t2, address, preferred, valid) => {
    const addr = encodeIaAddr({ address, preferred, valid, options: [statusOption(0, "ok")] });
    const ia = encodeIaNa({ iaid, t1, t2, options: [{ code: Dhcpv6Option.IAADDR, data: addr }] });
    const back = unwrap(decodeIaNa(ia));
    expect([back.iaid, back.t1, back.t2]).toEqual([iaid, t1, t2]);
    const a = unwrap(decodeIaAddr(back.options[0]?.data as Buffer));
    expect([a.address, a.preferred, a.valid]).toEqual([address, preferred, valid]);
    expect(unwrap(decodeStatus(a.options[0]?.data as Buffer))).toEqual({ code: 0, message: "ok" });
  });

  it("refuses short IAs", () => {
    expect(decodeIaNa(Buffer.alloc(11)).ok).toBe(false);
    expect(decodeIaAddr(Buffer.alloc(23)).ok).toBe(false);
  });
});

describe("name lists and DUIDs", () => {
  const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
  test.prop([
    fc.array(
      fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join(".")),
      { maxLength: 5 },
    ),
  ])("name lists round-trip, uncompressed", (names) => {
    const wire = unwrap(encodeNameList(names));
    expect(wire.includes(0xc0)).toBe(false);
    expect(unwrap(decodeNameList(wire))).toEqual(names);
  });

  it("writes a name list as RFC 1035 labels and refuses bad names", () => {
    expect(unwrap(encodeNameList(["example.org."])).toString("hex")).toBe("076578616d706c65036f726700");
    expect(encodeNameList(["a..b"]).ok).toBe(false);
    expect(encodeNameList(["x".repeat(64)]).ok).toBe(false);
    expect(decodeNameList(Buffer.from("c00c", "hex")).ok).toBe(false);
  });

  it("DUID-LL is type 3, hardware 1, the MAC", () => {
    expect(duidLl(Buffer.from("525600000002", "hex")).toString("hex")).toBe("00030001525600000002");
  });
});
