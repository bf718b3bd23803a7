/** The VXLAN header codec: Linux's strictness, round trips, and no throw on any bytes. */
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  decodeVxlan,
  encodeVxlan,
  encodeVxlanHeader,
  maxVni,
  vxlanHeaderLength,
} from "../../../src/ports/vxlan-header.js";

describe("VXLAN header", () => {
  it("encodes RFC 7348's layout: I flag, VNI in bytes 4..6, reserved zero", () => {
    const h = Buffer.alloc(8, 0xff);
    expect(encodeVxlanHeader(0x123456, h)).toBe(8);
    expect(h.toString("hex")).toBe("0800000012345600");
  });

  it("decodes a datagram Linux sent (vni 42, an ARP request inside)", () => {
    const d = Buffer.from(
      "08000000" + "00002a00" + "ffffffffffff" + "525400123456" + "0806" + "0001080006040001",
      "hex",
    );
    const r = decodeVxlan(d);
    expect(r).toMatchObject({ ok: true, vni: 42 });
    if (r.ok) expect(r.frame.subarray(12, 14).toString("hex")).toBe("0806");
  });

  it("drops what Linux drops: no I flag, reserved bits, short", () => {
    expect(decodeVxlan(Buffer.alloc(7))).toEqual({ ok: false, reason: "vxlan-too-short" });
    expect(decodeVxlan(Buffer.from("0000000000002a00", "hex"))).toEqual({
      ok: false,
      reason: "vxlan-no-vni-flag",
    });
    for (const bad of ["0c00000000002a00", "0801000000002a00", "0800000100002a00", "0800000000002a01"]) {
      expect(decodeVxlan(Buffer.from(bad, "hex"))).toEqual({ ok: false, reason: "vxlan-reserved-bits" });
    }
  });

  test.prop([fc.integer({ min: 0, max: maxVni }), fc.uint8Array({ maxLength: 200 })])(
    "round-trips any VNI and frame",
    (vni, bytes) => {
      const frame = Buffer.from(bytes);
      const r = decodeVxlan(encodeVxlan(vni, frame));
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(r.vni).toBe(vni);
        expect(r.frame.equals(frame)).toBe(true);
      }
    },
  );

  test.prop([fc.uint8Array({ maxLength: 64 })])("never throws on random bytes", (bytes) => {
    const r = decodeVxlan(Buffer.from(bytes));
    if (r.ok) expect(r.frame.length).toBe(bytes.length - vxlanHeaderLength);
  });

  test.prop([fc.integer({ min: 0, max: maxVni }), fc.uint8Array({ maxLength: 64 }), fc.nat()])(
    "never throws on truncated datagrams, and a whole header still decodes",
    (vni, bytes, cut) => {
      const d = encodeVxlan(vni, Buffer.from(bytes));
      const t = d.subarray(0, cut % (d.length + 1));
      const r = decodeVxlan(t);
      expect(r.ok).toBe(t.length >= vxlanHeaderLength);
    },
  );
});
