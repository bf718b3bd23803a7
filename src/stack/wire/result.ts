/**
 * The one way a codec says "this input is not acceptable": a typed result with a
 * short, stable reason (kebab-case, e.g. "ipv4-bad-checksum") that the caller counts.
 * Decoders never throw on guest bytes.
 */
export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(reason: string): Result<T> => ({ ok: false, reason });
