/**
 * 32-bit TCP sequence number arithmetic (RFC 9293 §3.4, RFC 1982 style).
 *
 * Sequence numbers are uint32 values that wrap; "a before b" means b - a, taken modulo
 * 2^32, lies in 1..2^31-1. Every comparison of sequence numbers in the stack goes
 * through here so nobody compares them with a bare `<`. Results are always uint32
 * (`>>> 0`). Two numbers exactly 2^31 apart are unordered in theory; here the
 * comparison then says the first is less (the signed difference is -2^31), which is
 * harmless because windows are far smaller than 2^31.
 */

/** a + n, wrapped to 32 bits (n may be negative). */
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;

/** The signed distance a - b in -2^31..2^31-1: how far a is ahead of b. */
export const seqSub = (a: number, b: number): number => (a - b) | 0;

export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;

/** The later of two sequence numbers. */
export const seqMax = (a: number, b: number): number => (seqGe(a, b) ? a >>> 0 : b >>> 0);
/** The earlier of two sequence numbers. */
export const seqMin = (a: number, b: number): number => (seqLe(a, b) ? a >>> 0 : b >>> 0);

/** True when start <= x < end in sequence space (the window [start, end)). */
export const seqInWindow = (x: number, start: number, end: number): boolean =>
  (x - start) >>> 0 < (end - start) >>> 0;
