/**
 * The bytes a TCP endpoint has taken from the host side and not yet had acknowledged
 * by the guest: a bounded FIFO addressed by offset from its first byte.
 *
 * Theory of operation: `push` takes at most `free` bytes and keeps the caller's Buffer
 * as a view (no copy): the caller (the relay) must not modify a chunk it handed over,
 * which holds for Node socket reads since each is a fresh allocation. Writes smaller
 * than 1 KiB are copied into a shared 16 KiB tail block instead, so a host that sends
 * one byte at a time cannot make the chunk list (and the per-chunk overhead) grow to
 * one entry per byte. `read(offset, n)` returns a view when the range lies in one
 * chunk and a copy when it spans several (a segment boundary rarely matches a chunk
 * boundary twice, so this copy is the usual price of segmenting). `drop(n)` releases
 * acknowledged bytes from the front. Lookups are a binary search over chunk start
 * offsets; the chunk array is compacted when more than half of it is dead.
 *
 * Limits: `capacity` bytes in total; nothing else is stored.
 */

const SMALL_WRITE = 1024;
const TAIL_BLOCK = 16 * 1024;

export class SendBuffer {
  private chunks: Buffer[] = [];
  /** absolute stream offset of each chunk's first byte */
  private starts: number[] = [];
  private head = 0;
  /** absolute stream offset of the first byte still held */
  private base = 0;
  /** absolute stream offset just past the last byte held */
  private end = 0;
  /** spare room at the end of the last chunk when it is an owned tail block */
  private tail: Buffer | undefined;
  private tailUsed = 0;

  constructor(readonly capacity: number) {}

  /** Bytes held. */
  get length(): number {
    return this.end - this.base;
  }

  /** Bytes `push` would accept now. */
  get free(): number {
    return this.capacity - this.length;
  }

  /** Appends as much of `data` as fits; returns how many bytes were taken. */
  push(data: Buffer): number {
    const n = Math.min(data.length, this.free);
    if (n <= 0) return 0;
    if (n < SMALL_WRITE) this.pushSmall(data, n);
    else {
      this.tail = undefined;
      this.chunks.push(data.subarray(0, n));
      this.starts.push(this.end);
    }
    this.end += n;
    return n;
  }

  private pushSmall(data: Buffer, n: number): void {
    const last = this.chunks.length - 1;
    if (this.tail && last >= this.head && this.tailUsed + n <= this.tail.length) {
      data.copy(this.tail, this.tailUsed, 0, n);
      this.tailUsed += n;
      this.chunks[last] = this.tail.subarray(0, this.tailUsed);
      return;
    }
    this.tail = Buffer.allocUnsafe(TAIL_BLOCK);
    data.copy(this.tail, 0, 0, n);
    this.tailUsed = n;
    this.chunks.push(this.tail.subarray(0, n));
    this.starts.push(this.end);
  }

  /** Bytes [offset, offset + n) counted from the first byte held (n is clipped). */
  read(offset: number, n: number): Buffer {
    const from = this.base + Math.max(0, offset);
    const to = Math.min(this.end, from + Math.max(0, n));
    if (to <= from) return Buffer.alloc(0);
    let i = this.find(from);
    const first = this.chunks[i] as Buffer;
    const firstStart = this.starts[i] as number;
    if (to <= firstStart + first.length) return first.subarray(from - firstStart, to - firstStart);
    const out = Buffer.allocUnsafe(to - from);
    let w = 0;
    let at = from;
    while (at < to && i < this.chunks.length) {
      const c = this.chunks[i] as Buffer;
      const s = this.starts[i] as number;
      const piece = c.subarray(at - s, Math.min(c.length, to - s));
      piece.copy(out, w);
      w += piece.length;
      at += piece.length;
      i++;
    }
    return out;
  }

  /** Releases the first n bytes (clipped to what is held). */
  drop(n: number): void {
    this.base = Math.min(this.end, this.base + Math.max(0, n));
    while (this.head < this.chunks.length) {
      const c = this.chunks[this.head] as Buffer;
      if ((this.starts[this.head] as number) + c.length > this.base) break;
      this.chunks[this.head] = EMPTY;
      this.head++;
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.starts = [];
      this.head = 0;
      this.tail = undefined;
    } else if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.starts = this.starts.slice(this.head);
      this.head = 0;
    }
  }

  /** Index of the chunk holding absolute offset `at` (which must be held). */
  private find(at: number): number {
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.starts[mid] as number) <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

const EMPTY = Buffer.alloc(0);
