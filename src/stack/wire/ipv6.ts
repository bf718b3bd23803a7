/**
 * IPv6 headers (RFC 8200) and the extension headers a guest may put before the
 * upper-layer header.
 *
 * Theory of operation: decode validates once — version 6, the 40-byte header within the
 * buffer, the payload length within the bytes present (the payload ends there, which
 * drops Ethernet padding) — then walks the extension header chain: hop-by-hop options
 * (first only), destination options and routing headers are skipped by their length;
 * the options inside hop-by-hop and destination options headers are read just enough
 * to honour RFC 8200 §4.2 (an unknown option whose type says "discard" fails the
 * decode, as does a jumbo payload option); a routing header with segments left is
 * refused (the stack forwards nothing by source route; RFC 5095 deprecates type 0
 * anyway). A fragment header ends the walk unless the fragment is atomic (offset 0, no
 * more fragments, RFC 6946): the record then carries the fragment's id, offset and
 * flag, `protocol` is the fragment header's next header and `payload` the fragment's
 * data; after reassembly `walkExtensions` continues from there. The walk stops at an
 * upper-layer protocol, at "no next header" (59), and fails after `maxExtensionHeaders`
 * headers (a chain of tiny headers is a CPU attack, not a packet).
 *
 * Encode writes the 40-byte header, an optional fragment header, and the payload.
 * Addresses in decoded records are views into the input.
 *
 * Not handled: jumbograms (RFC 2675), AH/ESP (reported as the protocol, for the caller
 * to refuse), mobility headers, option semantics beyond the action bits.
 */
import type { Ipv6Address } from "./ipv6-addr.js";
import { fail, ok, type Result } from "./result.js";

/** Big-endian reads without Buffer's argument checks; callers have checked the length. */
const u16 = (b: Buffer, i: number): number => ((b[i] as number) << 8) | (b[i + 1] as number);

const F = { verTcFl: 0, payloadLength: 4, nextHeader: 6, hopLimit: 7, src: 8, dst: 24 } as const;

/** Next-header values the codec knows. */
export const Ipv6Next = {
  hopByHop: 0,
  tcp: 6,
  udp: 17,
  routing: 43,
  fragment: 44,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  none: 59,
  destinationOptions: 60,
} as const;

export const ipv6HeaderLength = 40;
export const ipv6FragmentHeaderLength = 8;
/** The largest payload the 16-bit payload length allows. */
export const ipv6MaxPayload = 65535;
/** The IPv6 minimum link MTU (RFC 8200 §5). */
export const ipv6MinMtu = 1280;
/** Extension headers walked before a packet is refused. */
export const maxExtensionHeaders = 8;

export interface Ipv6Fragment {
  id: number;
  /** in bytes, a multiple of 8 */
  offset: number;
  more: boolean;
}

export interface Ipv6Packet {
  /** the traffic class byte: DSCP and ECN */
  trafficClass: number;
  /** 20 bits */
  flowLabel: number;
  hopLimit: number;
  src: Ipv6Address;
  dst: Ipv6Address;
  /**
   * the upper-layer protocol after the extension headers (Ipv6Next.none: none); for a
   * fragment, the next header of its fragment header
   */
  protocol: number;
  /** present for a fragment (never for an atomic one on decode) */
  fragment?: Ipv6Fragment | undefined;
  /** the upper-layer bytes, or a fragment's data (a view on decode) */
  payload: Buffer;
  /** decode only: bytes from the IPv6 header's start to `payload` (40 plus the extension headers) */
  headerLength?: number | undefined;
}

const TRUNCATED = fail("ipv6-truncated");
const BAD_VERSION = fail("ipv6-bad-version");
const BAD_LENGTH = fail("ipv6-bad-payload-length");
const JUMBO = fail("ipv6-jumbogram");
const BAD_HBH = fail("ipv6-hop-by-hop-not-first");
const BAD_OPTION = fail("ipv6-unknown-option");
const ROUTING = fail("ipv6-routing-header");
const TOO_MANY = fail("ipv6-too-many-extension-headers");
const BAD_EXT = fail("ipv6-bad-extension-header");

/** What `walkExtensions` found: the upper-layer protocol and where its bytes start. */
export interface Ipv6Chain {
  protocol: number;
  /** offset of the upper-layer header (or of a fragment's data) in the buffer walked */
  at: number;
  fragment?: Ipv6Fragment;
}

/** Checks the TLV options of a hop-by-hop or destination options header at b[start, end). */
function checkOptions(b: Buffer, start: number, end: number): Result<true> | undefined {
  let i = start;
  while (i < end) {
    const type = b[i] as number;
    if (type === 0) {
      i++; // Pad1
      continue;
    }
    if (i + 2 > end) return BAD_EXT;
    const len = b[i + 1] as number;
    if (i + 2 + len > end) return BAD_EXT;
    if (type === 0xc2) return JUMBO;
    // the two high bits of an unknown option say what to do: 00 skip, else discard
    if (type !== 1 && type !== 5 && type >>> 6 !== 0) return BAD_OPTION;
    i += 2 + len;
  }
  return undefined;
}

/**
 * Walks the extension headers starting with next header `next` at b[at..]: skips
 * hop-by-hop (only when `first`), destination options and routing headers with no
 * segments left; stops at a fragment header that is not atomic, an upper-layer
 * protocol or "no next header".
 */
export function walkExtensions(b: Buffer, next: number, at: number, first = false): Result<Ipv6Chain> {
  let fragment: Ipv6Fragment | undefined;
  for (let n = 0; ; n++) {
    if (
      next !== Ipv6Next.hopByHop &&
      next !== Ipv6Next.destinationOptions &&
      next !== Ipv6Next.routing &&
      next !== Ipv6Next.fragment
    ) {
      return ok(fragment === undefined ? { protocol: next, at } : { protocol: next, at, fragment });
    }
    if (n >= maxExtensionHeaders) return TOO_MANY;
    if (b.length - at < 8) return TRUNCATED;
    const following = b[at] as number;
    if (next === Ipv6Next.fragment) {
      const offFlags = u16(b, at + 2);
      const f: Ipv6Fragment = {
        id: b.readUInt32BE(at + 4),
        offset: offFlags & 0xfff8,
        more: (offFlags & 1) === 1,
      };
      at += ipv6FragmentHeaderLength;
      if (f.offset !== 0 || f.more) return ok({ protocol: following, at, fragment: f });
      fragment = f; // atomic: the rest of the chain follows
      next = following;
      continue;
    }
    const len = ((b[at + 1] as number) + 1) * 8;
    if (b.length - at < len) return TRUNCATED;
    if (next === Ipv6Next.hopByHop) {
      if (!(first && n === 0)) return BAD_HBH;
      const bad = checkOptions(b, at + 2, at + len);
      if (bad) return bad as Result<never>;
    } else if (next === Ipv6Next.destinationOptions) {
      const bad = checkOptions(b, at + 2, at + len);
      if (bad) return bad as Result<never>;
    } else if ((b[at + 3] as number) !== 0) {
      return ROUTING; // segments left: the packet asks to be forwarded by source route
    }
    at += len;
    next = following;
  }
}

/** Decodes a packet; the payload is trimmed to the payload length. */
export function decodeIpv6(b: Buffer): Result<Ipv6Packet> {
  if (b.length < ipv6HeaderLength) return TRUNCATED;
  const first = b[F.verTcFl] as number;
  if (first >>> 4 !== 6) return BAD_VERSION;
  const payloadLength = u16(b, F.payloadLength);
  const end = ipv6HeaderLength + payloadLength;
  if (end > b.length) return payloadLength === 0 ? BAD_LENGTH : TRUNCATED;
  const packet = b.length === end ? b : b.subarray(0, end);
  const chain = walkExtensions(packet, b[F.nextHeader] as number, ipv6HeaderLength, true);
  if (!chain.ok) return chain;
  const c = chain.value;
  return ok({
    trafficClass: ((first & 0x0f) << 4) | ((b[1] as number) >>> 4),
    flowLabel: (((b[1] as number) & 0x0f) << 16) | u16(b, 2),
    hopLimit: b[F.hopLimit] as number,
    src: b.subarray(F.src, F.src + 16),
    dst: b.subarray(F.dst, F.dst + 16),
    protocol: c.protocol,
    fragment:
      c.fragment !== undefined && (c.fragment.offset !== 0 || c.fragment.more) ? c.fragment : undefined,
    payload: packet.subarray(c.at),
    headerLength: c.at,
  });
}

/** Header bytes `encodeIpv6` writes: 40, plus 8 for a fragment header. */
export function ipv6HeaderLengthOf(p: Pick<Ipv6Packet, "fragment">): number {
  return ipv6HeaderLength + (p.fragment === undefined ? 0 : ipv6FragmentHeaderLength);
}

/** Total bytes `encodeIpv6` writes. */
export function ipv6EncodingLength(p: Ipv6Packet): number {
  return ipv6HeaderLengthOf(p) + p.payload.length;
}

/**
 * Writes the header (and a fragment header when `p.fragment` is set), then the payload
 * unless it already sits there; returns bytes written. Throws RangeError for a payload
 * over 65535 bytes, a fragment offset not a multiple of 8, or a too small `out`.
 */
export function encodeIpv6(p: Ipv6Packet, out: Buffer, at = 0): number {
  const hl = ipv6HeaderLengthOf(p);
  const payloadLength = hl - ipv6HeaderLength + p.payload.length;
  if (payloadLength > ipv6MaxPayload) throw new RangeError(`encodeIpv6: payload of ${payloadLength} bytes`);
  if (at < 0 || out.length - at < ipv6HeaderLength + payloadLength) {
    throw new RangeError("encodeIpv6: output buffer too small");
  }
  const f = p.fragment;
  if (f !== undefined && (f.offset % 8 !== 0 || f.offset < 0 || f.offset > 0xfff8)) {
    throw new RangeError(`encodeIpv6: bad fragment offset ${f.offset}`);
  }
  out[at] = 0x60 | ((p.trafficClass >>> 4) & 0x0f);
  out[at + 1] = ((p.trafficClass & 0x0f) << 4) | ((p.flowLabel >>> 16) & 0x0f);
  out.writeUInt16BE(p.flowLabel & 0xffff, at + 2);
  out.writeUInt16BE(payloadLength, at + F.payloadLength);
  out[at + F.nextHeader] = f === undefined ? p.protocol : Ipv6Next.fragment;
  out[at + F.hopLimit] = p.hopLimit;
  if (p.src.buffer !== out.buffer || p.src.byteOffset !== out.byteOffset + at + F.src)
    out.set(p.src.subarray(0, 16), at + F.src);
  if (p.dst.buffer !== out.buffer || p.dst.byteOffset !== out.byteOffset + at + F.dst)
    out.set(p.dst.subarray(0, 16), at + F.dst);
  if (f !== undefined) {
    const h = at + ipv6HeaderLength;
    out[h] = p.protocol;
    out[h + 1] = 0;
    out.writeUInt16BE(f.offset | (f.more ? 1 : 0), h + 2);
    out.writeUInt32BE(f.id >>> 0, h + 4);
  }
  const pl = p.payload;
  if (pl.buffer !== out.buffer || pl.byteOffset !== out.byteOffset + at + hl) pl.copy(out, at + hl);
  return hl + p.payload.length;
}

/**
 * What an ICMPv6 error quotes of a packet (RFC 4443 §2.4 (c)): as much of it as fits
 * an error of at most 1280 bytes (40 IPv6 + 8 ICMPv6 header), with the header rebuilt
 * from `src`, `dst` and `protocol` (extension headers are not quoted; receivers match
 * on addresses, protocol and ports) and the payload length of what was sent.
 */
export function encodeIpv6Quote(
  src: Ipv6Address,
  dst: Ipv6Address,
  protocol: number,
  payload: Buffer,
  hopLimit = 64,
): Buffer {
  const room = ipv6MinMtu - ipv6HeaderLength - 8 - ipv6HeaderLength;
  const head = payload.length > room ? payload.subarray(0, room) : payload;
  const q = Buffer.allocUnsafe(ipv6HeaderLength + head.length);
  encodeIpv6({ trafficClass: 0, flowLabel: 0, hopLimit, src, dst, protocol, payload: head }, q);
  q.writeUInt16BE(Math.min(0xffff, payload.length), F.payloadLength);
  return q;
}
