/**
 * TCP segments (RFC 9293) with the options the stack negotiates: MSS, window scale
 * (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), timestamps (RFC 7323).
 *
 * Theory of operation: decode takes the IP payload and the IP addresses (for the
 * pseudo-header), checks the data offset (5..15 words, within the bytes present),
 * verifies the checksum per policy, and parses the options into flat record fields;
 * option kinds it does not know are kept raw (views) in `unknownOptions`. Parsing stops
 * at EOL; NOPs are skipped. A malformed option — a length byte below 2 or missing, an
 * option running past the header, a known option with the wrong length, a SACK option
 * with other than 1..4 blocks — fails the decode with a reason; it never throws.
 * Values are kept as received (a window scale over 14, an MSS of 0): clamping is the
 * TCP endpoint's business.
 *
 * Encode lays options out the way Linux does, so segments look familiar in captures and
 * a Linux SYN re-encodes byte for byte: MSS; SACK-permitted+timestamps (or NOP NOP
 * timestamps, or NOP NOP SACK-permitted); NOP window scale; NOP NOP SACK blocks; then
 * unknown options raw, and zero (EOL) padding to a 4-byte multiple.
 *
 * Not handled: TCP-MD5, TCP-AO, MPTCP and Fast Open (unknown options to this codec);
 * the NS bit and reserved bits (ignored, written as 0).
 */
import {
  type ChecksumPolicy,
  checksumFull,
  onesSum,
  type PseudoHeader,
  pseudoHeaderSum,
} from "./checksum.js";
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);
const u32 = (b: Buffer, i: number): number => u16(b, i) * 0x10000 + u16(b, i + 2);

const F = {
  srcPort: 0,
  dstPort: 2,
  seq: 4,
  ack: 8,
  dataOffset: 12,
  flags: 13,
  window: 14,
  checksum: 16,
  urgent: 18,
  options: 20,
} as const;

const PROTO_TCP = 6;
const NO_PAYLOAD = Buffer.alloc(0);

export const TcpFlag = {
  fin: 0x01,
  syn: 0x02,
  rst: 0x04,
  psh: 0x08,
  ack: 0x10,
  urg: 0x20,
  ece: 0x40,
  cwr: 0x80,
} as const;

export const TcpOptionKind = {
  eol: 0,
  nop: 1,
  mss: 2,
  windowScale: 3,
  sackPermitted: 4,
  sack: 5,
  timestamp: 8,
} as const;

/** Bytes of a header without options. */
export const tcpHeaderLength = 20;
/** where the checksum field sits in a TCP header (a checksum offload's csumOffset) */
export const tcpChecksumOffset = F.checksum;
/** At most 40 bytes of options (data offset 15). */
export const tcpMaxOptionsLength = 40;
/** SACK blocks one option can carry (3 alongside timestamps, to fit in 40 bytes). */
export const tcpMaxSackBlocks = 4;

export interface SackBlock {
  /** first sequence number of the block */
  left: number;
  /** sequence number just past the block */
  right: number;
}

export interface TcpRawOption {
  /** any kind but EOL (0) and NOP (1), which carry no length */
  kind: number;
  /** the option's bytes after kind and length (a view on decode) */
  data: Buffer;
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** TcpFlag bits */
  flags: number;
  window: number;
  urgent: number;
  mss?: number | undefined;
  /** the shift count as received (RFC 7323 caps it at 14; the endpoint clamps) */
  windowScale?: number | undefined;
  sackPermitted?: boolean | undefined;
  sack?: SackBlock[] | undefined;
  /** timestamp value; the timestamps option is present iff this is */
  tsVal?: number | undefined;
  /** timestamp echo reply (0 when absent but tsVal is set) */
  tsEcr?: number | undefined;
  unknownOptions?: TcpRawOption[] | undefined;
  payload: Buffer;
  /** the checksum as received; on encode used only when the policy does not fill */
  checksum?: number | undefined;
}

const FLAG_LETTERS = "FSRPAUEC";

/** "SA" for SYN+ACK: one letter per flag in bit order F S R P A U E C; "" for none. */
export function tcpFlagsToString(flags: number): string {
  let s = "";
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) s += FLAG_LETTERS[i];
  return s;
}

/** The inverse of `tcpFlagsToString` (any order, case-insensitive); undefined on a stray letter. */
export function tcpFlagsFromString(s: string): number | undefined {
  let flags = 0;
  for (const ch of s.toUpperCase()) {
    const i = FLAG_LETTERS.indexOf(ch);
    if (i < 0) return undefined;
    flags |= 1 << i;
  }
  return flags;
}

const TRUNCATED = fail("tcp-truncated");
const BAD_OFFSET = fail("tcp-bad-data-offset");
const BAD_CHECKSUM = fail("tcp-bad-checksum");
const BAD_OPTION_LENGTH = fail("tcp-bad-option-length");
const OPTION_OVERRUN = fail("tcp-option-overrun");

/** Decodes a segment (the whole IP payload: the pseudo-header length is its length). */
export function decodeTcp(
  b: Buffer,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): Result<TcpSegment> {
  if (b.length < tcpHeaderLength) return TRUNCATED;
  const hl = ((b[F.dataOffset] as number) >>> 4) * 4;
  if (hl < tcpHeaderLength || hl > b.length) return BAD_OFFSET;
  if (
    policy.verifyRx &&
    onesSum(b, 0, b.length, pseudoHeaderSum(ip.src, ip.dst, PROTO_TCP, b.length)) !== 0xffff
  ) {
    return BAD_CHECKSUM;
  }
  const seg: TcpSegment = {
    srcPort: u16(b, F.srcPort),
    dstPort: u16(b, F.dstPort),
    seq: u32(b, F.seq),
    ack: u32(b, F.ack),
    flags: b[F.flags] as number,
    window: u16(b, F.window),
    urgent: u16(b, F.urgent),
    mss: undefined,
    windowScale: undefined,
    sackPermitted: false,
    sack: undefined,
    tsVal: undefined,
    tsEcr: undefined,
    unknownOptions: undefined,
    // most segments a guest sends are bare ACKs: they share one empty payload
    payload: hl === b.length ? NO_PAYLOAD : b.subarray(hl),
    checksum: u16(b, F.checksum),
  };
  const bad = hl > tcpHeaderLength ? parseOptions(b, hl, seg) : undefined;
  return bad ?? ok(seg);
}

/** Fills the option fields of `seg` from b[20, hl); returns a failure or undefined. */
function parseOptions(b: Buffer, hl: number, seg: TcpSegment): Result<never> | undefined {
  let i = F.options;
  while (i < hl) {
    const kind = b[i] as number;
    if (kind === TcpOptionKind.eol) break;
    if (kind === TcpOptionKind.nop) {
      i++;
      continue;
    }
    if (i + 1 >= hl) return OPTION_OVERRUN;
    const len = b[i + 1] as number;
    if (len < 2) return BAD_OPTION_LENGTH;
    if (i + len > hl) return OPTION_OVERRUN;
    switch (kind) {
      case TcpOptionKind.mss:
        if (len !== 4) return BAD_OPTION_LENGTH;
        seg.mss = u16(b, i + 2);
        break;
      case TcpOptionKind.windowScale:
        if (len !== 3) return BAD_OPTION_LENGTH;
        seg.windowScale = b[i + 2] as number;
        break;
      case TcpOptionKind.sackPermitted:
        if (len !== 2) return BAD_OPTION_LENGTH;
        seg.sackPermitted = true;
        break;
      case TcpOptionKind.sack: {
        const n = (len - 2) / 8;
        if (!Number.isInteger(n) || n < 1 || n > tcpMaxSackBlocks) return BAD_OPTION_LENGTH;
        const blocks: SackBlock[] = [];
        for (let k = 0; k < n; k++) {
          const o = i + 2 + k * 8;
          blocks.push({ left: u32(b, o), right: u32(b, o + 4) });
        }
        seg.sack = blocks;
        break;
      }
      case TcpOptionKind.timestamp:
        if (len !== 10) return BAD_OPTION_LENGTH;
        seg.tsVal = u32(b, i + 2);
        seg.tsEcr = u32(b, i + 6);
        break;
      default:
        if (!seg.unknownOptions) seg.unknownOptions = [];
        seg.unknownOptions.push({ kind, data: b.subarray(i + 2, i + len) });
    }
    i += len;
  }
  return undefined;
}

/** Option bytes `encodeTcp` writes, padding included (a multiple of 4). */
export function tcpOptionsLength(s: TcpSegment): number {
  let n = 0;
  if (s.mss !== undefined) n += 4;
  if (s.tsVal !== undefined) n += 12;
  else if (s.sackPermitted) n += 4;
  if (s.windowScale !== undefined) n += 4;
  if (s.sack && s.sack.length > 0) n += 4 + 8 * s.sack.length;
  if (s.unknownOptions) for (const o of s.unknownOptions) n += 2 + o.data.length;
  return (n + 3) & ~3;
}

/** Header bytes `encodeTcp` writes. */
export function tcpHeaderLengthOf(s: TcpSegment): number {
  return tcpHeaderLength + tcpOptionsLength(s);
}

/** Total bytes `encodeTcp` writes. */
export function tcpEncodingLength(s: TcpSegment): number {
  return tcpHeaderLengthOf(s) + s.payload.length;
}

function writeOptions(s: TcpSegment, out: Buffer, start: number, end: number): void {
  let i = start;
  if (s.mss !== undefined) {
    out[i++] = TcpOptionKind.mss;
    out[i++] = 4;
    out.writeUInt16BE(s.mss, i);
    i += 2;
  }
  if (s.tsVal !== undefined) {
    if (s.sackPermitted) {
      out[i++] = TcpOptionKind.sackPermitted;
      out[i++] = 2;
    } else {
      out[i++] = TcpOptionKind.nop;
      out[i++] = TcpOptionKind.nop;
    }
    out[i++] = TcpOptionKind.timestamp;
    out[i++] = 10;
    out.writeUInt32BE(s.tsVal >>> 0, i);
    out.writeUInt32BE((s.tsEcr ?? 0) >>> 0, i + 4);
    i += 8;
  } else if (s.sackPermitted) {
    out[i++] = TcpOptionKind.nop;
    out[i++] = TcpOptionKind.nop;
    out[i++] = TcpOptionKind.sackPermitted;
    out[i++] = 2;
  }
  if (s.windowScale !== undefined) {
    out[i++] = TcpOptionKind.nop;
    out[i++] = TcpOptionKind.windowScale;
    out[i++] = 3;
    out[i++] = s.windowScale;
  }
  if (s.sack && s.sack.length > 0) {
    out[i++] = TcpOptionKind.nop;
    out[i++] = TcpOptionKind.nop;
    out[i++] = TcpOptionKind.sack;
    out[i++] = 2 + 8 * s.sack.length;
    for (const blk of s.sack) {
      out.writeUInt32BE(blk.left >>> 0, i);
      out.writeUInt32BE(blk.right >>> 0, i + 4);
      i += 8;
    }
  }
  if (s.unknownOptions) {
    for (const o of s.unknownOptions) {
      out[i++] = o.kind;
      out[i++] = 2 + o.data.length;
      o.data.copy(out, i);
      i += o.data.length;
    }
  }
  out.fill(TcpOptionKind.eol, i, end);
}

/**
 * Writes the segment at out[at..] with the checksum for addresses `ip`; returns bytes
 * written. Throws RangeError when the options do not fit in 40 bytes (e.g. timestamps
 * with 4 SACK blocks), for more than 4 SACK blocks, or a too small `out`.
 */
export function encodeTcp(
  s: TcpSegment,
  out: Buffer,
  at: number,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): number {
  if (s.sack && s.sack.length > tcpMaxSackBlocks) throw new RangeError("encodeTcp: more than 4 SACK blocks");
  const ol = tcpOptionsLength(s);
  if (ol > tcpMaxOptionsLength) throw new RangeError(`encodeTcp: ${ol} bytes of options`);
  const hl = tcpHeaderLength + ol;
  const total = hl + s.payload.length;
  if (at < 0 || out.length - at < total) throw new RangeError("encodeTcp: output buffer too small");
  out.writeUInt16BE(s.srcPort, at + F.srcPort);
  out.writeUInt16BE(s.dstPort, at + F.dstPort);
  out.writeUInt32BE(s.seq >>> 0, at + F.seq);
  out.writeUInt32BE(s.ack >>> 0, at + F.ack);
  out[at + F.dataOffset] = (hl >>> 2) << 4;
  out[at + F.flags] = s.flags;
  out.writeUInt16BE(s.window, at + F.window);
  out.writeUInt16BE(s.urgent, at + F.urgent);
  if (ol > 0) writeOptions(s, out, at + F.options, at + hl);
  const p = s.payload;
  if (p.buffer !== out.buffer || p.byteOffset !== out.byteOffset + at + hl) p.copy(out, at + hl);
  if (policy.fillTx) {
    out[at + F.checksum] = 0;
    out[at + F.checksum + 1] = 0;
    const c = ~onesSum(out, at, at + total, pseudoHeaderSum(ip.src, ip.dst, PROTO_TCP, total)) & 0xffff;
    out.writeUInt16BE(c, at + F.checksum);
  } else {
    out.writeUInt16BE(s.checksum ?? 0, at + F.checksum);
  }
  return total;
}
