/**
 * QEMU's stream framing: each Ethernet frame is preceded by its length as a 4-byte
 * big-endian integer (net/socket.c and net/stream.c, both directions; no vnet header).
 *
 * Theory of operation
 * - Decoding is pure and incremental: `push(chunk)` returns the complete frames it
 *   finished. A frame lying inside one chunk is returned as a view into that chunk;
 *   only a frame spanning chunks is copied, once, into a buffer of its exact size.
 *   Views keep their chunk alive, which is fine: socket reads hand out fresh buffers.
 * - A length above `maxLength` (QEMU's NET_BUFSIZE, 4096 + 65536 = 69632 bytes, the
 *   largest frame QEMU accepts) cannot be resynchronised: the decoder fails for good
 *   with reason "bad-length" and the caller drops the peer. A length below
 *   `minLength` (14, an Ethernet header; including 0) is skipped and counted in
 *   `tooShort`, and the stream goes on. QEMU's own socket backend wedges the link
 *   forever on such a frame; we keep the peer.
 * - Encoding (`encodeFrameChunks`) puts the 4-byte header before each frame: in place
 *   for frames the stack carved back to back from a slab with room for it
 *   (stack/wire/frame-slab.ts), so a run of them goes out as one view, uncopied; other
 *   frames are copied into one buffer with their headers. The encoder does not check
 *   lengths: the port filters what a QEMU peer would refuse.
 */
import { frameHeadroom, hasHeadroom } from "../stack/wire/frame-slab.js";

/** QEMU NET_BUFSIZE: the largest frame a QEMU stream peer accepts. */
export const qemuMaxFrameLength = 4096 + 65536;
/** An Ethernet header: anything shorter is not a frame. */
export const minFrameLength = 14;
export const frameHeaderLength = 4;

export interface DecodedFrames {
  frames: Buffer[];
  /** frames skipped in this push because their length was below the minimum */
  tooShort: number;
  /** set once the stream is unusable; the peer must be dropped */
  error?: string;
}

export interface FrameDecoderOptions {
  maxLength?: number;
  minLength?: number;
}

export class LengthPrefixedFrames {
  private readonly maxLength: number;
  private readonly minLength: number;
  private readonly header = Buffer.alloc(frameHeaderLength);
  private headerHave = 0;
  /** a frame spanning chunks, and how much of it has arrived */
  private partial: Buffer | undefined;
  private partialHave = 0;
  /** bytes of a too-short frame still to skip */
  private skip = 0;
  private failure: string | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxLength = options.maxLength ?? qemuMaxFrameLength;
    this.minLength = options.minLength ?? minFrameLength;
  }

  /** true when bytes of an unfinished frame or header are held */
  get midFrame(): boolean {
    return this.headerHave > 0 || this.partial !== undefined || this.skip > 0;
  }

  push(chunk: Buffer): DecodedFrames {
    const frames: Buffer[] = [];
    let tooShort = 0;
    if (this.failure) return { frames, tooShort, error: this.failure };
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        this.skip -= k;
        i += k;
        continue;
      }
      if (this.partial) {
        const k = Math.min(this.partial.length - this.partialHave, n - i);
        chunk.copy(this.partial, this.partialHave, i, i + k);
        this.partialHave += k;
        i += k;
        if (this.partialHave === this.partial.length) {
          frames.push(this.partial);
          this.partial = undefined;
          this.partialHave = 0;
        }
        continue;
      }
      let length: number;
      if (this.headerHave === 0 && n - i >= frameHeaderLength) {
        length = chunk.readUInt32BE(i);
        i += frameHeaderLength;
      } else {
        const k = Math.min(frameHeaderLength - this.headerHave, n - i);
        chunk.copy(this.header, this.headerHave, i, i + k);
        this.headerHave += k;
        i += k;
        if (this.headerHave < frameHeaderLength) break;
        this.headerHave = 0;
        length = this.header.readUInt32BE(0);
      }
      if (length > this.maxLength) {
        this.failure = "bad-length";
        return { frames, tooShort, error: this.failure };
      }
      if (length < this.minLength) {
        tooShort++;
        this.skip = length;
        continue;
      }
      if (n - i >= length) {
        frames.push(chunk.subarray(i, i + length));
        i += length;
      } else {
        this.partial = Buffer.allocUnsafe(length);
        this.partialHave = n - i;
        chunk.copy(this.partial, 0, i, n);
        i = n;
      }
    }
    return { frames, tooShort };
  }
}

/**
 * The frames as the stream carries them, [len, frame, len, frame, ...], in as few
 * buffers as runs allow (see the top of the file); written in order with one writev.
 */
export function encodeFrameChunks(frames: readonly Buffer[]): Buffer[] {
  const chunks: Buffer[] = [];
  const n = frames.length;
  let i = 0;
  while (i < n) {
    const first = frames[i] as Buffer;
    let j = i + 1;
    if (hasHeadroom(first)) {
      let end = first.byteOffset + first.length;
      for (; j < n; j++) {
        const f = frames[j] as Buffer;
        if (f.buffer !== first.buffer || f.byteOffset !== end + frameHeadroom) break;
        end = f.byteOffset + f.length;
      }
      const start = first.byteOffset - frameHeadroom;
      const run = Buffer.from(first.buffer, start, end - start);
      for (let k = i; k < j; k++) {
        const f = frames[k] as Buffer;
        run.writeUInt32BE(f.length, f.byteOffset - frameHeadroom - start);
      }
      chunks.push(run);
    } else {
      while (j < n && !hasHeadroom(frames[j] as Buffer)) j++;
      chunks.push(encodeFrames(i === 0 && j === n ? frames : frames.slice(i, j)));
    }
    i = j;
  }
  return chunks;
}

/**
 * One contiguous buffer [len, frame, len, frame, ...] for a single write(2). Copying
 * the frames (a memcpy of at most a few hundred KiB per batch) costs far less than
 * handing Node one write request, or two iovecs, per frame.
 */
export function encodeFrames(frames: readonly Buffer[]): Buffer {
  let total = 0;
  for (const f of frames) total += frameHeaderLength + f.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, at);
    out.set(f, at + frameHeaderLength);
    at += frameHeaderLength + f.length;
  }
  return out;
}
