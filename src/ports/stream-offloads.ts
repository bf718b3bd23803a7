/**
 * Offload-marked frames (stack/wire/frame-offload.ts) for a QEMU stream socket, cut and
 * checksummed by the native addon (native/framing.c) in one call per write.
 *
 * Why: a stream port that takes marks lets the user stack send TCP to QEMU as 64 KiB
 * super frames with partial checksums whose payload stays in the send buffer; the
 * addon then writes the 1514-byte segments QEMU needs straight into the socket's write
 * buffer, copying each payload byte once. Done in JS per segment, that work cost more
 * CPU than QEMU spends on the frame. Without the addon the port takes no marks and the
 * hub hands it ordinary frames (resolveOffloads), as before.
 */
import { encodeStreamFrames, nativeStatus } from "../native/binding.js";
import { offloadOf } from "../stack/wire/frame-offload.js";

/** Whether stream ports can take offload marks here (the addon loads). */
export function streamOffloadsAvailable(): boolean {
  return nativeStatus().available;
}

/** Where the stream encoding starts out; it grows to the largest write seen. */
const initialBytes = 256 * 1024;

/**
 * The stream encoding of frames, marked or not, in a Buffer the encoder reuses: a fresh
 * 64 KiB allocation per write cost four times the copying of its bytes (page faults).
 * The caller says when the last encoding is still in use (`retire`); the next one then
 * gets a new Buffer.
 */
export class OffloadedFrameEncoder {
  private out: Buffer | undefined;

  /** `frames` (marks honoured) as QEMU's stream carries them; valid until the next call. */
  encode(frames: readonly Buffer[]): Buffer {
    const n = frames.length;
    let tails: (Buffer | undefined)[] | undefined;
    let marks: Int32Array | undefined;
    for (let i = 0; i < n; i++) {
      const o = offloadOf(frames[i] as Buffer);
      if (o === undefined) continue;
      if (o.tail !== undefined) {
        tails ??= new Array<Buffer | undefined>(n);
        tails[i] = o.tail;
      }
      if (o.checksum !== "partial" && o.gsoSize === 0) continue;
      if (marks === undefined) {
        marks = new Int32Array(3 * n);
        for (let k = 0; k < n; k++) marks[3 * k] = -1;
      }
      // a super frame is cut (and every segment checksummed) whatever its checksum said
      marks[3 * i] = o.checksum === "partial" ? o.csumStart : 0;
      marks[3 * i + 1] = o.csumOffset;
      marks[3 * i + 2] = o.gsoSize;
    }
    let out = (this.out ??= Buffer.allocUnsafeSlow(initialBytes));
    let written = encodeStreamFrames(out, frames, tails, marks);
    if (written < 0) {
      out = this.out = Buffer.allocUnsafeSlow(Math.max(-written, 2 * out.length));
      written = encodeStreamFrames(out, frames, tails, marks);
    }
    return out.subarray(0, written);
  }

  /** The last encoding is still held (queued in a socket): never write over it. */
  retire(): void {
    this.out = undefined;
  }
}
