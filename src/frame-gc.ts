/**
 * Dead frames and V8's young generation.
 *
 * Every frame a port reads and every frame a user stack builds has an ArrayBuffer of
 * its own, dead as soon as the hub has passed it on. V8 frees such a buffer only at a
 * scavenge, and it scavenges when its new space fills or when young ArrayBuffers hold
 * 32 MiB (twice V8's built-in maximum semi-space, whatever --max-semi-space-size says).
 * A bulk transfer at MTU 65520 allocates little JavaScript per 64 KiB frame, so it is
 * the second trigger that runs: about 32 MiB of dead frames at any time, a third of the
 * process's peak RSS under `npm run bench`, and pages malloc keeps afterwards.
 *
 * With `--expose-gc` (the bin's first line and `npm start` pass it) `noteFrameBytes`
 * asks for a scavenge after every `frameGcBytes` of frames instead: a scavenge of a new
 * space that holds little but dead frames is cheap (it copies only what lives), and it
 * replaces some of the scavenges V8 would have run anyway. Without the flag it does
 * nothing. Never a full GC: old-generation garbage is left to V8.
 */

/** Frame bytes between two requested scavenges. */
export const frameGcBytes = 8 * 1024 * 1024;

let pending = 0;
let scavenge: (() => void) | undefined = defaultScavenge();

function defaultScavenge(): (() => void) | undefined {
  const gc = globalThis.gc;
  return gc === undefined ? undefined : () => gc({ type: "minor" });
}

/** Counts `n` bytes of frames made or taken; scavenges when `frameGcBytes` have passed since the last one. */
export function noteFrameBytes(n: number): void {
  if (scavenge === undefined) return;
  pending += n;
  if (pending < frameGcBytes) return;
  pending = 0;
  scavenge();
}

/** For tests: what a scavenge does (undefined: nothing), and the count starts over. */
export function setScavenge(fn: (() => void) | undefined): void {
  scavenge = fn;
  pending = 0;
}
