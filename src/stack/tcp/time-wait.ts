/**
 * TIME_WAIT without a connection: what is left of a guest connection whose remote side
 * (ours) closed first, kept as a few numbers per 4-tuple instead of an endpoint.
 *
 * Theory of operation: when an endpoint enters TIME_WAIT (our FIN was acked and the
 * guest's FIN arrived), the flow table takes a `TimeWaitRecord` from it and forgets the
 * endpoint: the flow slot, its buffers, the relay and the host socket all go at once.
 * For `timeWaitMs` (60 s, Linux's TCP_TIMEWAIT_LEN) a guest segment on that tuple is
 * answered from the record, as Linux's tcp_timewait_state_process does (no PAWS):
 * - a RST exactly at RCV.NXT ends TIME_WAIT (Linux's default, rfc1337=0); any other RST
 *   is ignored;
 * - a bare ACK exactly at RCV.NXT is taken silently;
 * - a SYN (no ACK) with a sequence number beyond RCV.NXT, or with a timestamp newer
 *   than the last one seen (RFC 6191), ends TIME_WAIT so the caller opens a new
 *   connection on the tuple (RFC 9293 §3.6.1);
 * - anything else (a retransmitted FIN because our ACK was lost, stray data, an old
 *   SYN) is answered with an ACK of RCV.NXT; when it carries an ACK, TIME_WAIT starts
 *   over (a retransmitted FIN restarts it, RFC 9293 §3.10.7.4).
 *
 * Limits: at most `capacity` records (16,384 by default, ~100 bytes each) for the whole
 * stack; when full, the oldest record is recycled to make room (counted), as Linux
 * recycles its oldest buckets past tcp_max_tw_buckets. Recycling only shortens TIME_WAIT
 * for that tuple: a later segment on it gets a RST as an unknown flow, never a refusal
 * of a new connection. Records live in a ring ordered by expiry (a restarted record
 * moves to the newest end), indexed by the flow table's tuple key; the arrays grow by
 * doubling up to `capacity`, so an idle stack holds almost nothing. Expiry is coarse:
 * `nextDeadline` rounds up to whole seconds, so a burst of closes costs one timer per
 * second, not one per connection. Nothing here runs timers.
 */
import { seqGt } from "../wire/seq.js";
import { TcpFlag, type TcpSegment } from "../wire/tcp.js";
import type { TcpOutput } from "./tcp-output.js";

/** What TIME_WAIT needs to answer the guest for a connection that is otherwise gone. */
export interface TimeWaitRecord {
  /** our next sequence number (after our FIN) */
  sndNxt: number;
  /** the guest's next sequence number (after its FIN) */
  rcvNxt: number;
  /** the window field of our ACKs (already scaled down) */
  window: number;
  /** whether timestamps were negotiated; then tsVal = tsOffset + now, tsEcr = tsRecent */
  timestamps: boolean;
  tsOffset: number;
  tsRecent: number;
}

export interface TimeWaitCounters {
  /** connections that entered TIME_WAIT */
  entered: number;
  /** records dropped before their time to make room for newer ones */
  recycled: number;
  /** TIME_WAIT ended early by a new SYN on the tuple */
  reused: number;
  /** ACKs sent from TIME_WAIT (retransmitted FINs and strays) */
  acks: number;
}

export interface TimeWaitAnswer {
  /** the ACK to send back, if any */
  reply: TcpOutput | undefined;
  /** true: the record is gone and the segment (a SYN) may open a new connection */
  reopen: boolean;
}

const { syn: SYN, rst: RST, ack: ACK, fin: FIN } = TcpFlag;
const EMPTY = Buffer.alloc(0);
const firstCapacity = 64;
/** expiry granularity (ms) of `nextDeadline` */
const tick = 1000;

export class TimeWaitTable {
  readonly counters: TimeWaitCounters = { entered: 0, recycled: 0, reused: 0, acks: 0 };
  private readonly index = new Map<string, number>();
  /** ring positions [tail, head) are in use, oldest first; a slot is pos & (cap - 1) */
  private head = 0;
  private tail = 0;
  private cap = 0;
  private keys: (string | undefined)[] = [];
  private sndNxt = new Uint32Array(0);
  private rcvNxt = new Uint32Array(0);
  private tsOffset = new Uint32Array(0);
  private tsRecent = new Uint32Array(0);
  /** window (low 16 bits) | timestamps (bit 16) */
  private meta = new Uint32Array(0);
  private expiry = new Float64Array(0);

  constructor(
    readonly capacity: number,
    readonly timeWaitMs: number,
  ) {}

  /** Records in TIME_WAIT now. */
  get size(): number {
    return this.index.size;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  /** Enters TIME_WAIT for the tuple `key` (replacing any record it had) until now + timeWaitMs. */
  add(key: string, r: TimeWaitRecord, now: number): void {
    if (this.capacity <= 0) return;
    this.remove(key);
    this.counters.entered++;
    this.put(
      key,
      r.sndNxt,
      r.rcvNxt,
      (r.window & 0xffff) | (r.timestamps ? 0x10000 : 0),
      r.tsOffset,
      r.tsRecent,
      now,
    );
  }

  /**
   * Answers a guest segment on the tuple `key` (from `src` to `dst`); undefined when
   * the tuple is not in TIME_WAIT.
   */
  input(key: string, src: number, dst: number, seg: TcpSegment, now: number): TimeWaitAnswer | undefined {
    const slot = this.index.get(key);
    if (slot === undefined) return undefined;
    const rcvNxt = this.rcvNxt[slot] as number;
    const meta = this.meta[slot] as number;
    const ts = (meta & 0x10000) !== 0 && seg.tsVal !== undefined;
    const f = seg.flags;
    const len = seg.payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0);
    if (seg.seq === rcvNxt && (len === 0 || f & RST)) {
      if (f & RST) this.remove(key);
      else if (ts) this.tsRecent[slot] = seg.tsVal as number;
      return { reply: undefined, reopen: false };
    }
    if (
      (f & (SYN | RST | ACK)) === SYN &&
      (seqGt(seg.seq, rcvNxt) || (ts && seqGt(seg.tsVal as number, this.tsRecent[slot] as number)))
    ) {
      this.remove(key);
      this.counters.reused++;
      return { reply: undefined, reopen: true };
    }
    if (f & RST) return { reply: undefined, reopen: false };
    const sndNxt = this.sndNxt[slot] as number;
    const tsOffset = this.tsOffset[slot] as number;
    const tsRecent = this.tsRecent[slot] as number;
    if (f & ACK) {
      // TIME_WAIT starts over: the record moves to the newest end of the ring
      this.remove(key);
      this.put(key, sndNxt, rcvNxt, meta, tsOffset, tsRecent, now);
    }
    this.counters.acks++;
    const reply: TcpSegment = {
      srcPort: seg.dstPort,
      dstPort: seg.srcPort,
      seq: sndNxt,
      ack: rcvNxt,
      flags: ACK,
      window: meta & 0xffff,
      urgent: 0,
      payload: EMPTY,
    };
    if (meta & 0x10000) {
      reply.tsVal = (tsOffset + Math.floor(now)) >>> 0;
      reply.tsEcr = tsRecent;
    }
    return { reply: { src: dst >>> 0, dst: src >>> 0, seg: reply }, reopen: false };
  }

  /** Forgets the record for `key`; false if there was none. */
  remove(key: string): boolean {
    const slot = this.index.get(key);
    if (slot === undefined) return false;
    this.index.delete(key);
    this.keys[slot] = undefined;
    return true;
  }

  /** Ends TIME_WAIT for every record whose time is up. */
  expire(now: number): void {
    while (this.tail < this.head) {
      const slot = this.tail & (this.cap - 1);
      const key = this.keys[slot];
      if (key !== undefined) {
        if ((this.expiry[slot] as number) > now) return;
        this.index.delete(key);
        this.keys[slot] = undefined;
      }
      this.tail++;
    }
  }

  /** When `expire` next has work (rounded up to a whole second); undefined when empty. */
  nextDeadline(): number | undefined {
    while (this.tail < this.head) {
      const slot = this.tail & (this.cap - 1);
      if (this.keys[slot] !== undefined) return Math.ceil((this.expiry[slot] as number) / tick) * tick;
      this.tail++;
    }
    return undefined;
  }

  private put(
    key: string,
    sndNxt: number,
    rcvNxt: number,
    meta: number,
    tsOffset: number,
    tsRecent: number,
    now: number,
  ): void {
    if (this.index.size >= this.capacity) this.recycle(true);
    if (this.head - this.tail >= this.cap) {
      if (this.cap < pow2AtLeast(this.capacity)) this.grow();
      else this.recycle(false);
    }
    const slot = this.head & (this.cap - 1);
    this.head++;
    this.keys[slot] = key;
    this.sndNxt[slot] = sndNxt;
    this.rcvNxt[slot] = rcvNxt;
    this.meta[slot] = meta;
    this.tsOffset[slot] = tsOffset;
    this.tsRecent[slot] = tsRecent;
    this.expiry[slot] = now + this.timeWaitMs;
    this.index.set(key, slot);
  }

  /**
   * Drops the oldest ring position: the oldest record (counted as recycled) and the
   * holes before it when `record`, else just the position, record or hole.
   */
  private recycle(record: boolean): void {
    while (this.tail < this.head) {
      const slot = this.tail & (this.cap - 1);
      const key = this.keys[slot];
      this.tail++;
      if (key !== undefined) {
        this.index.delete(key);
        this.keys[slot] = undefined;
        this.counters.recycled++;
        return;
      }
      if (!record) return;
    }
  }

  /** Doubles the ring (up to `capacity`, rounded to a power of two); positions keep their order. */
  private grow(): void {
    const cap = this.cap === 0 ? Math.min(firstCapacity, pow2AtLeast(this.capacity)) : this.cap * 2;
    const keys: (string | undefined)[] = new Array(cap);
    const sndNxt = new Uint32Array(cap);
    const rcvNxt = new Uint32Array(cap);
    const meta = new Uint32Array(cap);
    const tsOffset = new Uint32Array(cap);
    const tsRecent = new Uint32Array(cap);
    const expiry = new Float64Array(cap);
    for (let pos = this.tail; pos < this.head; pos++) {
      const from = pos & (this.cap - 1);
      const key = this.keys[from];
      if (key === undefined) continue;
      const to = pos & (cap - 1);
      keys[to] = key;
      sndNxt[to] = this.sndNxt[from] as number;
      rcvNxt[to] = this.rcvNxt[from] as number;
      meta[to] = this.meta[from] as number;
      tsOffset[to] = this.tsOffset[from] as number;
      tsRecent[to] = this.tsRecent[from] as number;
      expiry[to] = this.expiry[from] as number;
      this.index.set(key, to);
    }
    this.cap = cap;
    this.keys = keys;
    this.sndNxt = sndNxt;
    this.rcvNxt = rcvNxt;
    this.meta = meta;
    this.tsOffset = tsOffset;
    this.tsRecent = tsRecent;
    this.expiry = expiry;
  }
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
