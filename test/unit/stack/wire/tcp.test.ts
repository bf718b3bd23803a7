import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  checksumFull,
  checksumOffloaded,
  onesSum,
  type PseudoHeader,
  pseudoHeaderSum,
} from "../../../../src/stack/wire/checksum.js";
import { decodeIpv4 } from "../../../../src/stack/wire/ipv4.js";
import {
  decodeTcp,
  encodeTcp,
  TcpFlag,
  type TcpSegment,
  tcpEncodingLength,
  tcpFlagsFromString,
  tcpFlagsToString,
  tcpHeaderLengthOf,
  tcpOptionsLength,
} from "../../../../src/stack/wire/tcp.js";
import {
  arbBytes,
  arbGarbage,
  arbMutation,
  arbPseudo,
  arbTcpSegment,
  hex,
  mutate,
  reasonOf,
  unwrap,
} from "./arbitraries.js";
import { tcpData, tcpSyn, tcpSynAck } from "./frames.js";

function encode(s: TcpSegment, ip: PseudoHeader, policy = checksumFull): Buffer {
  const out = Buffer.alloc(tcpEncodingLength(s), 0xa5);
  expect(encodeTcp(s, out, 0, ip, policy)).toBe(out.length);
  return out;
}

const verifySum = (b: Buffer, p: PseudoHeader) =>
  onesSum(b, 0, b.length, pseudoHeaderSum(p.src, p.dst, 6, b.length));

const ipOf = (frame: Buffer) => unwrap(decodeIpv4(frame.subarray(14)));
const synIp = ipOf(tcpSyn);
const A = { src: 0x0a000202, dst: 0x0a00020f };

/** A segment with the given option bytes (a multiple of 4) and a valid checksum. */
function withOptions(options: Buffer, ip: PseudoHeader = A): Buffer {
  const b = Buffer.alloc(20 + options.length);
  b.writeUInt16BE(80, 0);
  b.writeUInt16BE(4000, 2);
  b[12] = ((20 + options.length) / 4) << 4;
  b[13] = TcpFlag.ack;
  options.copy(b, 20);
  b.writeUInt16BE(~verifySum(b, ip) & 0xffff, 16);
  return b;
}

describe("decode real segments", () => {
  test("Linux SYN: mss 1460, sackOK, TS val 495112692 ecr 0, wscale 10", () => {
    const s = unwrap(decodeTcp(synIp.payload, synIp));
    expect(s).toMatchObject({
      srcPort: 58026,
      dstPort: 8080,
      seq: 2045027463,
      ack: 0,
      flags: TcpFlag.syn,
      window: 64240,
      urgent: 0,
      mss: 1460,
      windowScale: 10,
      sackPermitted: true,
      tsVal: 495112692,
      tsEcr: 0,
      checksum: 0x2826,
    });
    expect(s.sack).toBeUndefined();
    expect(s.unknownOptions).toBeUndefined();
    expect(s.payload.length).toBe(0);
    expect(tcpFlagsToString(s.flags)).toBe("S");
  });

  test("the SYN re-encodes byte for byte (the encoder lays options out like Linux)", () => {
    const s = unwrap(decodeTcp(synIp.payload, synIp));
    expect(encode(s, synIp).equals(synIp.payload)).toBe(true);
  });

  test("Linux SYN-ACK: ack = SYN's seq + 1, same option layout", () => {
    const ip = ipOf(tcpSynAck);
    const s = unwrap(decodeTcp(ip.payload, ip));
    expect(s).toMatchObject({
      seq: 2502860119,
      ack: 2045027464,
      window: 65160,
      mss: 1460,
      windowScale: 10,
      sackPermitted: true,
      tsVal: 3000711211,
      tsEcr: 495112692,
    });
    expect(tcpFlagsToString(s.flags)).toBe("SA");
    expect(encode(s, ip).equals(ip.payload)).toBe(true);
  });

  test("a data segment: PSH+ACK, nop nop TS, 'hello' as a view", () => {
    const ip = ipOf(tcpData);
    const s = unwrap(decodeTcp(ip.payload, ip));
    expect(tcpFlagsToString(s.flags)).toBe("PA");
    expect(s).toMatchObject({ window: 63, tsVal: 495112693, tsEcr: 3000711211, sackPermitted: false });
    expect(s.mss).toBeUndefined();
    expect(s.payload.toString()).toBe("hello");
    expect(s.payload.buffer).toBe(tcpData.buffer);
    expect(encode(s, ip).equals(ip.payload)).toBe(true);
  });

  test("a wrong pseudo-header or a flipped bit fails the checksum", () => {
    expect(reasonOf(decodeTcp(synIp.payload, { src: synIp.dst, dst: synIp.dst }))).toBe("tcp-bad-checksum");
    const b = Buffer.from(synIp.payload);
    b[5] = (b[5] ?? 0) ^ 0x10;
    expect(reasonOf(decodeTcp(b, synIp))).toBe("tcp-bad-checksum");
    expect(decodeTcp(b, synIp, checksumOffloaded).ok).toBe(true);
  });
});

describe("options", () => {
  test("SACK blocks with timestamps, laid out NOP NOP TS NOP NOP SACK as Linux does", () => {
    const s: TcpSegment = {
      srcPort: 1,
      dstPort: 2,
      seq: 100,
      ack: 200,
      flags: TcpFlag.ack,
      window: 1000,
      urgent: 0,
      tsVal: 0x11111111,
      tsEcr: 0x22222222,
      sack: [
        { left: 0x1000, right: 0x2000 },
        { left: 0xfffffff0, right: 0x10 },
      ],
      payload: Buffer.alloc(0),
    };
    expect(tcpOptionsLength(s)).toBe(32);
    const b = encode(s, A);
    expect(b.subarray(20).toString("hex")).toBe(
      "0101080a1111111122222222" + "01010512" + "0000100000002000" + "fffffff000000010",
    );
    expect(unwrap(decodeTcp(b, A))).toMatchObject({ sack: s.sack, tsVal: 0x11111111, tsEcr: 0x22222222 });
  });

  test("SACK-permitted alone is NOP NOP SACKOK; window scale is NOP WS", () => {
    const b = encode(
      {
        srcPort: 1,
        dstPort: 2,
        seq: 0,
        ack: 0,
        flags: TcpFlag.syn,
        window: 0,
        urgent: 0,
        sackPermitted: true,
        windowScale: 7,
        payload: Buffer.alloc(0),
      },
      A,
    );
    expect(b.subarray(20).toString("hex")).toBe("01010402" + "01030307");
    expect(tcpHeaderLengthOf(unwrap(decodeTcp(b, A)))).toBe(28);
  });

  test("unknown options are kept raw and re-encoded, padded with EOL", () => {
    // TFO cookie (kind 34, 8-byte cookie) then an MPTCP-ish kind 30 with 1 byte
    const b = withOptions(hex("220a 0102030405060708 1e03 aa 00 0000"));
    const s = unwrap(decodeTcp(b, A));
    expect(s.unknownOptions?.map((o) => [o.kind, o.data.toString("hex")])).toEqual([
      [34, "0102030405060708"],
      [30, "aa"],
    ]);
    expect(encode(s, A).equals(b)).toBe(true);
  });

  test("parsing stops at EOL; NOPs are skipped", () => {
    const s = unwrap(decodeTcp(withOptions(hex("0101 0204 0218 00 ff ffff")), A));
    expect(s.mss).toBe(0x218);
    expect(s.unknownOptions).toBeUndefined();
  });

  test("values are kept as received (window scale 15, MSS 0)", () => {
    const s = unwrap(decodeTcp(withOptions(hex("0204 0000 0103 030f")), A));
    expect(s).toMatchObject({ mss: 0, windowScale: 15 });
  });

  test.each([
    ["a length of 0", "0200 0000", "tcp-bad-option-length"],
    ["a length of 1", "0101 1e01", "tcp-bad-option-length"],
    ["MSS with length 3", "0203 0501", "tcp-bad-option-length"],
    ["window scale with length 4", "0304 0700", "tcp-bad-option-length"],
    ["SACK-permitted with length 3", "0403 0001", "tcp-bad-option-length"],
    ["timestamps with length 8", "0808 0000 0000 0000", "tcp-bad-option-length"],
    ["SACK with no block", "0101 0502", "tcp-bad-option-length"],
    ["SACK with half a block", "0101 0506 0000 0000", "tcp-bad-option-length"],
    ["SACK with a length not 2 + 8n", `0101 050b ${"00".repeat(12)}`, "tcp-bad-option-length"],
    ["an option running past the header", "0101 0204", "tcp-option-overrun"],
    ["a kind without its length byte at the end", "0101 0102", "tcp-option-overrun"],
    ["an unknown option running past the header", "1e08 0000", "tcp-option-overrun"],
  ])("rejects %s", (_name, opts, reason) => {
    expect(reasonOf(decodeTcp(withOptions(hex(opts)), A))).toBe(reason);
  });

  test("4 SACK blocks decode; with timestamps they do not fit and encode refuses", () => {
    const blocks = "0000000100000002".repeat(4);
    const s = unwrap(decodeTcp(withOptions(hex(`0101 0522 ${blocks}`)), A));
    expect(s.sack).toHaveLength(4);
    expect(tcpOptionsLength(s)).toBe(36);
    expect(() => encode({ ...s, tsVal: 1 }, A)).toThrow(RangeError);
    const five = [...(s.sack ?? []), { left: 9, right: 10 }];
    expect(() => encodeTcp({ ...s, sack: five }, Buffer.alloc(200), 0, A)).toThrow(RangeError);
  });
});

describe("header", () => {
  test.each([
    ["empty", Buffer.alloc(0), "tcp-truncated"],
    ["19 bytes", Buffer.alloc(19), "tcp-truncated"],
    ["data offset 4", hex(`${"00".repeat(12)}40${"00".repeat(7)}`), "tcp-bad-data-offset"],
    ["data offset past the end", hex(`${"00".repeat(12)}60${"00".repeat(7)}`), "tcp-bad-data-offset"],
  ])("rejects %s", (_name, b, reason) => {
    expect(reasonOf(decodeTcp(b, A, checksumOffloaded))).toBe(reason);
  });

  test("flag letters round-trip, any order and case", () => {
    expect(tcpFlagsToString(0)).toBe("");
    expect(tcpFlagsToString(0xff)).toBe("FSRPAUEC");
    expect(tcpFlagsFromString("AS")).toBe(TcpFlag.syn | TcpFlag.ack);
    expect(tcpFlagsFromString("fa")).toBe(TcpFlag.fin | TcpFlag.ack);
    expect(tcpFlagsFromString("SX")).toBeUndefined();
    for (let f = 0; f < 256; f++) expect(tcpFlagsFromString(tcpFlagsToString(f))).toBe(f);
  });

  test("without fillTx writes the record's checksum (or 0); in place costs no copy", () => {
    const s = unwrap(decodeTcp(synIp.payload, synIp));
    expect(encode({ ...s, checksum: 0x4242 }, synIp, checksumOffloaded).readUInt16BE(16)).toBe(0x4242);
    expect(encode({ ...s, checksum: undefined }, synIp, checksumOffloaded).readUInt16BE(16)).toBe(0);
    const out = Buffer.alloc(40 + 3, 0xa5);
    out.write("abc", 40);
    expect(encodeTcp({ ...s, payload: out.subarray(40) }, out, 0, synIp)).toBe(43);
    expect(unwrap(decodeTcp(out, synIp)).payload.toString()).toBe("abc");
    expect(() => encodeTcp(s, Buffer.alloc(39), 0, synIp)).toThrow(RangeError);
  });
});

describe("properties", () => {
  test.prop([arbTcpSegment, arbPseudo])("decode(encode(x)) equals x; the checksum verifies", (s, p) => {
    const b = encode(s, p);
    expect(verifySum(b, p)).toBe(0xffff);
    const d = unwrap(decodeTcp(b, p));
    expect(d).toEqual({ ...s, checksum: d.checksum });
  });

  test.prop([arbTcpSegment, arbPseudo, fc.integer({ min: 0, max: 0xffff })])(
    "without checksums, the record's checksum round-trips too",
    (s, p, checksum) => {
      const x = { ...s, checksum };
      expect(unwrap(decodeTcp(encode(x, p, checksumOffloaded), p, checksumOffloaded))).toEqual(x);
    },
  );

  test.prop([arbTcpSegment, arbPseudo])("encode(decode(bytes)) reproduces the bytes", (s, p) => {
    const bytes = encode(s, p);
    expect(encode(unwrap(decodeTcp(bytes, p)), p).equals(bytes)).toBe(true);
  });

  test.prop([fc.integer({ min: 0, max: 10 }).chain((w) => arbBytes(w * 4, w * 4)), arbBytes(20)])(
    "random options never throw; accepted ones survive a re-encode when they fit",
    (options, payload) => {
      const b = Buffer.concat([withOptions(options), payload]);
      const r = decodeTcp(b, A, checksumOffloaded);
      if (!r.ok) {
        expect(["tcp-bad-option-length", "tcp-option-overrun"]).toContain(r.reason);
        return;
      }
      if (tcpOptionsLength(r.value) > 40) return;
      const again = unwrap(decodeTcp(encode(r.value, A), A));
      expect(again).toEqual({ ...r.value, checksum: again.checksum });
    },
  );

  test.prop([arbGarbage(80), arbPseudo])("random bytes never throw", (b, p) => {
    for (const policy of [checksumFull, checksumOffloaded]) {
      const r = decodeTcp(b, p, policy);
      if (!r.ok) expect(r.reason).toMatch(/^tcp-[a-z-]+$/);
      else expect(r.value.payload.length).toBeLessThanOrEqual(b.length - 20);
    }
  });

  test.prop([arbTcpSegment, arbPseudo, arbMutation])(
    "mutated segments never throw; accepted ones verify",
    (s, p, m) => {
      const b = mutate(encode(s, p), m);
      const r = decodeTcp(b, p);
      if (r.ok) expect(verifySum(b, p)).toBe(0xffff);
      decodeTcp(b, p, checksumOffloaded);
    },
  );
});
