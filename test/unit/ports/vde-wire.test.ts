/**
 * The VDE handshake codec: a request laid out by hand as libvdeplug sends it, round
 * trips, and untrusted bytes (random, truncated, corrupted) that never throw.
 */
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  decodeSockaddrUn,
  decodeVdeRequest,
  encodeSockaddrUn,
  encodeVdeRequest,
  sockaddrUnLength,
  type VdeRequest,
  vdeRequestFixedLength,
} from "../../../src/ports/vde-wire.js";

/** What libvdeplug writes: little-endian on this machine, the description without its NUL. */
function libvdeplugRequest(type: number, path: string, description: string): Buffer {
  const b = Buffer.alloc(122 + description.length);
  b.writeUInt32LE(0xfeedface, 0);
  b.writeUInt32LE(3, 4);
  b.writeUInt32LE(type, 8);
  b.writeUInt16LE(1, 12);
  b.write(path, 14, "latin1");
  b.write(description, 122, "latin1");
  return b;
}

const arbPath = fc
  .array(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789._-/".split("")), {
    minLength: 1,
    maxLength: 100,
  })
  .map((cs) => `/${cs.join("")}`);
const arbDescription = fc
  .array(fc.integer({ min: 0x20, max: 0x7e }), { maxLength: 128 })
  .map((cs) => String.fromCharCode(...cs));
const arbRequest: fc.Arbitrary<VdeRequest> = fc.oneof(
  fc.record({
    kind: fc.constant("control" as const),
    port: fc.integer({ min: 0, max: 0xffffff }),
    path: arbPath,
    description: arbDescription,
  }),
  fc.record({
    kind: fc.constant("port0" as const),
    port: fc.constant(0),
    path: arbPath,
    description: arbDescription,
  }),
);

describe("VDE request_v3", () => {
  it("decodes what libvdeplug sends (QEMU asking for port 5)", () => {
    const req = libvdeplugRequest(5 << 8, "/tmp/vde.sw/.04242-00000", "QEMU user=root PID=4242");
    expect(req.length).toBe(vdeRequestFixedLength + 23);
    expect(decodeVdeRequest(req)).toEqual({
      ok: true,
      value: {
        kind: "control",
        port: 5,
        path: "/tmp/vde.sw/.04242-00000",
        description: "QEMU user=root PID=4242",
      },
    });
  });

  it("encodes byte for byte as libvdeplug does", () => {
    const ours = encodeVdeRequest({
      kind: "control",
      port: 0,
      path: "/sw/.00001-00000",
      description: "usernet",
    });
    expect(ours).toEqual(libvdeplugRequest(0, "/sw/.00001-00000", "usernet"));
    const port0 = encodeVdeRequest({ kind: "port0", port: 0, path: "/sw/x", description: "" });
    expect(port0.readUInt32LE(8)).toBe(1);
  });

  it("takes the description up to a NUL, at most 128 bytes, and only printable ASCII", () => {
    const req = Buffer.concat([libvdeplugRequest(0, "/p", ""), Buffer.from("ab\x01c\0garbage")]);
    expect(decodeVdeRequest(req)).toMatchObject({ ok: true, value: { description: "ab?c" } });
    const long = Buffer.concat([libvdeplugRequest(0, "/p", ""), Buffer.alloc(300, 0x41)]);
    expect(decodeVdeRequest(long)).toMatchObject({ ok: true, value: { description: "A".repeat(128) } });
  });

  it.each([
    ["request-too-short", Buffer.alloc(3)],
    ["request-bad-magic", Buffer.alloc(200)],
    [
      "request-bad-version",
      (() => {
        const b = libvdeplugRequest(0, "/p", "");
        b.writeUInt32LE(2, 4);
        return b;
      })(),
    ],
    ["request-too-short", libvdeplugRequest(0, "/p", "").subarray(0, 121)],
    ["request-bad-type", libvdeplugRequest(2, "/p", "")],
    [
      "address-not-unix",
      (() => {
        const b = libvdeplugRequest(0, "/p", "");
        b.writeUInt16LE(2, 12);
        return b;
      })(),
    ],
    [
      "address-abstract",
      (() => {
        const b = libvdeplugRequest(0, "/p", "");
        b[14] = 0;
        b[15] = 0x61;
        return b;
      })(),
    ],
    [
      "address-unterminated",
      (() => {
        const b = libvdeplugRequest(0, "/p", "");
        b.fill(0x61, 14, 122);
        return b;
      })(),
    ],
    ["address-not-utf8", libvdeplugRequest(0, "/\xff\xfe", "")],
  ])("refuses %s", (reason, bytes) => {
    expect(decodeVdeRequest(bytes)).toEqual({ ok: false, reason });
  });

  test.prop([arbRequest])("round-trips", (r) => {
    expect(decodeVdeRequest(encodeVdeRequest(r))).toEqual({ ok: true, value: r });
  });

  test.prop([fc.uint8Array({ maxLength: 400 })])("random bytes never throw", (a) => {
    const r = decodeVdeRequest(Buffer.from(a));
    expect(typeof r.ok).toBe("boolean");
  });

  test.prop([arbRequest, fc.nat()])(
    "a truncated request never throws and is too short below 122 bytes",
    (r, n) => {
      const full = encodeVdeRequest(r);
      const cut = full.subarray(0, n % (full.length + 1));
      const d = decodeVdeRequest(cut);
      if (cut.length < vdeRequestFixedLength) expect(d).toEqual({ ok: false, reason: "request-too-short" });
      else expect(d.ok).toBe(true);
    },
  );

  test.prop([arbRequest, fc.nat(), fc.integer({ min: 0, max: 255 })])(
    "a corrupted byte never throws",
    (r, at, v) => {
      const b = Buffer.from(encodeVdeRequest(r));
      b[at % b.length] = v;
      expect(typeof decodeVdeRequest(b).ok).toBe("boolean");
    },
  );
});

describe("sockaddr_un", () => {
  it("is 110 bytes: family 1 and a NUL-padded path", () => {
    const b = encodeSockaddrUn("/tmp/sw/001.port");
    expect(b.length).toBe(sockaddrUnLength);
    expect(b.readUInt16LE(0)).toBe(1);
    expect(b.subarray(2, 18).toString()).toBe("/tmp/sw/001.port");
    expect(b.subarray(18).every((x) => x === 0)).toBe(true);
  });

  it("refuses paths that cannot be one (our own input: throws)", () => {
    expect(() => encodeSockaddrUn("")).toThrow(RangeError);
    expect(() => encodeSockaddrUn(`/${"a".repeat(107)}`)).toThrow(RangeError);
    expect(() => encodeSockaddrUn("/a\0b")).toThrow(RangeError);
  });

  test.prop([arbPath])("round-trips", (p) => {
    expect(decodeSockaddrUn(encodeSockaddrUn(p))).toEqual({ ok: true, value: p });
  });

  test.prop([fc.uint8Array({ maxLength: 200 })])("random bytes never throw", (a) => {
    expect(typeof decodeSockaddrUn(Buffer.from(a)).ok).toBe("boolean");
  });
});
