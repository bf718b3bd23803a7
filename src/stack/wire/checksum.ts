/**
 * The Internet checksum (RFC 1071), shared by IPv4, ICMP, UDP and TCP.
 *
 * Theory of operation: a checksum is the ones'-complement of the ones'-complement sum
 * of the data taken as big-endian 16-bit words (an odd last byte is padded with a zero
 * byte). The sum is associative and commutative and, by RFC 1071's byte-order
 * independence, summing little-endian words and swapping the bytes of the folded result
 * gives the same answer. Large buffers use that: they are summed as native 32-bit words
 * through a Uint32Array over the aligned middle (several GB/s instead of ~1 GB/s for a
 * byte loop); headers and short buffers use the plain byte loop (a typed-array view
 * would cost more than it saves).
 *
 * Vocabulary: a *sum* is the folded, uncomplemented 16-bit ones'-complement sum
 * (0..0xffff); a *checksum* is its complement, the value that goes on the wire. A
 * received message verifies when the sum over it (checksum field included, plus the
 * pseudo-header where there is one) is 0xffff.
 *
 * Not here: checksum offload bookkeeping (virtio-net's NEEDS_CSUM/partial checksums);
 * ports may build that from `pseudoHeaderSum`. Codecs take a `ChecksumPolicy` instead.
 * Offloads cover TCP and UDP only: the IPv4 header and ICMP checksums are always the
 * stack's, so those codecs should get `checksumFull` even behind an offloading TAP.
 */

/** Whether codecs verify checksums of received messages and fill them in on send. */
export interface ChecksumPolicy {
  /** verify checksums on decode (off when a TAP with offloads has verified them) */
  readonly verifyRx: boolean;
  /** compute checksums on encode (off when the transport fills them in) */
  readonly fillTx: boolean;
}

/** Verify everything received, fill everything sent: the default everywhere. */
export const checksumFull: ChecksumPolicy = Object.freeze({ verifyRx: true, fillTx: true });
/** Trust and leave checksums to the transport (TAP with offloads). */
export const checksumOffloaded: ChecksumPolicy = Object.freeze({ verifyRx: false, fillTx: false });

/** Buffers shorter than this are summed byte by byte. */
const WIDE_MIN = 128;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Folds a non-negative sum of any size (below 2^53) to 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** Swaps the two bytes of a 16-bit value (a sum of data that starts at an odd offset). */
export const swap16 = (x: number): number => ((x & 0xff) << 8) | (x >>> 8);

/** Ones'-complement addition of two sums. */
export function addSums(a: number, b: number): number {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
}

/**
 * Combines the sum of a piece with the sum of the piece that follows it; `firstLength`
 * is the first piece's byte length (an odd length shifts the second piece by a byte).
 */
export function combineSums(first: number, second: number, firstLength: number): number {
  return addSums(first, firstLength & 1 ? swap16(second) : second);
}

/**
 * A Uint32Array over all of an ArrayBuffer, kept for the last buffer asked about: the
 * stack sums many frames carved from one slab (and Node's 8 KiB pool) in a row, and a
 * new view per sum cost more than the summing of a 1500-byte frame.
 */
let viewedBuffer: ArrayBufferLike | undefined;
let viewedWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
function wordsOf(buffer: ArrayBufferLike): Uint32Array {
  if (buffer !== viewedBuffer) {
    viewedWords = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    viewedBuffer = buffer;
  }
  return viewedWords;
}

/** Big-endian word sum of b[start, end), unfolded; the pieces start at even offsets. */
function narrowSum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  const lim = end - 3;
  for (; i < lim; i += 4)
    sum +=
      (((b[i] as number) << 8) | (b[i + 1] as number)) + (((b[i + 2] as number) << 8) | (b[i + 3] as number));
  for (; i + 1 < end; i += 2) sum += ((b[i] as number) << 8) | (b[i + 1] as number);
  if (i < end) sum += (b[i] as number) << 8;
  return sum;
}

/**
 * The ones'-complement sum of b[start, end), folded to 16 bits, plus `initial` (another
 * sum, e.g. a pseudo-header's). Out-of-range bounds are clamped to the buffer.
 */
export function onesSum(b: Uint8Array, start = 0, end = b.length, initial = 0): number {
  if (start < 0) start = 0;
  if (end > b.length) end = b.length;
  if (end - start < WIDE_MIN) return foldSum(narrowSum(b, start, end) + initial);
  const abs = b.byteOffset + start;
  const pre = (4 - (abs & 3)) & 3; // bytes before the 4-byte-aligned middle
  const n = (end - start - pre) >>> 2;
  const words = wordsOf(b.buffer);
  let s0 = 0;
  let s1 = 0;
  let k = (abs + pre) >>> 2;
  const last = k + n;
  const n4 = last - (n & 3);
  for (; k < n4; k += 4) {
    s0 += (words[k] as number) + (words[k + 1] as number);
    s1 += (words[k + 2] as number) + (words[k + 3] as number);
  }
  for (; k < last; k++) s0 += words[k] as number;
  // Native words are little-endian on every platform Node runs on in practice; the
  // swap turns their sum into the big-endian one (RFC 1071 §2(B)).
  let middle = LITTLE_ENDIAN ? swap16(foldSum(s0 + s1)) : foldSum(s0 + s1);
  if (pre & 1) middle = swap16(middle);
  const tailStart = start + pre + n * 4;
  let tail = foldSum(narrowSum(b, tailStart, end));
  if ((tailStart - start) & 1) tail = swap16(tail);
  return foldSum(narrowSum(b, start, start + pre) + middle + tail + initial);
}

/** The checksum (complemented sum) of b[start, end) with an initial sum; 0..0xffff. */
export function internetChecksum(b: Uint8Array, start = 0, end = b.length, initial = 0): number {
  return ~onesSum(b, start, end, initial) & 0xffff;
}

/** Sum of a 32-bit value taken as two 16-bit words (IPv4 addresses in pseudo-headers). */
export const sum32 = (x: number): number => (x >>> 16) + (x & 0xffff);

/**
 * The sum of the IPv4 pseudo-header for TCP and UDP (RFC 793, RFC 768): source,
 * destination, zero byte, protocol, and the transport length (header + data).
 */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return foldSum(sum32(src) + sum32(dst) + protocol + length);
}

/**
 * RFC 1624 incremental update: the new checksum after a 16-bit word of the covered
 * data changed from `oldWord` to `newWord` (NAT rewriting a port). For UDP the caller
 * keeps a received 0 ("no checksum") as is and sends a result of 0 as 0xffff.
 */
export function adjustChecksum(checksum: number, oldWord: number, newWord: number): number {
  // HC' = ~(~HC + ~m + m')
  const s = foldSum((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff));
  return ~s & 0xffff;
}

/** As `adjustChecksum` for a 32-bit field (NAT rewriting an IPv4 address). */
export function adjustChecksum32(checksum: number, oldValue: number, newValue: number): number {
  const s = foldSum(
    (~checksum & 0xffff) +
      (~(oldValue >>> 16) & 0xffff) +
      (~oldValue & 0xffff) +
      (newValue >>> 16) +
      (newValue & 0xffff),
  );
  return ~s & 0xffff;
}

/** The addresses of the IPv4 pseudo-header; an `Ipv4Packet` record is one. */
export interface PseudoHeader {
  readonly src: number;
  readonly dst: number;
}

/**
 * The IPv6 pseudo-header (RFC 8200 §8.1: source, destination, upper-layer length,
 * next header) as a `PseudoHeader` the TCP, UDP and ICMPv6 codecs take unchanged:
 * `src` and `dst` hold the folded sums of the 16-byte addresses. Ones'-complement
 * addition is associative, so `pseudoHeaderSum(src, dst, proto, len)` over these is
 * the IPv6 pseudo-header sum (a sum is below 0x10000, so `sum32` of it is itself). The
 * upper-layer length is 32 bits in IPv6; lengths over 65535 (jumbograms) are not sent.
 */
export function pseudoHeader6(src: Uint8Array, dst: Uint8Array, srcAt = 0, dstAt = 0): PseudoHeader {
  return { src: onesSum(src, srcAt, srcAt + 16), dst: onesSum(dst, dstAt, dstAt + 16) };
}
