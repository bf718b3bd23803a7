/**
 * Out-of-order guest data waiting for a hole to be filled, and the SACK blocks that
 * describe it (RFC 2018).
 *
 * Theory of operation: the endpoint trims each segment to its receive window before
 * calling `insert`, so what is held never exceeds the window (and so the receive buffer
 * size): the queue itself has no other bound to enforce. Inserted bytes are copied (they
 * outlive the guest frame) and only the parts not already held are kept, so the ranges
 * stay sorted and disjoint. `take(rcvNxt)` removes and returns the ranges that now start
 * at the next expected byte. Sequence numbers are compared relative to `rcvNxt`, which
 * keeps ordering right across the 2^32 wrap (the window is far below 2^31).
 *
 * SACK blocks: the block holding the most recently inserted byte comes first (RFC 2018
 * §4 requires that); the others follow in sequence order rather than strict recency,
 * which RFC 2018 recommends but does not require. No D-SACK (RFC 2883).
 */

import { seqAdd, seqSub } from "../wire/seq.js";
import type { SackBlock } from "../wire/tcp.js";

interface Range {
  seq: number;
  data: Buffer;
}

export class ReassemblyQueue {
  private ranges: Range[] = [];
  private held = 0;
  private lastSeq: number | undefined;

  /** Bytes held. */
  get bytes(): number {
    return this.held;
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** Stores the parts of `data` (starting at `seq`, after rcvNxt) not already held. */
  insert(seq: number, data: Buffer, rcvNxt: number): void {
    if (data.length === 0) return;
    this.lastSeq = seq;
    let from = seqSub(seq, rcvNxt);
    const to = from + data.length;
    const out: Range[] = [];
    let i = 0;
    for (; i < this.ranges.length; i++) {
      const r = this.ranges[i] as Range;
      const rs = seqSub(r.seq, rcvNxt);
      const re = rs + r.data.length;
      if (re <= from) {
        out.push(r);
        continue;
      }
      if (rs >= to) break;
      if (rs > from) this.keep(out, seq, data, from, rs, rcvNxt);
      out.push(r);
      from = Math.max(from, re);
    }
    if (from < to) this.keep(out, seq, data, from, to, rcvNxt);
    for (; i < this.ranges.length; i++) out.push(this.ranges[i] as Range);
    this.ranges = out;
  }

  private keep(out: Range[], seq: number, data: Buffer, from: number, to: number, rcvNxt: number): void {
    const start = from - seqSub(seq, rcvNxt);
    out.push({ seq: seqAdd(rcvNxt, from), data: Buffer.from(data.subarray(start, start + (to - from))) });
    this.held += to - from;
  }

  /** Removes and returns, in order, the held bytes that continue the stream at rcvNxt. */
  take(rcvNxt: number): Buffer[] {
    const got: Buffer[] = [];
    let next = rcvNxt;
    // Drop whatever now lies wholly before rcvNxt (the guest retransmitted over it).
    while (this.ranges.length > 0) {
      const r = this.ranges[0] as Range;
      const off = seqSub(next, r.seq);
      if (off < 0) break;
      this.ranges.shift();
      this.held -= r.data.length;
      if (off < r.data.length) {
        const piece = r.data.subarray(off);
        got.push(piece);
        next = seqAdd(next, piece.length);
      }
    }
    return got;
  }

  /** Up to `max` SACK blocks for what is held, the most recent first. */
  sackBlocks(max: number): SackBlock[] {
    const blocks: SackBlock[] = [];
    for (const r of this.ranges) {
      const last = blocks[blocks.length - 1];
      const end = seqAdd(r.seq, r.data.length);
      if (last && last.right === r.seq) last.right = end;
      else blocks.push({ left: r.seq, right: end });
    }
    const recent = this.lastSeq;
    if (recent !== undefined) {
      const k = blocks.findIndex((b) => seqSub(recent, b.left) >= 0 && seqSub(b.right, recent) > 0);
      if (k > 0) blocks.unshift(...blocks.splice(k, 1));
    }
    return blocks.slice(0, max);
  }

  clear(): void {
    this.ranges = [];
    this.held = 0;
  }
}
