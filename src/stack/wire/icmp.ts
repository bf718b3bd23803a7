/**
 * ICMPv4 messages (RFC 792, RFC 1191 for the next-hop MTU).
 *
 * Theory of operation: every message is an 8-byte header (type, code, checksum, four
 * "rest of header" bytes) and a payload; the checksum covers the whole message and has
 * no pseudo-header. Decode checks the length and (per policy) the checksum, then
 * classifies: echo request/reply (id, seq, data), destination unreachable (code, the
 * next-hop MTU of "fragmentation needed", the quoted original datagram), time exceeded
 * (code, quote), and everything else generically (type, code, the rest-of-header word,
 * payload), so callers can count or forward what they do not understand. The quote of
 * an error reads with `decodeIpv4Quote`.
 *
 * Not handled: RFC 4884 extension structures (kept inside the payload), the unused
 * bytes of error messages (read as nothing, written as zero), timestamp/address-mask
 * messages beyond the generic record.
 */
import { type ChecksumPolicy, checksumFull, onesSum } from "./checksum.js";
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);
const u32 = (b: Buffer, i: number): number => u16(b, i) * 0x10000 + u16(b, i + 2);

const F = { type: 0, code: 1, checksum: 2, rest: 4, id: 4, seq: 6, mtu: 6, data: 8 } as const;

export const IcmpType = {
  echoReply: 0,
  destUnreachable: 3,
  echoRequest: 8,
  timeExceeded: 11,
} as const;

/** Codes of destination unreachable messages that the stack sends or reads. */
export const IcmpUnreachableCode = {
  net: 0,
  host: 1,
  protocol: 2,
  port: 3,
  fragmentationNeeded: 4,
  netProhibited: 9,
  hostProhibited: 10,
  adminProhibited: 13,
} as const;

/** Codes of time exceeded messages. */
export const IcmpTimeExceededCode = { ttl: 0, reassembly: 1 } as const;

export const icmpHeaderLength = 8;

interface IcmpCommon {
  code: number;
  /** everything after the 8-byte header (a view) */
  payload: Buffer;
  /** the checksum as received; on encode used only when the policy does not fill */
  checksum?: number | undefined;
}

export interface IcmpEcho extends IcmpCommon {
  kind: "echo-request" | "echo-reply";
  id: number;
  seq: number;
}

export interface IcmpDestUnreachable extends IcmpCommon {
  kind: "dest-unreachable";
  /** the next-hop MTU for code 4 (0 from routers that predate RFC 1191) */
  nextHopMtu: number;
}

export interface IcmpTimeExceeded extends IcmpCommon {
  kind: "time-exceeded";
}

export interface IcmpOther extends IcmpCommon {
  kind: "other";
  type: number;
  /** the four rest-of-header bytes as a uint32 */
  rest: number;
}

export type IcmpMessage = IcmpEcho | IcmpDestUnreachable | IcmpTimeExceeded | IcmpOther;

/** The wire type of a message. */
export function icmpTypeOf(m: IcmpMessage): number {
  switch (m.kind) {
    case "echo-request":
      return IcmpType.echoRequest;
    case "echo-reply":
      return IcmpType.echoReply;
    case "dest-unreachable":
      return IcmpType.destUnreachable;
    case "time-exceeded":
      return IcmpType.timeExceeded;
    case "other":
      return m.type;
  }
}

const TRUNCATED = fail("icmp-truncated");
const BAD_CHECKSUM = fail("icmp-bad-checksum");

export function decodeIcmp(b: Buffer, policy: ChecksumPolicy = checksumFull): Result<IcmpMessage> {
  if (b.length < icmpHeaderLength) return TRUNCATED;
  if (policy.verifyRx && onesSum(b) !== 0xffff) return BAD_CHECKSUM;
  const type = b[F.type] as number;
  const code = b[F.code] as number;
  const checksum = u16(b, F.checksum);
  const payload = b.subarray(F.data);
  switch (type) {
    case IcmpType.echoRequest:
    case IcmpType.echoReply:
      return ok({
        kind: type === IcmpType.echoRequest ? "echo-request" : "echo-reply",
        code,
        id: u16(b, F.id),
        seq: u16(b, F.seq),
        payload,
        checksum,
      });
    case IcmpType.destUnreachable:
      return ok({
        kind: "dest-unreachable",
        code,
        nextHopMtu: u16(b, F.mtu),
        payload,
        checksum,
      });
    case IcmpType.timeExceeded:
      return ok({ kind: "time-exceeded", code, payload, checksum });
    default:
      return ok({ kind: "other", type, code, rest: u32(b, F.rest), payload, checksum });
  }
}

/** Total bytes `encodeIcmp` writes. */
export function icmpEncodingLength(m: IcmpMessage): number {
  return icmpHeaderLength + m.payload.length;
}

/**
 * Writes the message at out[at..]; returns bytes written. Throws RangeError when `out`
 * is too small.
 */
export function encodeIcmp(
  m: IcmpMessage,
  out: Buffer,
  at = 0,
  policy: ChecksumPolicy = checksumFull,
): number {
  const total = icmpHeaderLength + m.payload.length;
  if (at < 0 || out.length - at < total) throw new RangeError("encodeIcmp: output buffer too small");
  out[at + F.type] = icmpTypeOf(m);
  out[at + F.code] = m.code;
  switch (m.kind) {
    case "echo-request":
    case "echo-reply":
      out.writeUInt16BE(m.id, at + F.id);
      out.writeUInt16BE(m.seq, at + F.seq);
      break;
    case "dest-unreachable":
      out.writeUInt16BE(0, at + F.rest);
      out.writeUInt16BE(m.nextHopMtu, at + F.mtu);
      break;
    case "time-exceeded":
      out.writeUInt32BE(0, at + F.rest);
      break;
    case "other":
      out.writeUInt32BE(m.rest >>> 0, at + F.rest);
      break;
  }
  const p = m.payload;
  if (p.buffer !== out.buffer || p.byteOffset !== out.byteOffset + at + F.data) p.copy(out, at + F.data);
  if (policy.fillTx) {
    out[at + F.checksum] = 0;
    out[at + F.checksum + 1] = 0;
    out.writeUInt16BE(~onesSum(out, at, at + total) & 0xffff, at + F.checksum);
  } else {
    out.writeUInt16BE(m.checksum ?? 0, at + F.checksum);
  }
  return total;
}
