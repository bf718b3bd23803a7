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
/** Buffers given back after a queued write, kept for the next encodings. */
const maxSpares = 2;

/** One encoding, and what its writer tells the encoder about it. */
export interface EncodedFrames {
  /** the bytes to write */
  readonly wire: Buffer;
  /** the socket queued `wire` (it holds it after write() returned): not to be written over */
  retire(): void;
  /** the socket is done with `wire` (its write callback): a retired buffer may be reused */
  done(): void;
}

/**
 * The stream encoding of frames, marked or not, in Buffers the encoder reuses: a fresh
 * 64 KiB allocation per write cost four times the copying of its bytes (page faults).
 * An encoding the socket wrote at once is written over by the next; one the socket
 * queued is retired and its Buffer comes back when the write is done (a unix socket,
 * whose buffer holds about 200 KiB, queues often).
 */
export class OffloadedFrameEncoder {
  private out: Buffer | undefined;
  private readonly spares: Buffer[] = [];

  /** `frames` (marks honoured) as QEMU's stream carries them. */
  encode(frames: readonly Buffer[]): EncodedFrames {
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
    let out = this.out ?? this.spares.pop() ?? Buffer.allocUnsafeSlow(initialBytes);
    let written = encodeStreamFrames(out, frames, tails, marks);
    if (written < 0) {
      out = Buffer.allocUnsafeSlow(Math.max(-written, 2 * out.length));
      written = encodeStreamFrames(out, frames, tails, marks);
    }
    this.out = out;
    let retired = false;
    return {
      wire: out.subarray(0, written),
      retire: () => {
        retired = true;
        if (this.out === out) this.out = undefined;
      },
      done: () => {
        if (!retired || this.spares.length >= maxSpares || this.spares.includes(out)) return;
        retired = false;
        this.spares.push(out);
      },
    };
  }
}
