/**
 * Frames carved one after another from a large slab, each with a few free bytes before
 * it: the stack's output towards QEMU's stream sockets, where every frame goes out
 * behind a 4-byte length. A stream port finds a run of such frames back to back in one
 * slab, writes each length into the free bytes before its frame and hands the socket
 * the whole run as one view, instead of allocating a Buffer per frame and copying every
 * frame again into a write buffer (for bulk TCP, two allocations and a copy of each
 * 1514-byte frame).
 *
 * Theory of operation: a `FrameSlab` hands out views of its current slab in order and
 * starts a new slab when one is full; a slab is never reused, so a frame stays valid
 * (and unchanged) for as long as anyone holds it, like any other frame. The free bytes
 * before a frame belong to no frame: a port may write that frame's length there, and
 * two ports that do write the same bytes. Only slabs made here count (`hasHeadroom`);
 * any other Buffer is left alone.
 */

/** Free bytes before each frame of a slab: the length prefix of QEMU's stream protocol. */
export const frameHeadroom = 4;

/** The slabs `FrameSlab`s made; their frames have `frameHeadroom` free bytes in front. */
const slabs = new WeakSet<ArrayBufferLike>();

export class FrameSlab {
  private slab: Buffer | undefined;
  private at = 0;

  /** `size`: bytes per slab; a frame larger than that gets a slab of its own. */
  constructor(private readonly size = 256 * 1024) {}

  /** A frame-sized Buffer (contents undefined) with `frameHeadroom` free bytes before it. */
  take(length: number): Buffer {
    const need = frameHeadroom + length;
    let slab = this.slab;
    if (slab === undefined || this.at + need > slab.length) {
      slab = Buffer.allocUnsafeSlow(Math.max(this.size, need));
      slabs.add(slab.buffer);
      this.slab = slab;
      this.at = 0;
    }
    const start = this.at + frameHeadroom;
    this.at = start + length;
    return slab.subarray(start, start + length);
  }
}

/** Whether `frame` came from a `FrameSlab`, i.e. has `frameHeadroom` free bytes before it. */
export function hasHeadroom(frame: Buffer): boolean {
  return frame.byteOffset >= frameHeadroom && slabs.has(frame.buffer);
}
