/**
 * Dead frames, V8's young generation and malloc's free pages.
 *
 * Every frame a port reads and every frame a user stack builds has an ArrayBuffer of
 * its own, dead as soon as the hub has passed it on. V8 frees such a buffer only at a
 * scavenge, and it scavenges when its new space fills or when young ArrayBuffers hold
 * 32 MiB (twice V8's built-in maximum semi-space, whatever --max-semi-space-size says).
 * A bulk transfer at MTU 65520 allocates little JavaScript per 64 KiB frame, so it is
 * the second trigger that runs: about 32 MiB of dead frames at any time, a third of the
 * process's peak RSS under `npm run bench`.
 *
 * With `--expose-gc` (the bin's first line and `npm start` pass it) `noteFrameBytes`
 * asks for a scavenge after every `frameGcBytes` of frames instead: a scavenge of a new
 * space that holds little but dead frames is cheap (it copies only what lives), and it
 * replaces some of the scavenges V8 would have run anyway. Without the flag it does
 * not. While frames flow, never a full GC.
 *
 * The backing stores are malloc'ed, and glibc keeps freed chunks in the middle of its
 * heap resident; and what a burst of connections leaves (closed endpoints, relays,
 * sockets) is old-generation garbage that V8's memory reducer collects only some ten
 * seconds later. When frames stop for `quietMs` after at least `trimAfterBytes` of
 * them (a transfer or a burst of connections ended), one full GC (with --expose-gc,
 * some milliseconds) and then `trim` (malloc_trim through the native addon) give
 * those pages back: 10,000 connections through the slirp4netns drop-in left RSS
 * 75-80 MiB 3 s later without it, 71 with it (idle: 56). While frames flow the cost
 * is one timer per `quietMs`.
 */

/** Frame bytes between two requested scavenges. */
export const frameGcBytes = 8 * 1024 * 1024;
/** No frames for this long counts as quiet. */
export const quietMs = 1000;
/** Frame bytes since the last trim that make a quiet period worth one. */
export const trimAfterBytes = 1024 * 1024;
/** From the scavenge to the trim: V8 frees dead backing stores on a background thread. */
const sweepMs = 100;

let pending = 0;
let total = 0;
let trimmedAt = 0;
let quietTimer: NodeJS.Timeout | undefined;
let scavenge: (() => void) | undefined = exposedGc("minor");
let collect: (() => void) | undefined = exposedGc("major");
let trim: (() => void) | undefined;

function exposedGc(type: "minor" | "major"): (() => void) | undefined {
  const gc = globalThis.gc;
  return gc === undefined ? undefined : () => gc({ type });
}

/** Counts `n` bytes of frames made or taken; scavenges when `frameGcBytes` have passed since the last one. */
export function noteFrameBytes(n: number): void {
  total += n;
  if (trim !== undefined && quietTimer === undefined) armQuietTimer();
  if (scavenge === undefined) return;
  pending += n;
  if (pending < frameGcBytes) return;
  pending = 0;
  scavenge();
}

/** What gives freed malloc memory back when frames go quiet (undefined: nothing). */
export function setTrim(fn: (() => void) | undefined): void {
  trim = fn;
  if (quietTimer) clearTimeout(quietTimer);
  quietTimer = undefined;
  trimmedAt = total;
}

/** For tests: what a scavenge and a full GC do (undefined: nothing), and the count starts over. */
export function setScavenge(fn: (() => void) | undefined, fullGc?: () => void): void {
  scavenge = fn;
  collect = fullGc;
  pending = 0;
}

function armQuietTimer(): void {
  const seen = total;
  quietTimer = setTimeout(() => {
    quietTimer = undefined;
    if (total !== seen) return armQuietTimer();
    if (total - trimmedAt < trimAfterBytes) return;
    trimmedAt = total;
    collect?.();
    setTimeout(() => trim?.(), sweepMs).unref();
  }, quietMs);
  quietTimer.unref();
}
