/**
 * pcap: the classic libpcap capture file format (not pcapng), pure codec.
 *
 * Theory of operation
 * - Writing: `pcapFileHeader()` once, then `pcapRecord(frame, tsMicros)` per frame.
 *   We always write little-endian, version 2.4, microsecond timestamps and
 *   LINKTYPE_ETHERNET (1): what tcpdump and Wireshark read everywhere. A record is
 *   returned as [16-byte header, frame] so a writer can hand both to writev() without
 *   copying the frame.
 * - Reading: `readPcap(file)` accepts both byte orders and both the microsecond
 *   (0xa1b2c3d4) and the nanosecond (0xa1b23c4d) magic; nanoseconds are truncated to
 *   microseconds. Packet data are views into the input Buffer, not copies.
 *   `readPcapHeader()` exposes the file header (link type, snaplen, precision).
 * - Files are untrusted: nothing here throws on bad bytes. A short header, an unknown
 *   magic, a record running past the end of the file, a record longer than its
 *   original length or a sub-second field out of range gives a `Result` failure
 *   with a short reason ("pcap-truncated-record", ...). A file that is not Ethernet
 *   is refused by `readPcap` ("pcap-unsupported-linktype"). When the header says the
 *   frames carry an FCS, it is cut off the returned data.
 *
 * Not done: pcapng, writing nanosecond files or other link types, incremental
 * (streaming) reading, truncating frames to the snaplen on write (our frames are at
 * most 65,534 bytes, well under the default snaplen of 262,144).
 */
import { fail, ok, type Result } from "../stack/wire/result.js";

export const LINKTYPE_ETHERNET = 1;
export const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
export const PCAP_MAGIC_NANOS = 0xa1b23c4d;
export const pcapFileHeaderLength = 24;
export const pcapRecordHeaderLength = 16;

/** File header fields at their byte offsets. */
const H = { magic: 0, major: 4, minor: 6, thiszone: 8, sigfigs: 12, snaplen: 16, network: 20 } as const;
/** Record header fields at their byte offsets. */
const R = { tsSec: 0, tsFrac: 4, inclLen: 8, origLen: 12 } as const;

export interface PcapHeader {
  littleEndian: boolean;
  /** Timestamps in the file are nanoseconds (they are still returned as microseconds). */
  nanos: boolean;
  versionMajor: number;
  versionMinor: number;
  snaplen: number;
  /** The link type (low 16 bits of the header's network field); 1 is Ethernet. */
  linktype: number;
  /** Bytes of frame check sequence at the end of each frame (usually 0). */
  fcsLength: number;
}

export interface PcapPacket {
  tsSec: number;
  tsUsec: number;
  /** The captured bytes: a view into the file Buffer. */
  data: Buffer;
  /** The frame's length on the wire (without FCS); larger than data.length if the capture cut it. */
  origLen: number;
}

/** The 24-byte file header: little-endian, v2.4, microseconds, Ethernet. */
export function pcapFileHeader(snaplen = 262144): Buffer {
  const b = Buffer.alloc(pcapFileHeaderLength);
  b.writeUInt32LE(PCAP_MAGIC_MICROS, H.magic);
  b.writeUInt16LE(2, H.major);
  b.writeUInt16LE(4, H.minor);
  b.writeInt32LE(0, H.thiszone);
  b.writeUInt32LE(0, H.sigfigs);
  b.writeUInt32LE(snaplen >>> 0, H.snaplen);
  b.writeUInt32LE(LINKTYPE_ETHERNET, H.network);
  return b;
}

/**
 * One record: [its 16-byte header, the frame itself]. `tsMicros` is microseconds since
 * the Unix epoch (a non-negative integer; a fractional number is floored). Seconds are
 * stored modulo 2^32, as the format does.
 */
export function pcapRecord(frame: Buffer, tsMicros: bigint | number): Buffer[] {
  const us = typeof tsMicros === "bigint" ? tsMicros : BigInt(Math.floor(tsMicros));
  if (us < 0n) throw new RangeError(`pcap timestamp must not be negative: ${us}`);
  const h = Buffer.allocUnsafe(pcapRecordHeaderLength);
  h.writeUInt32LE(Number((us / 1_000_000n) & 0xffffffffn), R.tsSec);
  h.writeUInt32LE(Number(us % 1_000_000n), R.tsFrac);
  h.writeUInt32LE(frame.length, R.inclLen);
  h.writeUInt32LE(frame.length, R.origLen);
  return [h, frame];
}

/** Decodes and checks the 24-byte file header. */
export function readPcapHeader(b: Buffer): Result<PcapHeader> {
  if (b.length < pcapFileHeaderLength) return fail("pcap-truncated-header");
  let littleEndian: boolean;
  let nanos: boolean;
  const le = b.readUInt32LE(H.magic);
  const be = b.readUInt32BE(H.magic);
  if (le === PCAP_MAGIC_MICROS || le === PCAP_MAGIC_NANOS) {
    littleEndian = true;
    nanos = le === PCAP_MAGIC_NANOS;
  } else if (be === PCAP_MAGIC_MICROS || be === PCAP_MAGIC_NANOS) {
    littleEndian = false;
    nanos = be === PCAP_MAGIC_NANOS;
  } else {
    return fail("pcap-bad-magic");
  }
  const u16 = (at: number) => (littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const u32 = (at: number) => (littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const versionMajor = u16(H.major);
  if (versionMajor !== 2) return fail("pcap-bad-version");
  const network = u32(H.network);
  // Since libpcap 1.10 the top bits may say "frames end in an FCS of N 16-bit words".
  const fcsLength = network & 0x10000000 ? ((network >>> 29) & 0x7) * 2 : 0;
  return ok({
    littleEndian,
    nanos,
    versionMajor,
    versionMinor: u16(H.minor),
    snaplen: u32(H.snaplen),
    linktype: network & 0xffff,
    fcsLength,
  });
}

/** All packets of an Ethernet pcap file, as views into `b`. */
export function readPcap(b: Buffer): Result<PcapPacket[]> {
  const header = readPcapHeader(b);
  if (!header.ok) return header;
  const { littleEndian, nanos, linktype, fcsLength } = header.value;
  if (linktype !== LINKTYPE_ETHERNET) return fail("pcap-unsupported-linktype");
  const u32 = (at: number) => (littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const fracLimit = nanos ? 1_000_000_000 : 1_000_000;
  const packets: PcapPacket[] = [];
  let at = pcapFileHeaderLength;
  while (at < b.length) {
    if (b.length - at < pcapRecordHeaderLength) return fail("pcap-truncated-record");
    const tsSec = u32(at + R.tsSec);
    const frac = u32(at + R.tsFrac);
    const inclLen = u32(at + R.inclLen);
    const origLen = u32(at + R.origLen);
    at += pcapRecordHeaderLength;
    if (frac >= fracLimit) return fail("pcap-bad-timestamp");
    if (inclLen > origLen) return fail("pcap-bad-record-length");
    if (inclLen > b.length - at) return fail("pcap-truncated-record");
    // The FCS (if any) is the last bytes on the wire; a short capture may hold part of it.
    const frameLen = Math.max(0, origLen - fcsLength);
    packets.push({
      tsSec,
      tsUsec: nanos ? Math.floor(frac / 1000) : frac,
      data: b.subarray(at, at + Math.min(inclLen, frameLen)),
      origLen: frameLen,
    });
    at += inclLen;
  }
  return ok(packets);
}
