import { readFileSync } from "node:fs";
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  LINKTYPE_ETHERNET,
  PCAP_MAGIC_MICROS,
  PCAP_MAGIC_NANOS,
  type PcapPacket,
  pcapFileHeader,
  pcapRecord,
  readPcap,
  readPcapHeader,
} from "../../../src/ports/pcap.js";

const fixture = (name: string) => readFileSync(new URL(`../../../fixtures/${name}`, import.meta.url));

function unwrap<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!r.ok) throw new Error(`unexpected failure: ${r.reason}`);
  return r.value;
}

/** A file written by hand, in either byte order and precision, to test the reader. */
function handMade(opts: {
  le: boolean;
  nanos: boolean;
  records: { sec: number; frac: number; data: Buffer; origLen?: number }[];
  network?: number;
}): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  const w32 = (b: Buffer, v: number, at: number) =>
    opts.le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at);
  const w16 = (b: Buffer, v: number, at: number) =>
    opts.le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at);
  w32(h, opts.nanos ? PCAP_MAGIC_NANOS : PCAP_MAGIC_MICROS, 0);
  w16(h, 2, 4);
  w16(h, 4, 6);
  w32(h, 65535, 16);
  w32(h, opts.network ?? LINKTYPE_ETHERNET, 20);
  parts.push(h);
  for (const r of opts.records) {
    const rh = Buffer.alloc(16);
    w32(rh, r.sec, 0);
    w32(rh, r.frac, 4);
    w32(rh, r.data.length, 8);
    w32(rh, r.origLen ?? r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

describe("pcapFileHeader", () => {
  test("is the classic little-endian v2.4 Ethernet header", () => {
    expect(pcapFileHeader().toString("hex")).toBe(
      "d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "00000400" + "01000000",
    );
    expect(pcapFileHeader(1514).readUInt32LE(16)).toBe(1514);
  });
});

describe("pcapRecord", () => {
  test("splits microseconds into seconds and microseconds and does not copy the frame", () => {
    const frame = Buffer.from("0102030405060708", "hex");
    const [h, data] = pcapRecord(frame, 1_700_000_000_123_456n);
    expect(data).toBe(frame);
    expect(h?.length).toBe(16);
    expect(h?.readUInt32LE(0)).toBe(1_700_000_000);
    expect(h?.readUInt32LE(4)).toBe(123_456);
    expect(h?.readUInt32LE(8)).toBe(8);
    expect(h?.readUInt32LE(12)).toBe(8);
  });

  test("accepts numbers, flooring fractions", () => {
    const [h] = pcapRecord(Buffer.alloc(1), 2_500_000.9);
    expect(h?.readUInt32LE(0)).toBe(2);
    expect(h?.readUInt32LE(4)).toBe(500_000);
  });

  test("refuses a negative timestamp (a caller bug, not guest input)", () => {
    expect(() => pcapRecord(Buffer.alloc(1), -1)).toThrow(RangeError);
  });

  test.prop([
    fc.array(
      fc.record({
        frame: fc.uint8Array({ minLength: 0, maxLength: 1600 }).map((a) => Buffer.from(a)),
        ts: fc.bigInt({ min: 0n, max: 0xffffffffn * 1_000_000n + 999_999n }),
      }),
      { maxLength: 20 },
    ),
  ])("round-trips through readPcap", (records) => {
    const file = Buffer.concat([pcapFileHeader(), ...records.flatMap((r) => pcapRecord(r.frame, r.ts))]);
    const packets = unwrap(readPcap(file));
    expect(packets.length).toBe(records.length);
    records.forEach((r, i) => {
      const p = packets[i] as PcapPacket;
      expect(BigInt(p.tsSec) * 1_000_000n + BigInt(p.tsUsec)).toBe(r.ts);
      expect(p.data.equals(r.frame)).toBe(true);
      expect(p.origLen).toBe(r.frame.length);
    });
  });
});

describe("readPcap", () => {
  const frames = [Buffer.from("aabbccddeeff", "hex"), Buffer.from("00112233", "hex")];
  const records = [
    { sec: 10, frac: 999_999, data: frames[0] as Buffer },
    { sec: 11, frac: 1, data: frames[1] as Buffer },
  ];

  test.each([true, false])("reads microsecond files (little-endian %s)", (le) => {
    const file = handMade({ le, nanos: false, records });
    const h = unwrap(readPcapHeader(file));
    expect(h).toEqual({
      littleEndian: le,
      nanos: false,
      versionMajor: 2,
      versionMinor: 4,
      snaplen: 65535,
      linktype: 1,
      fcsLength: 0,
    });
    const packets = unwrap(readPcap(file));
    expect(packets.map((p) => [p.tsSec, p.tsUsec, p.data.toString("hex")])).toEqual([
      [10, 999_999, "aabbccddeeff"],
      [11, 1, "00112233"],
    ]);
  });

  test.each([true, false])("reads nanosecond files as microseconds (little-endian %s)", (le) => {
    const file = handMade({
      le,
      nanos: true,
      records: [{ sec: 5, frac: 123_456_789, data: Buffer.alloc(14) }],
    });
    expect(unwrap(readPcapHeader(file)).nanos).toBe(true);
    const [p] = unwrap(readPcap(file));
    expect([p?.tsSec, p?.tsUsec]).toEqual([5, 123_456]);
  });

  test("returns views into the file, not copies", () => {
    const file = handMade({ le: true, nanos: false, records });
    const [p] = unwrap(readPcap(file));
    expect(p?.data.buffer).toBe(file.buffer);
    expect(p?.data.byteOffset).toBe(file.byteOffset + 24 + 16);
  });

  test("an empty capture (header only) has no packets", () => {
    expect(unwrap(readPcap(pcapFileHeader()))).toEqual([]);
  });

  test("keeps a cut frame's original length", () => {
    const file = handMade({
      le: true,
      nanos: false,
      records: [{ sec: 1, frac: 0, data: Buffer.alloc(60), origLen: 1514 }],
    });
    const [p] = unwrap(readPcap(file));
    expect([p?.data.length, p?.origLen]).toEqual([60, 1514]);
  });

  test("cuts the FCS off when the header says frames carry one", () => {
    // F bit (28) set, FCS length 2 (in 16-bit words) in bits 29-31: 4 bytes.
    const network = (1 | 0x10000000 | (2 << 29)) >>> 0;
    const file = handMade({
      le: true,
      nanos: false,
      network,
      records: [{ sec: 1, frac: 0, data: Buffer.from("0102030405deadbeef", "hex") }],
    });
    expect(unwrap(readPcapHeader(file))).toMatchObject({ linktype: 1, fcsLength: 4 });
    const [p] = unwrap(readPcap(file));
    expect(p?.data.toString("hex")).toBe("0102030405");
    expect(p?.origLen).toBe(5);
  });

  const version1 = pcapFileHeader();
  version1.writeUInt16LE(1, 4);
  test.each([
    ["pcap-truncated-header", Buffer.alloc(10)],
    ["pcap-bad-magic", Buffer.alloc(24)],
    ["pcap-bad-magic", Buffer.from("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000", "hex")], // pcapng
    ["pcap-bad-version", version1],
  ])("fails with %s", (reason, file) => {
    expect(readPcap(file)).toEqual({ ok: false, reason });
    expect(readPcapHeader(file)).toEqual({ ok: false, reason });
  });

  test("fails on other link types", () => {
    const file = handMade({ le: true, nanos: false, records, network: 101 });
    expect(unwrap(readPcapHeader(file)).linktype).toBe(101);
    expect(readPcap(file)).toEqual({ ok: false, reason: "pcap-unsupported-linktype" });
  });

  test("fails on a record that runs past the end of the file", () => {
    const file = handMade({ le: true, nanos: false, records });
    expect(readPcap(file.subarray(0, file.length - 1))).toEqual({
      ok: false,
      reason: "pcap-truncated-record",
    });
    expect(readPcap(file.subarray(0, 24 + 10))).toEqual({ ok: false, reason: "pcap-truncated-record" });
  });

  test("fails on a record longer than its original length", () => {
    const file = handMade({
      le: true,
      nanos: false,
      records: [{ sec: 1, frac: 0, data: Buffer.alloc(60), origLen: 59 }],
    });
    expect(readPcap(file)).toEqual({ ok: false, reason: "pcap-bad-record-length" });
  });

  test.each([
    [false, 1_000_000],
    [true, 1_000_000_000],
  ])("fails on a sub-second field out of range (nanos %s)", (nanos, frac) => {
    const file = handMade({ le: true, nanos, records: [{ sec: 1, frac, data: Buffer.alloc(14) }] });
    expect(readPcap(file)).toEqual({ ok: false, reason: "pcap-bad-timestamp" });
  });

  test("every cut of a valid file either reads a prefix of its packets or fails, never throws", () => {
    const file = Buffer.concat([
      pcapFileHeader(),
      ...pcapRecord(Buffer.alloc(20, 1), 1n),
      ...pcapRecord(Buffer.alloc(30, 2), 2n),
    ]);
    const boundaries = new Map([
      [24, 0],
      [24 + 16 + 20, 1],
      [file.length, 2],
    ]);
    for (let n = 0; n <= file.length; n++) {
      const r = readPcap(file.subarray(0, n));
      const expected = boundaries.get(n);
      if (expected === undefined) expect(r.ok).toBe(false);
      else expect(unwrap(r).length).toBe(expected);
    }
  });

  test.prop([fc.uint8Array({ maxLength: 200 })])("never throws on garbage", (bytes) => {
    const r = readPcap(Buffer.from(bytes));
    if (!r.ok) expect(r.reason).toMatch(/^pcap-[a-z-]+$/);
  });

  test.prop([fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.boolean()])(
    "never throws on garbage after a valid header, and only returns in-bounds views",
    (bytes, le, nanos) => {
      const file = Buffer.concat([handMade({ le, nanos, records: [] }), Buffer.from(bytes)]);
      const r = readPcap(file);
      if (r.ok) {
        for (const p of r.value) {
          expect(p.data.buffer).toBe(file.buffer);
          expect(p.data.byteOffset + p.data.length).toBeLessThanOrEqual(file.byteOffset + file.length);
          expect(p.tsUsec).toBeLessThan(1_000_000);
        }
      } else {
        expect(r.reason).toMatch(/^pcap-[a-z-]+$/);
      }
    },
  );
});

describe("fixtures captured from the Linux kernel", () => {
  const ethertype = (p: PcapPacket) => p.data.readUInt16BE(12);

  test.each([
    ["arp.pcap", 2],
    ["icmp.pcap", 6],
    ["udp.pcap", 6],
    ["tcp.pcap", 10],
    ["ipv4-fragments.pcap", 7],
    ["vlan.pcap", 6],
  ])("%s: Ethernet, %i frames, timestamps in order", (name, count) => {
    const file = fixture(name);
    const h = unwrap(readPcapHeader(file));
    expect(h.linktype).toBe(LINKTYPE_ETHERNET);
    expect(h.snaplen).toBe(262144);
    const packets = unwrap(readPcap(file));
    expect(packets.length).toBe(count);
    for (let i = 1; i < packets.length; i++) {
      const a = packets[i - 1] as PcapPacket;
      const b = packets[i] as PcapPacket;
      expect(b.tsSec * 1e6 + b.tsUsec).toBeGreaterThanOrEqual(a.tsSec * 1e6 + a.tsUsec);
    }
    for (const p of packets) expect(p.data.length).toBe(p.origLen);
  });

  test("arp.pcap: a broadcast request and a unicast reply", () => {
    const [req, rep] = unwrap(readPcap(fixture("arp.pcap")));
    expect(req && ethertype(req)).toBe(0x0806);
    expect(req?.data.subarray(0, 6).toString("hex")).toBe("ffffffffffff");
    expect(req?.data.readUInt16BE(14 + 6)).toBe(1); // ARP opcode request
    expect(rep?.data.readUInt16BE(14 + 6)).toBe(2); // reply
  });

  test("ipv4 fixtures carry IPv4 with the protocol they are named after", () => {
    const proto = (p: PcapPacket) => p.data[14 + 9];
    const protos = (name: string) => unwrap(readPcap(fixture(name))).map((p) => [ethertype(p), proto(p)]);
    expect(protos("icmp.pcap").slice(0, 4)).toEqual(Array(4).fill([0x0800, 1]));
    expect(protos("udp.pcap")).toEqual(Array(6).fill([0x0800, 17]));
    expect(protos("tcp.pcap")).toEqual(Array(10).fill([0x0800, 6]));
    expect(protos("ipv4-fragments.pcap")).toEqual(Array(7).fill([0x0800, 17]));
  });

  test("vlan.pcap: every frame is 802.1Q-tagged with VLAN 5", () => {
    const packets = unwrap(readPcap(fixture("vlan.pcap")));
    for (const p of packets) {
      expect(ethertype(p)).toBe(0x8100);
      expect(p.data.readUInt16BE(14) & 0x0fff).toBe(5);
    }
    expect(packets.map((p) => p.data.readUInt16BE(16))).toEqual([
      0x0806, 0x0806, 0x0800, 0x0800, 0x0800, 0x0800,
    ]);
  });
});
