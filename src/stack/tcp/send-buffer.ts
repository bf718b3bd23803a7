/**
 * The bytes a TCP endpoint has taken from the host side and not yet had acknowledged
 * by the guest: a bounded FIFO addressed by offset from its first byte.
 *
 * Theory of operation: one ring of memory owned by the buffer. `push` copies what fits
 * (at most `free` bytes), so the caller may reuse its Buffer at once: the relay reads
 * host sockets into one reused buffer, and in a steady bulk transfer nothing is
 * allocated per read (large per-read allocations are what made V8 run a full GC every
 * few megabytes). `read(offset, n)` returns a view when the range does not wrap around
 * the ring's end and a copy when it does; `contiguous(offset)` says how far a view
 * reaches, so a large segment can stop there instead of being copied. `drop(n)`
 * releases acknowledged bytes from the front.
 *
 * The buffer knows nothing of budgets: the endpoint charges what `push` and `commitLent`
 * take and releases what `drop` lets go (tcp-endpoint.ts).
 *
 * Memory: the ring is allocated on the first push, at the size that push needs (2 KiB
 * from Node's shared buffer pool for a small one, else 16 KiB at least), and doubles
 * while more is needed, up to `capacity`. When every byte has been acknowledged a small
 * ring is let go, so a quiet connection holds no buffer; a ring of 256 KiB or more (a
 * bulk transfer) stays until `release` (the endpoint calls it when the connection
 * closes), which costs no more than the full buffer the connection may hold anyway.
 * Views handed out earlier (segments still queued towards the guest) keep the old
 * memory alive; the ring never rewrites bytes that are still held, and bytes it reuses
 * were acknowledged: a stale queued copy of them is a duplicate the guest drops by
 * sequence number.
 *
 * Lending: a bulk transfer's ring (256 KiB or more) can lend the free space after the
 * held bytes (`lend`), so a host socket reads straight into it; `commitLent` then makes
 * the bytes read part of the buffer without copying them. This saves the copy out of
 * the shared read buffer, which was the largest copy left on the way to a guest. While
 * a view is lent nothing may be pushed (the caller's contract: the relay reads either
 * into a lent view or into its own buffer, never both at once); should the ring have
 * moved meanwhile, `commitLent` copies from the view like `push`.
 */

const MIN_RING = 16 * 1024;
const KEEP_RING = 256 * 1024;
/** a first push up to this size takes a small ring from Node's buffer pool */
const SMALL_RING = 2 * 1024;
const EMPTY = Buffer.alloc(0);

export class SendBuffer {
  private ring: Buffer | undefined;
  /** ring index of the first byte held */
  private start = 0;
  private size = 0;
  /** ring index where the lent view starts (the end of the held bytes when lent) */
  private lentAt: number | undefined;

  constructor(readonly capacity: number) {}

  /** Bytes held. */
  get length(): number {
    return this.size;
  }

  /** Bytes `push` would accept now. */
  get free(): number {
    return this.capacity - this.size;
  }

  /** Copies in as much of `data` as fits; returns how many bytes were taken. */
  push(data: Buffer): number {
    const n = Math.min(data.length, this.free);
    if (n <= 0) return 0;
    this.lentAt = undefined;
    const ring = this.reserve(this.size + n);
    const at = (this.start + this.size) % ring.length;
    const first = Math.min(n, ring.length - at);
    data.copy(ring, at, 0, first);
    if (first < n) data.copy(ring, 0, first, n);
    this.size += n;
    return n;
  }

  /**
   * A view of the free space right after the held bytes, at most `max` bytes, for the
   * caller to fill and then `commitLent`; undefined unless the ring is a bulk
   * transfer's (256 KiB or more) with at least `min` contiguous bytes free.
   */
  lend(min: number, max: number): Buffer | undefined {
    this.lentAt = undefined;
    const ring = this.ring;
    if (ring === undefined || ring.length < KEEP_RING) return undefined;
    const end = (this.start + this.size) % ring.length;
    // the free space runs to the ring's end, or (wrapped) up to the first held byte; a
    // full ring (which may still grow: its capacity is larger) has none
    const spare = Math.min(this.free, ring.length - this.size);
    const room = Math.min(spare, end >= this.start ? ring.length - end : this.start - end);
    if (room < min) return undefined;
    this.lentAt = end;
    return ring.subarray(end, end + Math.min(room, max));
  }

  /**
   * The first n bytes of `view` (from `lend`) follow the held bytes now; returns how
   * many were taken (at most `free`). Without a copy when the view is still where the
   * held bytes end; copied otherwise (the ring moved, or nothing is lent).
   */
  commitLent(view: Buffer, n: number): number {
    const ring = this.ring;
    const at = this.lentAt;
    this.lentAt = undefined;
    const k = Math.min(n, view.length, this.free);
    if (k <= 0) return 0;
    if (
      ring !== undefined &&
      at !== undefined &&
      view.buffer === ring.buffer &&
      view.byteOffset === ring.byteOffset + at &&
      at === (this.start + this.size) % ring.length
    ) {
      this.size += k;
      return k;
    }
    return this.push(view.subarray(0, k));
  }

  /** Bytes [offset, offset + n) counted from the first byte held (n is clipped). */
  read(offset: number, n: number): Buffer {
    const from = Math.max(0, offset);
    const len = Math.min(this.size - from, Math.max(0, n));
    const ring = this.ring;
    if (len <= 0 || ring === undefined) return EMPTY;
    const at = (this.start + from) % ring.length;
    if (at + len <= ring.length) return ring.subarray(at, at + len);
    const out = Buffer.allocUnsafe(len);
    const first = ring.length - at;
    ring.copy(out, 0, at, ring.length);
    ring.copy(out, first, 0, len - first);
    return out;
  }

  /** Bytes from `offset` that a `read` returns as a view (up to the ring's end). */
  contiguous(offset: number): number {
    const from = Math.max(0, offset);
    const ring = this.ring;
    if (from >= this.size || ring === undefined) return 0;
    const at = (this.start + from) % ring.length;
    return Math.min(this.size - from, ring.length - at);
  }

  /** Releases the first n bytes (clipped to what is held). */
  drop(n: number): void {
    const k = Math.min(this.size, Math.max(0, n));
    if (k === 0 || this.ring === undefined) return;
    this.size -= k;
    // an emptied ring starts over at 0, unless its free space is lent: the view must
    // stay where the held bytes end
    this.start = this.size === 0 && this.lentAt === undefined ? 0 : (this.start + k) % this.ring.length;
    // A small ring goes when empty; a large one (a bulk transfer, which empties its
    // buffer now and then) stays until `release`, sparing a 1 MiB allocation per refill.
    if (this.size === 0 && this.ring.length < KEEP_RING) this.ring = undefined;
  }

  /** Lets the ring go if nothing is held (the connection is closing). */
  release(): void {
    if (this.size === 0) {
      this.ring = undefined;
      this.lentAt = undefined;
    }
  }

  /** The ring, grown (its bytes moved to the front) so it holds at least `need` bytes. */
  private reserve(need: number): Buffer {
    const old = this.ring;
    if (old !== undefined && old.length >= need) return old;
    if (old === undefined && need <= SMALL_RING) {
      // a request's answer, an echo: a slice of Node's shared pool, where a ring of
      // its own (allocated and let go per answer) was a malloc and external memory
      // for V8 to account each round trip
      this.ring = Buffer.allocUnsafe(Math.max(need, Math.min(SMALL_RING, this.capacity)));
      this.start = 0;
      return this.ring;
    }
    let size = MIN_RING;
    while (size < need) size *= 2;
    size = Math.max(need, Math.min(size, this.capacity));
    const ring = Buffer.allocUnsafeSlow(size);
    if (old !== undefined && this.size > 0) {
      const first = Math.min(this.size, old.length - this.start);
      old.copy(ring, 0, this.start, this.start + first);
      if (first < this.size) old.copy(ring, first, 0, this.size - first);
    }
    this.ring = ring;
    this.start = 0;
    return ring;
  }
}
