import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  decodeTftp,
  encodeTftp,
  encodeTftpInto,
  type TftpPacket,
  tftpEncodingLength,
  tftpOpcodeOf,
  tftpOptionNumber,
} from "../../../../src/services/tftp/tftp-packet.js";

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));

function unwrap<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!r.ok) throw new Error(`unexpected failure: ${r.reason}`);
  return r.value;
}
const reasonOf = (r: { ok: boolean; reason?: string }) => (r.ok ? "ok" : r.reason);

const str = fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\0"));
const nonEmpty = str.filter((s) => s.length > 0);
const arbOptions = fc.array(fc.record({ name: nonEmpty, value: str }), { maxLength: 6 });
const arbPacket: fc.Arbitrary<TftpPacket> = fc.oneof(
  fc.record({
    op: fc.constantFrom("rrq" as const, "wrq" as const),
    filename: nonEmpty,
    mode: fc.constantFrom("netascii" as const, "octet" as const, "mail" as const),
    options: arbOptions,
  }),
  fc.record({
    op: fc.constant("data" as const),
    block: fc.integer({ min: 0, max: 65535 }),
    data: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  }),
  fc.record({ op: fc.constant("ack" as const), block: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({ op: fc.constant("error" as const), code: fc.integer({ min: 0, max: 65535 }), message: str }),
  fc.record({ op: fc.constant("oack" as const), options: arbOptions }),
);

describe("tftp codec", () => {
  test.prop([arbPacket])("round-trips every packet", (p) => {
    const b = encodeTftp(p);
    expect(b.length).toBe(tftpEncodingLength(p));
    expect(unwrap(decodeTftp(b))).toEqual(p);
  });

  test.prop([arbPacket, fc.integer({ min: 0, max: 16 })])("encodes into a buffer at an offset", (p, at) => {
    const out = Buffer.alloc(at + tftpEncodingLength(p) + 3, 0xee);
    expect(encodeTftpInto(p, out, at)).toBe(tftpEncodingLength(p));
    expect(out.subarray(at, at + tftpEncodingLength(p))).toEqual(encodeTftp(p));
    expect(out[out.length - 1]).toBe(0xee);
  });

  test.prop([fc.uint8Array({ maxLength: 200 })])("garbage never throws; failures are kebab-case", (a) => {
    const r = decodeTftp(Buffer.from(a));
    if (!r.ok) expect(r.reason).toMatch(/^tftp-[a-z0-9-]+$/);
  });

  test.prop([arbPacket, fc.nat()])("every truncation decodes or fails cleanly", (p, cut) => {
    const b = encodeTftp(p);
    const r = decodeTftp(b.subarray(0, cut % (b.length + 1)));
    if (!r.ok) expect(r.reason).toMatch(/^tftp-[a-z0-9-]+$/);
  });

  it("decodes a tftp-hpa style RRQ with options", () => {
    const b = bytes([0, 1], "pxelinux.0\0OCTET\0tsize\x000\0blksize\x001432\0");
    expect(unwrap(decodeTftp(b))).toEqual({
      op: "rrq",
      filename: "pxelinux.0",
      mode: "octet",
      options: [
        { name: "tsize", value: "0" },
        { name: "blksize", value: "1432" },
      ],
    });
  });

  it("tolerates NUL padding after the options, not other trailing bytes", () => {
    expect(unwrap(decodeTftp(bytes([0, 1], "f\0octet\0", [0, 0, 0])))).toMatchObject({ options: [] });
    expect(reasonOf(decodeTftp(bytes([0, 1], "f\0octet\0\0x\0")))).toBe("tftp-empty-option-name");
  });

  it("refuses malformed requests with a reason", () => {
    expect(reasonOf(decodeTftp(Buffer.from([0])))).toBe("tftp-truncated");
    expect(reasonOf(decodeTftp(bytes([0, 1], "file")))).toBe("tftp-unterminated-string");
    expect(reasonOf(decodeTftp(bytes([0, 1], "file\0octet")))).toBe("tftp-unterminated-string");
    expect(reasonOf(decodeTftp(bytes([0, 1], "\0octet\0")))).toBe("tftp-empty-filename");
    expect(reasonOf(decodeTftp(bytes([0, 1], "f\0binary\0")))).toBe("tftp-unknown-mode");
    expect(reasonOf(decodeTftp(bytes([0, 1], "f\0octet\0blksize\0")))).toBe("tftp-option-without-value");
    expect(reasonOf(decodeTftp(bytes([0, 1], [0x66, 0xff, 0xfe, 0], "octet\0")))).toBe("tftp-bad-string");
    expect(reasonOf(decodeTftp(bytes([0, 7, 0, 0])))).toBe("tftp-unknown-opcode");
    expect(reasonOf(decodeTftp(bytes([0, 3, 0])))).toBe("tftp-truncated");
    expect(reasonOf(decodeTftp(bytes([0, 4, 0])))).toBe("tftp-truncated");
    expect(reasonOf(decodeTftp(bytes([0, 5, 0])))).toBe("tftp-truncated");
  });

  it("accepts an ERROR without its final NUL and an ACK with extra bytes", () => {
    expect(unwrap(decodeTftp(bytes([0, 5, 0, 1], "nope")))).toEqual({
      op: "error",
      code: 1,
      message: "nope",
    });
    expect(unwrap(decodeTftp(bytes([0, 4, 0x12, 0x34, 0, 0])))).toEqual({ op: "ack", block: 0x1234 });
  });

  it("returns DATA as a view, not a copy", () => {
    const b = bytes([0, 3, 0, 9], "hello");
    const p = unwrap(decodeTftp(b));
    expect(p.op === "data" && p.data.buffer === b.buffer).toBe(true);
  });

  it("reads opcodes and option numbers", () => {
    expect(tftpOpcodeOf(Buffer.from([0, 2, 9]))).toBe(2);
    expect(tftpOpcodeOf(Buffer.from([0]))).toBeUndefined();
    expect(tftpOptionNumber("1432")).toBe(1432);
    expect(tftpOptionNumber("0")).toBe(0);
    for (const bad of ["", "-1", "1e3", " 5", "0x10", "12345678901", "1.5"]) {
      expect(tftpOptionNumber(bad)).toBeUndefined();
    }
  });
});
