/**
 * IPv4 reassembly (RFC 791 section 3.2, RFC 815), sans-I/O: time is the `now`
 * argument (milliseconds, from the injected clock); the driver calls `expire(now)`
 * at `nextDeadline()`.
 *
 * Theory of operation
 * - The caller maps each decoded IPv4 header onto an `Ipv4Fragment`. An unfragmented
 *   packet (offset 0, MF clear) passes straight through: same payload Buffer, no copy,
 *   no table entry.
 * - Fragments are keyed by (src, dst, id, protocol). Each datagram in flight keeps its
 *   fragments sorted by offset, as copies (the frame that carried a fragment may be
 *   reused once `push` returns). When the final fragment (MF clear) has fixed the
 *   length and the fragments cover it without a gap, they are joined into one new
 *   Buffer and the datagram is returned; the entry is gone.
 * - Overlap (RFC 5722 spirit, as Linux does for IPv4 since 2018): a fragment that
 *   overlaps another, or disagrees with the final fragment about the length, discards
 *   the whole datagram. A byte-identical duplicate of a fragment already held is
 *   dropped on its own and the datagram carries on (retransmitting routers and
 *   looping bridges produce those).
 * - A discarded datagram leaves a tombstone until its deadline: its later fragments
 *   are dropped under the same reason rather than starting a datagram that could
 *   only time out.
 *
 * Limits (constructor options) and what happens at each
 * - maxDatagrams (64): datagrams in flight, tombstones included. A new one when full
 *   evicts the oldest: "reasm-table-full".
 * - maxDatagramsPerSource (16): datagrams in flight from one guest (the fragment's
 *   `guest` id, see guest-bounds.ts; its source address when absent), tombstones included. A fragment that would start one more is dropped, nothing
 *   evicted: "reasm-source-full". So one sender cannot evict every other sender's
 *   datagrams, and holds at most 16 * 64 KiB = 1 MiB.
 * - maxSize (65535): the reassembled IPv4 total length (header + payload); beyond it
 *   the datagram is discarded: "reasm-too-big". The header length is the fragment's
 *   `headerLength` (IHL * 4; 20 if not given), that of the first fragment at the end.
 * - maxFragments (64) per datagram: one more discards the datagram,
 *   "reasm-too-many-fragments". With the defaults at most 64 * 64 KiB = 4 MiB is held
 *   in all (the sum of the pieces' bytes is at most maxSize per datagram).
 * - timeoutMs (30,000, Linux's ipfrag_time; RFC 791 suggests 15 s), counted from the
 *   first fragment and never extended: an incomplete datagram is then dropped,
 *   "reasm-timeout". No ICMP time-exceeded is sent (neither does libslirp).
 * - A fragment with an offset that is not a multiple of 8 or beyond 65,528, a
 *   non-final fragment whose length is not a multiple of 8, or an empty fragment is
 *   dropped by itself: "reasm-bad-offset". Others: "reasm-overlap", "reasm-duplicate".
 *
 * Counting: drops count fragments (frames), not datagrams, so that every fragment
 * pushed is accounted for exactly once: passed through, delivered inside a datagram,
 * counted in `stats()`, or still held (`inFlight().fragments`).
 *
 * Not done: checking that fragments agree on TOS/TTL/options (the first fragment's
 * header is what the caller keeps).
 *
 * IPv6 (ipv6-gateway.ts) uses a reassembler of its own with these same rules (RFC 8200
 * §4.5 and RFC 5722 ask for what this does): its fragments give their addresses as a
 * string `key` instead of `src`/`dst`, and the 60 s timeout of RFC 8200.
 */
import { DropCounters } from "./drop-counters.js";
import { GuestCounts } from "./guest-bounds.js";

export interface Ipv4Fragment {
  src: number;
  dst: number;
  id: number;
  protocol: number;
  /** Bytes (the header field times 8). */
  fragmentOffset: number;
  moreFragments: boolean;
  /** The fragment's data after its IPv4 header. */
  payload: Buffer;
  /** Its IPv4 header length in bytes (IHL * 4); 20 when absent. Only the size limit uses it. */
  headerLength?: number;
  /** who sent it (guest-bounds.ts), for maxDatagramsPerSource; `src` when absent */
  guest?: number;
  /** stands for (src, dst) in the datagram's key when present: IPv6 fragments give their addresses' keys */
  key?: string;
}

export interface Ipv4Datagram {
  src: number;
  dst: number;
  id: number;
  protocol: number;
  payload: Buffer;
}

export interface Ipv4ReassemblerOptions {
  maxDatagrams?: number;
  /** datagrams in flight from one source address (at most maxDatagrams) */
  maxDatagramsPerSource?: number;
  maxSize?: number;
  maxFragments?: number;
  timeoutMs?: number;
  drops?: DropCounters;
}

export const ipv4ReassemblyDefaults = {
  maxDatagrams: 64,
  maxDatagramsPerSource: 16,
  maxSize: 65535,
  maxFragments: 64,
  timeoutMs: 30_000,
} as const;

/** The largest offset the 13-bit field can express. */
const maxOffset = 8191 * 8;
const minHeaderLength = 20;

interface Piece {
  offset: number;
  end: number;
  data: Buffer;
}

interface Pending {
  readonly owner: number;
  readonly src: number;
  readonly dst: number;
  readonly id: number;
  readonly protocol: number;
  readonly deadline: number;
  /** Sorted by offset, never overlapping. */
  pieces: Piece[];
  bytes: number;
  /** The payload length, once the final fragment has been seen. */
  totalLength: number | undefined;
  /** The first fragment's header length. */
  headerLength: number;
  /** Set when the datagram was discarded: the reason its later fragments are dropped for. */
  dead: string | undefined;
}

export class Ipv4Reassembler {
  private readonly maxDatagrams: number;
  private readonly maxSize: number;
  private readonly maxFragments: number;
  private readonly timeoutMs: number;
  private readonly drops: DropCounters;
  /** In creation order, which is also deadline order (the timeout is the same for all). */
  private readonly table = new Map<string, Pending>();
  /** table entries per source address */
  private readonly bySource: GuestCounts;

  constructor(options: Ipv4ReassemblerOptions = {}) {
    const o = { ...ipv4ReassemblyDefaults, ...options };
    for (const name of ["maxDatagrams", "maxDatagramsPerSource", "maxSize", "maxFragments"] as const) {
      if (!Number.isInteger(o[name]) || o[name] < 1)
        throw new RangeError(`${name} must be a positive integer`);
    }
    if (!(o.timeoutMs > 0)) throw new RangeError("timeoutMs must be positive");
    this.maxDatagrams = o.maxDatagrams;
    this.maxSize = o.maxSize;
    this.maxFragments = o.maxFragments;
    this.timeoutMs = o.timeoutMs;
    this.drops = options.drops ?? new DropCounters();
    this.bySource = new GuestCounts({
      max: o.maxDatagrams,
      perGuest: Math.min(o.maxDatagrams, o.maxDatagramsPerSource),
    });
  }

  /** The bounds in force: datagrams in flight in all and per source. */
  get limits(): { maxDatagrams: number; maxDatagramsPerSource: number } {
    return { maxDatagrams: this.maxDatagrams, maxDatagramsPerSource: this.bySource.bounds.perGuest };
  }

  /** Takes one fragment; returns the datagram it completes (or the packet itself if unfragmented). */
  push(frag: Ipv4Fragment, now: number): Ipv4Datagram | undefined {
    this.expire(now);
    const { src, dst, id, protocol, fragmentOffset: offset, moreFragments, payload } = frag;
    if (offset === 0 && !moreFragments) return { src, dst, id, protocol, payload };

    const len = payload.length;
    const end = offset + len;
    if (
      !Number.isInteger(offset) ||
      offset < 0 ||
      offset > maxOffset ||
      offset % 8 !== 0 ||
      len === 0 ||
      (moreFragments && len % 8 !== 0)
    ) {
      this.drops.drop("reasm-bad-offset");
      return undefined;
    }

    const key = frag.key === undefined ? `${src}/${dst}/${id}/${protocol}` : `${frag.key}/${id}/${protocol}`;
    let p = this.table.get(key);
    if (p?.dead !== undefined) {
      this.drops.drop(p.dead);
      return undefined;
    }
    if (!p) {
      const owner = frag.guest ?? src;
      if (this.bySource.over(owner) === "per-guest") {
        this.drops.drop("reasm-source-full");
        return undefined;
      }
      this.makeRoom();
      p = {
        owner,
        src,
        dst,
        id,
        protocol,
        deadline: now + this.timeoutMs,
        pieces: [],
        bytes: 0,
        totalLength: undefined,
        headerLength: minHeaderLength,
        dead: undefined,
      };
      this.table.set(key, p);
      this.bySource.take(owner);
    }

    const headerLength = Math.max(frag.headerLength ?? minHeaderLength, minHeaderLength);
    if (headerLength + end > this.maxSize) return this.discard(p, "reasm-too-big");

    // The final fragment fixes the length; nothing may disagree with it.
    const lastEnd = p.pieces.at(-1)?.end ?? 0;
    if (moreFragments) {
      if (p.totalLength !== undefined && end > p.totalLength) return this.discard(p, "reasm-overlap");
    } else if ((p.totalLength !== undefined && p.totalLength !== end) || lastEnd > end) {
      return this.discard(p, "reasm-overlap");
    }

    // Find where it goes: scan from the back, since fragments mostly arrive in order.
    let i = p.pieces.length;
    while (i > 0 && (p.pieces[i - 1] as Piece).offset > offset) i--;
    const before = p.pieces[i - 1];
    if (before && before.offset === offset) {
      if (before.end === end && before.data.equals(payload)) {
        this.drops.drop("reasm-duplicate");
        return undefined;
      }
      return this.discard(p, "reasm-overlap");
    }
    const after = p.pieces[i];
    if ((before && before.end > offset) || (after && after.offset < end))
      return this.discard(p, "reasm-overlap");
    if (p.pieces.length >= this.maxFragments) return this.discard(p, "reasm-too-many-fragments");

    p.pieces.splice(i, 0, { offset, end, data: Buffer.from(payload) });
    p.bytes += len;
    if (!moreFragments) p.totalLength = end;
    if (offset === 0) p.headerLength = headerLength;

    // Disjoint pieces inside [0, totalLength) that add up to it cover it.
    if (p.totalLength === undefined || p.bytes !== p.totalLength) return undefined;
    if (p.headerLength + p.totalLength > this.maxSize) return this.discard(p, "reasm-too-big", 0);
    this.forget(key, p);
    return {
      src,
      dst,
      id,
      protocol,
      payload: Buffer.concat(
        p.pieces.map((piece) => piece.data),
        p.totalLength,
      ),
    };
  }

  /** Drops datagrams whose time is up; returns how many incomplete datagrams were dropped. */
  expire(now: number): number {
    let expired = 0;
    for (const [key, p] of this.table) {
      if (p.deadline > now) break;
      this.forget(key, p);
      if (p.pieces.length > 0) {
        this.drops.drop("reasm-timeout", p.pieces.length);
        expired++;
      }
    }
    return expired;
  }

  /** When `expire` next has something to do, or undefined when nothing is held. */
  nextDeadline(): number | undefined {
    for (const p of this.table.values()) return p.deadline;
    return undefined;
  }

  /** Drop counts by reason ("reasm-*"), one per fragment dropped. */
  stats(): DropCounters {
    return this.drops;
  }

  /** What is held now: datagrams being reassembled (tombstones not included), their fragments and bytes. */
  inFlight(): { datagrams: number; fragments: number; bytes: number } {
    let datagrams = 0;
    let fragments = 0;
    let bytes = 0;
    for (const p of this.table.values()) {
      if (p.dead !== undefined) continue;
      datagrams++;
      fragments += p.pieces.length;
      bytes += p.bytes;
    }
    return { datagrams, fragments, bytes };
  }

  /** Makes one slot free, evicting the oldest datagram if the table is full. */
  private makeRoom(): void {
    while (this.table.size >= this.maxDatagrams) {
      const oldest = this.table.entries().next().value;
      if (!oldest) return;
      const [key, p] = oldest;
      this.forget(key, p);
      if (p.pieces.length > 0) this.drops.drop("reasm-table-full", p.pieces.length);
    }
  }

  private forget(key: string, p: Pending): void {
    this.table.delete(key);
    this.bySource.release(p.owner);
  }

  /**
   * Discards a datagram and leaves its tombstone; counts the fragments it held plus
   * `incoming` (the fragment being pushed, unless it was already stored).
   */
  private discard(p: Pending, reason: string, incoming = 1): undefined {
    this.drops.drop(reason, p.pieces.length + incoming);
    p.pieces = [];
    p.bytes = 0;
    p.dead = reason;
    return undefined;
  }
}
