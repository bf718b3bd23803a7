/**
 * ICMPv6 messages (RFC 4443); the Neighbor Discovery bodies are in ndp.ts.
 *
 * Theory of operation: every message is a 4-byte header (type, code, checksum), four
 * "rest of header" bytes and a body; the checksum covers an IPv6 pseudo-header (next
 * header 58, `pseudoHeader6`) and the whole message. Decode checks the length and (per
 * policy) the checksum, then classifies: echo request/reply (id, seq, data), the four
 * errors (destination unreachable and time exceeded with their code, packet too big
 * with its MTU, parameter problem with its pointer; the body is the quoted packet), and
 * everything else generically (type, code, the rest-of-header word as a uint32, body),
 * which is how NDP messages leave here for `decodeNdp`.
 *
 * Not handled: RFC 4884 extensions (kept in the body), MLD, node information queries
 * (generic records, for the caller to ignore).
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

const F = { type: 0, code: 1, checksum: 2, rest: 4, id: 4, seq: 6, body: 8 } as const;

export const PROTO_ICMPV6 = 58;

export const Icmp6Type = {
  destUnreachable: 1,
  packetTooBig: 2,
  timeExceeded: 3,
  parameterProblem: 4,
  echoRequest: 128,
  echoReply: 129,
  routerSolicitation: 133,
  routerAdvertisement: 134,
  neighborSolicitation: 135,
  neighborAdvertisement: 136,
  redirect: 137,
} as const;

/** Codes of destination unreachable (RFC 4443 §3.1). */
export const Icmp6UnreachableCode = {
  noRoute: 0,
  adminProhibited: 1,
  beyondScope: 2,
  address: 3,
  port: 4,
  sourcePolicy: 5,
  rejectRoute: 6,
} as const;

/** Codes of time exceeded (RFC 4443 §3.3). */
export const Icmp6TimeExceededCode = { hopLimit: 0, reassembly: 1 } as const;

/** Codes of parameter problem (RFC 4443 §3.4). */
export const Icmp6ParameterProblemCode = { header: 0, nextHeader: 1, option: 2 } as const;

export const icmp6HeaderLength = 8;

interface Icmp6Common {
  code: number;
  /** everything after the 8-byte header (a view on decode) */
  payload: Buffer;
  /** the checksum as received; on encode used only when the policy does not fill */
  checksum?: number | undefined;
}

export interface Icmp6Echo extends Icmp6Common {
  kind: "echo-request" | "echo-reply";
  id: number;
  seq: number;
}

export interface Icmp6DestUnreachable extends Icmp6Common {
  kind: "dest-unreachable";
}

export interface Icmp6PacketTooBig extends Icmp6Common {
  kind: "packet-too-big";
  mtu: number;
}

export interface Icmp6TimeExceeded extends Icmp6Common {
  kind: "time-exceeded";
}

export interface Icmp6ParameterProblem extends Icmp6Common {
  kind: "parameter-problem";
  /** the offset in the quoted packet of the field at fault */
  pointer: number;
}

/** Any other type (NDP among them): the rest-of-header word raw. */
export interface Icmp6Other extends Icmp6Common {
  kind: "other";
  type: number;
  /** the four rest-of-header bytes as a uint32 */
  rest: number;
}

export type Icmp6Error = Icmp6DestUnreachable | Icmp6PacketTooBig | Icmp6TimeExceeded | Icmp6ParameterProblem;
export type Icmp6Message = Icmp6Echo | Icmp6Error | Icmp6Other;

const TRUNCATED = fail("icmpv6-truncated");
const BAD_CHECKSUM = fail("icmpv6-bad-checksum");

/** Decodes a message; `ip` gives the pseudo-header's addresses (`pseudoHeader6`). */
export function decodeIcmp6(
  b: Buffer,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): Result<Icmp6Message> {
  if (b.length < icmp6HeaderLength) return TRUNCATED;
  if (
    policy.verifyRx &&
    onesSum(b, 0, b.length, pseudoHeaderSum(ip.src, ip.dst, PROTO_ICMPV6, b.length)) !== 0xffff
  )
    return BAD_CHECKSUM;
  const type = b[F.type] as number;
  const code = b[F.code] as number;
  const payload = b.subarray(F.body);
  const checksum = u16(b, F.checksum);
  switch (type) {
    case Icmp6Type.echoRequest:
    case Icmp6Type.echoReply:
      return ok({
        kind: type === Icmp6Type.echoRequest ? "echo-request" : "echo-reply",
        code,
        id: u16(b, F.id),
        seq: u16(b, F.seq),
        payload,
        checksum,
      });
    case Icmp6Type.destUnreachable:
      return ok({ kind: "dest-unreachable", code, payload, checksum });
    case Icmp6Type.timeExceeded:
      return ok({ kind: "time-exceeded", code, payload, checksum });
    case Icmp6Type.packetTooBig:
      return ok({ kind: "packet-too-big", code, mtu: u32(b, F.rest), payload, checksum });
    case Icmp6Type.parameterProblem:
      return ok({ kind: "parameter-problem", code, pointer: u32(b, F.rest), payload, checksum });
    default:
      return ok({ kind: "other", type, code, rest: u32(b, F.rest), payload, checksum });
  }
}

/** The type number of a record. */
export function icmp6TypeOf(m: Icmp6Message): number {
  switch (m.kind) {
    case "echo-request":
      return Icmp6Type.echoRequest;
    case "echo-reply":
      return Icmp6Type.echoReply;
    case "dest-unreachable":
      return Icmp6Type.destUnreachable;
    case "packet-too-big":
      return Icmp6Type.packetTooBig;
    case "time-exceeded":
      return Icmp6Type.timeExceeded;
    case "parameter-problem":
      return Icmp6Type.parameterProblem;
    default:
      return m.type;
  }
}

/** Total bytes `encodeIcmp6` writes. */
export function icmp6EncodingLength(m: Icmp6Message): number {
  return icmp6HeaderLength + m.payload.length;
}

/**
 * Writes the message at out[at..] with the checksum for addresses `ip`; returns bytes
 * written. Throws RangeError when `out` is too small.
 */
export function encodeIcmp6(
  m: Icmp6Message,
  out: Buffer,
  at: number,
  ip: PseudoHeader,
  policy: ChecksumPolicy = checksumFull,
): number {
  const total = icmp6HeaderLength + m.payload.length;
  if (at < 0 || out.length - at < total) throw new RangeError("encodeIcmp6: output buffer too small");
  out[at + F.type] = icmp6TypeOf(m);
  out[at + F.code] = m.code;
  out[at + F.checksum] = 0;
  out[at + F.checksum + 1] = 0;
  switch (m.kind) {
    case "echo-request":
    case "echo-reply":
      out.writeUInt16BE(m.id, at + F.id);
      out.writeUInt16BE(m.seq, at + F.seq);
      break;
    case "packet-too-big":
      out.writeUInt32BE(m.mtu >>> 0, at + F.rest);
      break;
    case "parameter-problem":
      out.writeUInt32BE(m.pointer >>> 0, at + F.rest);
      break;
    case "other":
      out.writeUInt32BE(m.rest >>> 0, at + F.rest);
      break;
    default:
      out.writeUInt32BE(0, at + F.rest);
  }
  const p = m.payload;
  if (p.buffer !== out.buffer || p.byteOffset !== out.byteOffset + at + F.body) p.copy(out, at + F.body);
  const c = policy.fillTx
    ? ~onesSum(out, at, at + total, pseudoHeaderSum(ip.src, ip.dst, PROTO_ICMPV6, total)) & 0xffff
    : (m.checksum ?? 0);
  out.writeUInt16BE(c, at + F.checksum);
  return total;
}
