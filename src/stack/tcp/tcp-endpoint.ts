/**
 * The guest-facing TCP endpoint: one connection between a guest and the remote address
 * the guest talks to, which this endpoint impersonates (usernet is a NAT like slirp: the
 * relay carries the bytes on to a host socket). Sans-I/O: segments and time in, segments
 * and events out.
 *
 * Theory of operation
 * -------------------
 * Calls: `onSegment(seg, now)` for each segment from the guest, `onTimer(now)` once
 * `now >= step.deadline`, and from the relay `accept` (host connect succeeded: send the
 * SYN-ACK), `refuse` (host refused: RST), `write` (host bytes for the guest), `consume`
 * (the relay has passed n guest bytes on to the host), `shutdownWrite` (host EOF: FIN
 * after the queued data) and `abort` (RST). Every call returns a `TcpStep`:
 * `send` — segments for the guest with their IPv4 addresses (src = the remote address,
 * dst = the guest); `events` — what the relay must act on; `deadline` — when to call
 * `onTimer` next (absent: no timer pending). Only the driver owns setTimeout.
 *
 * Events: `connect-request` (a guest SYN arrived: connect to the host, then call accept
 * or refuse); `established`; `data` (in-order guest bytes — *views* on the guest's
 * segment payload, valid as long as the caller keeps that frame unmodified: copy before
 * reusing the frame buffer; bytes that waited in the out-of-order queue are copies);
 * `writable` (the send buffer, which refused part of an earlier `write`, has at least
 * half its capacity free again: resume the host socket); `eof` (guest FIN: shut down the
 * host socket's write side); `time-wait` (both FINs are through and ours was first: the
 * owner may take `timeWaitRecord()` and drop the endpoint, see time-wait.ts); `reset` (the connection was aborted: reason "guest" for a
 * guest RST, "refused" for a RST answering our SYN, "timeout" when retransmission gave
 * up); `closed` (the flow can be freed; every endpoint emits it exactly once, last).
 *
 * Backpressure: `write` takes only what fits in the bounded send buffer (acknowledged
 * bytes leave it); the relay pauses its host socket on a short write and resumes on
 * `writable`. The other way, delivered guest bytes count against the receive buffer until
 * the relay `consume`s them: the advertised window re-opens only then, so a slow host
 * stops the guest. With a buffer budget (guest-bounds.ts ByteBudget, set by the flow
 * table) both count against the guest's budget too: each append to the send buffer is
 * charged, each ACK that drops bytes releases them, and the rest goes when the
 * connection leaves the table (`uncharge`). `write` still takes what fits in the send
 * buffer; the relay asks `budgetRoom` and stops reading the host until `awaitBudget`
 * wakes it, and lent space never reaches past the budget's room.
 *
 * Handshake: the guest's MSS, window scale, SACK-permitted and timestamps are honoured
 * and answered as tcp-options.ts says. The SYN-ACK goes out only on `accept()`; a
 * retransmitted SYN before that is absorbed. ISN and the timestamp offset come from the
 * injected `random` source.
 *
 * Receiving: segments are checked for acceptability and trimmed to the window
 * (receive-window.ts: the buffer, the window we advertise and its scaling); data past
 * a hole waits in a bounded out-of-order queue (copied) and we answer at once with SACK
 * blocks when permitted. ACKs are delayed: every second full-sized segment is acked at
 * once, otherwise after `delayedAckMs` (40 ms); out-of-order data, duplicates and a filled
 * hole are acked at once. The guest's FIN is acked at once when it ends our side too;
 * one that half-closes an open connection waits like data (Linux does the same), so
 * the host's FIN, usually close behind, carries the ACK. `consume` sends a window update
 * at once only when receive-window.ts says the guest is running out of window.
 *
 * Sending: segments of the guest's MSS minus the timestamp option (12 bytes), within
 * min(send window, cwnd); PSH on the segment that empties the buffer. No Nagle (the host
 * side has already batched) but sender SWS avoidance: while data is in flight, a short
 * segment waits unless it is the tail of the buffer or at least half the largest window
 * the guest offered. A zero window with data waiting arms the persist timer, which sends
 * window probes (an ACK with sequence number SND.UNA - 1, as Linux does) with
 * exponential backoff for as long as the guest answers.
 *
 * Retransmission and congestion control (RFC 6298 RTO, RFC 5681 with NewReno recovery,
 * giving up after `maxRetransmits` timeouts, `userTimeoutMs` or `synRetries`) are
 * congestion.ts's: the endpoint sends what it decides. A timeout goes back to SND.UNA;
 * giving up sends RST, then `reset` ("timeout"), `closed`.
 *
 * Closing: each direction closes on its own (guest FIN → `eof`, we keep sending; host EOF
 * → our FIN after the data); simultaneous close goes through CLOSING. Entering TIME_WAIT
 * emits `time-wait`: the stack then keeps only a `TimeWaitRecord` (time-wait.ts), which
 * re-acks a retransmitted FIN and lets a new SYN reuse the tuple, and forgets the
 * endpoint. An endpoint kept on its own lingers `timeWaitMs` (60 s; a retransmitted FIN
 * is re-acked and restarts it) and then emits `closed`. FIN_WAIT_2 (our FIN acked, the guest still open) ends after
 * `finWait2TimeoutMs` (60 s) without any segment from the guest: RST, `reset`, `closed`.
 * A guest RST is honoured only at exactly RCV.NXT; in the window it draws a challenge
 * ACK, outside it is dropped (RFC 5961 §3); a SYN on an open connection draws a challenge
 * ACK (§4); ACKs for data never sent or far too old are answered and dropped (§5).
 *
 * Not done: SACK-based loss recovery and ECN (see congestion.ts), PAWS and Fast Open
 * (see tcp-options.ts), challenge-ACK rate limiting, urgent data (the URG flag and
 * pointer are ignored), keepalives (the relay's business), data on a SYN (dropped; the
 * guest retransmits it).
 */
import type { ByteBudget } from "../guest-bounds.js";
import type { Ipv6Address } from "../wire/ipv6-addr.js";
import { seqAdd, seqGe, seqGt, seqLe, seqMax, seqSub } from "../wire/seq.js";
import { TcpFlag, type TcpSegment } from "../wire/tcp.js";
import { Congestion, type CongestionOptions } from "./congestion.js";
import { ReassemblyQueue } from "./reassembly-queue.js";
import { ReceiveWindow } from "./receive-window.js";
import { rtoDefaults } from "./rto.js";
import { SendBuffer } from "./send-buffer.js";
import {
  DEFAULT_GUEST_MSS,
  MAX_WINDOW_SHIFT,
  NegotiatedOptions,
  type TcpOptionsOffer,
} from "./tcp-options.js";
import type { TcpOutput } from "./tcp-output.js";
import type { TimeWaitRecord } from "./time-wait.js";

export type TcpState =
  | "listen"
  | "syn-sent"
  | "syn-received"
  | "established"
  | "fin-wait-1"
  | "fin-wait-2"
  | "closing"
  | "time-wait"
  | "close-wait"
  | "last-ack"
  | "closed";

/**
 * The connection's addresses: the guest's, and the remote one this endpoint plays.
 * IPv4 addresses are numbers; an IPv6 connection carries its addresses in
 * `guestAddr6`/`remoteAddr6` (copies, never frame views) and 0 in the numbers, so the
 * IPv4 paths compare numbers only.
 */
export interface TcpTuple {
  guestAddr: number;
  guestPort: number;
  remoteAddr: number;
  remotePort: number;
  /** IPv6 only: the guest's address */
  guestAddr6?: Ipv6Address;
  /** IPv6 only: the remote address this endpoint plays */
  remoteAddr6?: Ipv6Address;
}

export type { TcpOutput };

export type TcpResetReason = "guest" | "refused" | "timeout";

export type TcpEvent =
  | { type: "connect-request" }
  | { type: "established" }
  | { type: "data"; data: Buffer }
  | { type: "writable" }
  | { type: "eof" }
  | { type: "reset"; reason: TcpResetReason }
  | { type: "time-wait" }
  | { type: "closed" };

export interface TcpStep {
  send: TcpOutput[];
  events: TcpEvent[];
  /** call onTimer at or after this time (ms); absent when no timer runs */
  deadline?: number;
}

export interface TcpEndpointOptions extends CongestionOptions, TcpOptionsOffer {
  /** bytes from the host held until the guest acks them */
  sendBufferSize: number;
  /** guest bytes in flight to the host (delivered, not consumed) plus the open window */
  recvBufferSize: number;
  delayedAckMs: number;
  timeWaitMs: number;
  finWait2TimeoutMs: number;
  /** a uniformly random uint32 (ISN, timestamp offset) */
  random: () => number;
  /**
   * Segmentation offload, shared by the stack's endpoints and changed while they live:
   * while `maxBytes` exceeds the MSS, one emitted segment may carry up to that many
   * bytes (a whole number of MSS) for the link to split (TSO towards an offloading TAP).
   */
  segmentOffload?: { readonly maxBytes: number };
  /** where the endpoint counts its recovery events; a stack shares one among its endpoints */
  counters?: TcpEndpointCounters;
}

/** Loss and reordering, as `nstat`'s Tcp/TcpExt counters show them for a kernel. */
export interface TcpEndpointCounters {
  /** segments (data, FIN, SYN or SYN-ACK) sent to the guest again */
  retransmittedSegments: number;
  /** retransmission timer expirations (RFC 6298 §5.4) */
  timeouts: number;
  /** fast retransmits on the third duplicate ACK (RFC 5681 §3.2) */
  fastRetransmits: number;
  /** guest segments that arrived beyond a hole and were held (RFC 9293 §3.10.7.4) */
  outOfOrderSegments: number;
  /** guest segments that carried nothing new (already received, or beyond the window) */
  duplicateSegments: number;
  /** probes sent into a zero window (RFC 9293 §3.8.6.1) */
  windowProbes: number;
}

export function newTcpEndpointCounters(): TcpEndpointCounters {
  return {
    retransmittedSegments: 0,
    timeouts: 0,
    fastRetransmits: 0,
    outOfOrderSegments: 0,
    duplicateSegments: 0,
    windowProbes: 0,
  };
}

// getRandomValues has a fixed cost per call (2% of the CPU of a connection-rate run at
// one call per value, two values per connection): values come from a batch instead.
const randomPool = new Uint32Array(512);
let randomLeft = 0;
const defaultRandom = (): number => {
  if (randomLeft === 0) {
    globalThis.crypto.getRandomValues(randomPool);
    randomLeft = randomPool.length;
  }
  randomLeft -= 1;
  return randomPool[randomLeft] ?? 0;
};

export const tcpEndpointDefaults: TcpEndpointOptions = Object.freeze({
  ...rtoDefaults,
  sendBufferSize: 1024 * 1024,
  recvBufferSize: 1024 * 1024,
  mss: 1460,
  windowScale: 7,
  sack: true,
  timestamps: true,
  delayedAckMs: 40,
  timeWaitMs: 60_000,
  finWait2TimeoutMs: 60_000,
  maxRetransmits: 15,
  userTimeoutMs: 120_000,
  synRetries: 5,
  initialWindowSegments: 10,
  random: defaultRandom,
});

const { fin: FIN, syn: SYN, rst: RST, psh: PSH, ack: ACK } = TcpFlag;
/** segments over this many bytes are cut where the send buffer's ring wraps (see sendOne) */
const contiguousCutMin = 8192;
/** a hard bound on segments one call emits, beyond what windows already bound */
const MAX_BURST = 4096;
/**
 * host reads go straight into the send buffer only with this much room (else via a
 * copy): little, as the room before the ring's end is often small, and a short read
 * there costs far less than copying a whole one
 */
const lendMinBytes = 4 * 1024;
/** and at most this much per read, as the relay's shared read buffer */
const lendMaxBytes = 256 * 1024;

export class TcpEndpoint {
  state: TcpState;
  private readonly o: TcpEndpointOptions;
  private readonly count: TcpEndpointCounters;
  private readonly cc: Congestion;
  private readonly rcv: ReceiveWindow;
  private readonly opt: NegotiatedOptions;
  private readonly sendBuf: SendBuffer;
  private readonly ooo = new ReassemblyQueue();

  // send side (names as in RFC 9293)
  private iss = 0;
  private sndUna = 0;
  private sndNxt = 0;
  /** the highest sequence number sent + 1 (sndNxt goes back to sndUna on timeout) */
  private sndMax = 0;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  /** sequence number of the first byte in sendBuf */
  private bufSeq = 0;
  private finQueued = false;
  private finSent = false;
  private writeBlocked = false;
  /** the budget host bytes in sendBuf are charged to (guest-bounds.ts), its guest, and what is charged */
  private budget: ByteBudget | undefined;
  private budgetGuest = 0;
  private sndCharged = 0;

  // receive side
  private irs = 0;
  private rcvNxt = 0;
  private pendingFin: number | undefined;
  private finReceived = false;
  private largestRcvSeg = 0;
  private fullSegsUnacked = 0;
  private ackNow = false;
  private accepted = false;

  // timers (absolute ms; the retransmission timer is the congestion control's)
  private delackAt: number | undefined;
  private persistAt: number | undefined;
  private timeWaitAt: number | undefined;
  private finWait2At: number | undefined;
  private persistBackoff = 0;

  /** the time of the call being handled (ms) */
  private now = 0;
  /** window probes sent without any ACK in between */
  private probesUnanswered = 0;

  // the step being built
  private out: TcpOutput[] = [];
  private ev: TcpEvent[] = [];

  private constructor(
    readonly tuple: TcpTuple,
    options: Partial<TcpEndpointOptions>,
  ) {
    this.o = { ...tcpEndpointDefaults, ...options };
    // `mss` is the IPv4 one (MTU - 40); over IPv6 the header is 20 bytes longer (MTU - 60)
    if (tuple.guestAddr6 !== undefined) this.o.mss -= 20;
    this.o.windowScale = Math.max(0, Math.min(MAX_WINDOW_SHIFT, this.o.windowScale));
    this.count = this.o.counters ?? newTcpEndpointCounters();
    this.cc = new Congestion(this.o);
    this.rcv = new ReceiveWindow(this.o.recvBufferSize, this.o.mss);
    this.opt = new NegotiatedOptions(this.o);
    this.sendBuf = new SendBuffer(this.o.sendBufferSize);
    this.state = "listen";
  }

  /** A passive endpoint: feed it the guest's SYN through `onSegment`. */
  static listen(tuple: TcpTuple, options: Partial<TcpEndpointOptions> = {}): TcpEndpoint {
    return new TcpEndpoint(tuple, options);
  }

  /** An active open towards the guest (port forwards): sends the SYN. */
  static connect(
    tuple: TcpTuple,
    options: Partial<TcpEndpointOptions>,
    now: number,
  ): { endpoint: TcpEndpoint; step: TcpStep } {
    const ep = new TcpEndpoint(tuple, options);
    ep.now = now;
    ep.chooseIss();
    ep.state = "syn-sent";
    ep.sendSyn(now, false);
    return { endpoint: ep, step: ep.step() };
  }

  // ---- public accessors (for the relay, stats and tests) ----

  /** Bytes `write` would accept now. */
  get writeSpace(): number {
    return this.finQueued || this.state === "closed" ? 0 : this.sendBuf.free;
  }
  /** The current retransmission timeout (ms). */
  get rto(): number {
    return this.cc.rto;
  }
  get srtt(): number | undefined {
    return this.cc.rtt.srtt;
  }
  get rttvar(): number | undefined {
    return this.cc.rtt.rttvar;
  }
  get congestionWindow(): number {
    return this.cc.cwnd;
  }
  get slowStartThreshold(): number {
    return this.cc.ssthresh;
  }
  /** Negotiated options, for stats. */
  get negotiated(): {
    sendMss: number;
    sendShift: number;
    recvShift: number;
    sack: boolean;
    timestamps: boolean;
  } {
    const opt = this.opt;
    return {
      sendMss: opt.sndMss,
      sendShift: opt.sndShift,
      recvShift: opt.rcvShift,
      sack: opt.sack,
      timestamps: opt.ts,
    };
  }

  /** What answers the guest in TIME_WAIT once this endpoint is dropped (after `time-wait`). */
  timeWaitRecord(): TimeWaitRecord {
    return {
      sndNxt: this.sndMax,
      rcvNxt: this.rcvNxt,
      window: this.rcv.scaledSpace(),
      timestamps: this.opt.ts,
      tsOffset: this.opt.tsOffset,
      tsRecent: this.opt.tsRecent,
    };
  }

  // ---- relay-facing calls ----

  /** The host connect succeeded: send the SYN-ACK. */
  accept(now: number): TcpStep {
    this.now = now;
    if (this.state === "syn-received" && !this.accepted) {
      this.accepted = true;
      this.chooseIss();
      this.sendSyn(now, true);
    }
    return this.step();
  }

  /** The host refused: RST the guest's SYN and close. */
  refuse(now: number): TcpStep {
    this.now = now;
    if (this.state === "syn-received" && !this.accepted) {
      this.emitRst(0, this.rcvNxt, true);
      this.close();
    }
    return this.step();
  }

  /** Queues host bytes for the guest; takes only what fits (see `writable`). */
  write(data: Buffer, now: number): TcpStep & { accepted: number } {
    return this.takeHostBytes(data.length, now, () => this.sendBuf.push(data));
  }

  /** Whether host bytes may still be queued (no FIN queued, not closed). */
  private takesHostBytes(): boolean {
    return !this.finQueued && this.state !== "closed" && this.state !== "time-wait";
  }

  /** `write` and `writeLent`: n bytes offered, `put` queues what fits and says how many. */
  private takeHostBytes(n: number, now: number, put: () => number): TcpStep & { accepted: number } {
    this.now = now;
    let accepted = 0;
    if (this.takesHostBytes()) {
      accepted = put();
      if (accepted < n) this.writeBlocked = true;
      if (this.budget !== undefined && accepted > 0) {
        this.budget.take(this.budgetGuest, accepted);
        this.sndCharged += accepted;
      }
      this.output(now);
    }
    return { ...this.step(), accepted };
  }

  /**
   * Send-buffer space for host bytes to be read straight into (SendBuffer.lend), then
   * given to `writeLent`; undefined when there is none (a small buffer, little room,
   * or no more writes).
   */
  lendSendSpace(): Buffer | undefined {
    if (!this.takesHostBytes()) return undefined;
    const max =
      this.budget === undefined ? lendMaxBytes : Math.min(lendMaxBytes, this.budget.room(this.budgetGuest));
    return max < lendMinBytes ? undefined : this.sendBuf.lend(lendMinBytes, max);
  }

  /**
   * True when the send buffer is (nearly) full: the caller should stop reading the host
   * until `writable`, which follows as after a short `write`.
   */
  awaitSendRoom(): boolean {
    if (this.sendBuf.free >= lendMinBytes) return false;
    this.writeBlocked = true;
    return true;
  }

  /** Bytes the guest's buffer budget has room for now (unbounded without a budget). */
  budgetRoom(): number {
    return this.budget === undefined ? Number.POSITIVE_INFINITY : this.budget.room(this.budgetGuest);
  }

  /** Calls `wake` once when the guest's budget has room again (ByteBudget.wait); at once without a budget. */
  awaitBudget(wake: () => void): void {
    if (this.budget === undefined) wake();
    else this.budget.wait(this.budgetGuest, wake);
  }

  /** `write` for n host bytes read into a view from `lendSendSpace` (copied only if the buffer moved). */
  writeLent(view: Buffer, n: number, now: number): TcpStep & { accepted: number } {
    return this.takeHostBytes(n, now, () => this.sendBuf.commitLent(view, n));
  }

  /** The relay passed n bytes of guest data on to the host: the window may re-open. */
  consume(n: number, now: number): TcpStep {
    this.now = now;
    this.rcv.consume(n);
    if (this.synchronized() && !this.finReceived) {
      if (this.rcv.updateIsUrgent(this.rcvNxt)) this.ackNow = true;
      this.output(now);
    }
    return this.step();
  }

  /** The host sent EOF: FIN after the queued data. */
  shutdownWrite(now: number): TcpStep {
    this.now = now;
    if (!this.finQueued && this.state !== "closed" && this.state !== "listen") {
      this.finQueued = true;
      this.output(now);
    }
    return this.step();
  }

  /** Resets the connection (the relay gives up on it). */
  abort(now: number): TcpStep {
    this.now = now;
    if (this.state !== "closed") {
      if (this.state === "syn-received" && !this.accepted) this.emitRst(0, this.rcvNxt, true);
      else if (this.state !== "listen" && this.state !== "time-wait")
        this.emitRst(this.sndMax, this.rcvNxt, this.state !== "syn-sent");
      this.close();
    }
    return this.step();
  }

  // ---- segments from the guest ----

  onSegment(seg: TcpSegment, now: number): TcpStep {
    this.now = now;
    switch (this.state) {
      case "closed":
        break;
      case "listen":
        this.onListen(seg);
        break;
      case "syn-sent":
        this.onSynSent(seg, now);
        break;
      default:
        this.onSynchronized(seg, now);
    }
    return this.step();
  }

  private onListen(seg: TcpSegment): void {
    if (seg.flags & RST) return;
    if (seg.flags & ACK) {
      this.emitRst(seg.ack, 0, false);
      this.close();
      return;
    }
    if (!(seg.flags & SYN)) return;
    this.takeSyn(seg, true);
    this.state = "syn-received";
    this.ev.push({ type: "connect-request" });
  }

  private onSynSent(seg: TcpSegment, now: number): void {
    const f = seg.flags;
    if (f & ACK && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if (!(f & RST)) this.emitRst(seg.ack, 0, false);
      return;
    }
    if (f & RST) {
      if (f & ACK) this.reset("refused");
      return;
    }
    if (!(f & SYN)) return;
    this.takeSyn(seg, false);
    if (f & ACK) {
      this.synAcked(seg, now);
      this.ackNow = true;
      this.output(now);
    } else {
      // simultaneous open
      this.state = "syn-received";
      this.accepted = true;
      this.sendSyn(now, true, true);
    }
  }

  private onSynchronized(seg: TcpSegment, now: number): void {
    const f = seg.flags;
    if (this.state === "syn-received" && !this.accepted) {
      // waiting for the host: absorb retransmitted SYNs, honour an exact RST
      if (f & RST && seg.seq === this.rcvNxt) this.reset("guest");
      return;
    }
    if (this.state === "fin-wait-2") this.finWait2At = now + this.o.finWait2TimeoutMs;
    if (this.state === "syn-received" && f & SYN && !(f & (ACK | RST)) && seg.seq === this.irs) {
      this.sendSyn(now, true, true); // the guest lost our SYN-ACK
      return;
    }
    const len = seg.payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0);
    if (!this.acceptable(seg.seq, len)) {
      if (!(f & RST)) this.ackNow = true;
      if (len > 0 && !(f & RST)) this.count.duplicateSegments++;
      if (this.state === "time-wait" && f & FIN) this.timeWaitAt = now + this.o.timeWaitMs;
      this.output(now);
      return;
    }
    if (f & RST) {
      if (seg.seq === this.rcvNxt) this.reset("guest");
      else this.ackNow = true; // challenge ACK (RFC 5961 §3.2)
      this.output(now);
      return;
    }
    if (f & SYN) {
      this.ackNow = true; // challenge ACK (RFC 5961 §4)
      this.output(now);
      return;
    }
    if (!(f & ACK)) return;
    this.opt.noteTsVal(seg);

    if (this.state === "syn-received") {
      if (seg.ack !== seqAdd(this.iss, 1)) {
        this.emitRst(seg.ack, 0, false);
        return;
      }
      this.synAcked(seg, now);
    } else if (!this.processAck(seg, now)) {
      this.output(now);
      return;
    }
    if (this.state === "closed") return;
    this.processData(seg, now);
    this.output(now);
  }

  /** The guest acked our SYN or SYN-ACK (acceptably): established. */
  private synAcked(seg: TcpSegment, now: number): void {
    this.sndUna = seg.ack;
    this.bufSeq = seg.ack;
    this.sampleRtt(seg, now);
    this.cc.synAcked();
    this.updateWindow(seg, true);
    this.state = "established";
    this.cc.establish(this.opt.sndMss);
    this.ev.push({ type: "established" });
  }

  /** RFC 9293 §3.10.7.4 first check, Linux-style: some of the segment must be new and in the window. */
  private acceptable(seq: number, len: number): boolean {
    const end = seqAdd(seq, len);
    const wndEnd = seqAdd(this.rcvNxt, Math.max(this.rcv.window(this.rcvNxt), 0));
    if (len === 0) return seqGe(seq, this.rcvNxt) && seqLe(seq, wndEnd);
    return seqGt(end, this.rcvNxt) && seqLe(seq, wndEnd);
  }

  /** ACK processing in synchronized states; false when the segment is to be dropped. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      this.ackNow = true; // acks what we never sent
      return false;
    }
    if (seqSub(ack, this.sndUna) < -Math.max(this.maxSndWnd, this.opt.sndMss)) {
      this.ackNow = true; // challenge ACK (RFC 5961 §5.2)
      return false;
    }
    const oldWnd = this.sndWnd;
    this.probesUnanswered = 0;
    if (seqGt(ack, this.sndUna)) this.newAck(seg, now);
    else if (
      ack === this.sndUna &&
      seg.payload.length === 0 &&
      !(seg.flags & (SYN | FIN)) &&
      this.sndMax !== this.sndUna &&
      seg.window << this.opt.sndShift === oldWnd &&
      this.cc.dupAck(this.sndUna, this.sndMax, this.opt.sndMss)
    ) {
      this.count.fastRetransmits++;
      this.retransmitFirst(now);
    }
    this.updateWindow(seg, false);
    if (this.sndWnd > 0 && this.persistAt !== undefined) {
      this.persistAt = undefined;
      this.persistBackoff = 0;
    }
    const finAcked = this.finSent && seqGe(this.sndUna, seqAdd(this.finSeq(), 1));
    switch (this.state) {
      case "fin-wait-1":
        if (finAcked) {
          this.state = "fin-wait-2";
          this.finWait2At = now + this.o.finWait2TimeoutMs;
        }
        break;
      case "closing":
        if (finAcked) this.enterTimeWait(now);
        break;
      case "last-ack":
        if (finAcked) {
          this.close();
          return false;
        }
        break;
      default:
    }
    return true;
  }

  private newAck(seg: TcpSegment, now: number): void {
    const ack = seg.ack;
    const acked = seqSub(ack, this.sndUna);
    this.sampleRtt(seg, now);
    const dataEnd = seqAdd(this.bufSeq, this.sendBuf.length);
    const dataAcked = seqSub(seqGe(ack, dataEnd) ? dataEnd : ack, this.bufSeq);
    if (dataAcked > 0) {
      this.sendBuf.drop(dataAcked);
      this.bufSeq = seqAdd(this.bufSeq, dataAcked);
      if (this.sndCharged > 0) {
        const k = Math.min(dataAcked, this.sndCharged);
        this.sndCharged -= k;
        this.budget?.release(this.budgetGuest, k);
      }
    }
    const flight = seqSub(this.sndMax, this.sndUna);
    this.sndUna = ack;
    if (seqGt(ack, this.sndNxt)) this.sndNxt = ack;
    if (this.cc.newAck(acked, flight, ack, this.opt.sndMss)) this.retransmitFirst(now);
    if (this.sndUna === this.sndMax) this.cc.stop();
    else this.cc.restart(now);
    if (this.writeBlocked && this.sendBuf.free >= this.o.sendBufferSize / 2 && !this.finQueued) {
      this.writeBlocked = false;
      this.ev.push({ type: "writable" });
    }
  }

  private processData(seg: TcpSegment, now: number): void {
    const canReceive =
      this.state === "established" || this.state === "fin-wait-1" || this.state === "fin-wait-2";
    const hasFin = (seg.flags & FIN) !== 0;
    const payload = seg.payload;
    if (!canReceive) {
      // after the guest's FIN: only a retransmitted FIN matters
      if (payload.length > 0 || hasFin) this.ackNow = true;
      if (this.state === "time-wait" && hasFin) this.timeWaitAt = now + this.o.timeWaitMs;
      return;
    }
    if (payload.length === 0 && !hasFin) return;
    let start = seg.seq;
    let data = payload;
    const before = seqSub(this.rcvNxt, start);
    if (before > 0) {
      data = data.subarray(Math.min(before, data.length));
      start = this.rcvNxt;
    }
    const room = seqSub(seqAdd(this.rcvNxt, this.rcv.window(this.rcvNxt)), start);
    let fin = hasFin;
    if (data.length > room) {
      data = data.subarray(0, Math.max(0, room));
      fin = false;
      this.ackNow = true; // the guest overran the window: tell it where the edge is
    }
    const finSeq = seqAdd(seg.seq, payload.length);
    if (data.length === 0 && (!fin || seqGt(finSeq, this.rcvNxt))) {
      this.ackNow = true; // a duplicate, or nothing fits: tell the guest where we are
      this.count.duplicateSegments++;
      if (fin) this.pendingFin = finSeq;
      return;
    }
    if (start === this.rcvNxt) {
      if (data.length > 0) {
        this.deliver(data);
        this.largestRcvSeg = Math.max(this.largestRcvSeg, data.length);
        // "full-sized" against the guest's largest segment so far (at least 536, like Linux)
        const full = data.length >= Math.min(this.rcv.mss, Math.max(this.largestRcvSeg, DEFAULT_GUEST_MSS));
        if (!this.ooo.empty) {
          for (const piece of this.ooo.take(this.rcvNxt)) this.deliver(piece);
          this.ackNow = true; // a hole filled (RFC 5681 §4.2)
        }
        if (full) this.fullSegsUnacked++;
        if (this.fullSegsUnacked >= 2) this.ackNow = true;
        else if (this.delackAt === undefined) this.delackAt = now + this.o.delayedAckMs;
      }
      if (fin) this.pendingFin = finSeq;
    } else {
      this.ooo.insert(start, data, this.rcvNxt);
      this.count.outOfOrderSegments++;
      if (fin) this.pendingFin = finSeq;
      this.ackNow = true;
    }
    if (this.pendingFin !== undefined && this.pendingFin === this.rcvNxt) this.receiveFin(now);
  }

  private deliver(data: Buffer): void {
    this.rcvNxt = seqAdd(this.rcvNxt, data.length);
    this.rcv.deliver(data.length);
    this.ev.push({ type: "data", data });
  }

  private receiveFin(now: number): void {
    this.pendingFin = undefined;
    this.finReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ooo.clear();
    this.ev.push({ type: "eof" });
    switch (this.state) {
      case "established":
        // As Linux does (pingpong mode on FIN): the ACK waits up to the delayed-ACK
        // time, so the host's answer (usually its own FIN, a loop turn later) carries
        // it and the guest gets one segment instead of two.
        this.state = "close-wait";
        if (this.delackAt === undefined) this.delackAt = now + this.o.delayedAckMs;
        break;
      case "fin-wait-1":
        // our FIN is unacked here, or processAck would have moved us to fin-wait-2
        this.state = "closing";
        this.ackNow = true;
        break;
      case "fin-wait-2":
        this.enterTimeWait(now);
        this.ackNow = true;
        break;
      default:
        this.ackNow = true;
    }
  }

  // ---- timers ----

  onTimer(now: number): TcpStep {
    this.now = now;
    if (this.timeWaitAt !== undefined && now >= this.timeWaitAt) {
      this.close();
      return this.step();
    }
    if (this.finWait2At !== undefined && now >= this.finWait2At && this.state === "fin-wait-2") {
      this.giveUp();
      return this.step();
    }
    const rtxAt = this.cc.rtxAt;
    if (rtxAt !== undefined && now >= rtxAt) this.onRetransmitTimer(now);
    if (this.state !== "closed" && this.persistAt !== undefined && now >= this.persistAt) {
      this.onPersistTimer(now);
    }
    if (this.state !== "closed" && this.delackAt !== undefined && now >= this.delackAt) {
      this.ackNow = true;
      this.output(now);
    }
    return this.step();
  }

  private onRetransmitTimer(now: number): void {
    this.count.timeouts++;
    const syn = this.state === "syn-sent" || this.state === "syn-received";
    const flight = seqSub(this.sndMax, this.sndUna);
    if (this.cc.timeout(now, syn, flight, this.sndMax, this.opt.sndMss)) {
      if (this.state === "syn-sent") this.reset("timeout");
      else this.giveUp();
      return;
    }
    if (syn) {
      this.sendSyn(now, this.state === "syn-received", true);
      return;
    }
    this.sndNxt = this.sndUna;
    this.retransmitFirst(now);
    this.output(now);
  }

  private onPersistTimer(now: number): void {
    this.persistAt = undefined;
    if (this.sndWnd > 0 || this.sendBuf.length === 0) return;
    this.persistBackoff++;
    this.probesUnanswered++;
    if (this.probesUnanswered > this.o.maxRetransmits) {
      this.giveUp();
      return;
    }
    // a window probe: an old sequence number makes the guest answer with its window
    this.count.windowProbes++;
    this.emit(ACK, seqAdd(this.sndUna, -1), EMPTY);
    this.persistAt = now + this.cc.backedOff(this.persistBackoff);
  }

  // ---- output ----

  /** Sends what the windows allow, then a bare ACK if one is still owed. */
  private output(now: number): void {
    if (this.dataStates()) {
      for (let n = 0; n < MAX_BURST; n++) if (!this.sendOne(now)) break;
      if (
        this.sndWnd === 0 &&
        this.sndNxt === this.sndUna &&
        this.sendBuf.length > seqSub(this.sndNxt, this.bufSeq) &&
        this.cc.rtxAt === undefined &&
        this.persistAt === undefined
      ) {
        this.persistAt = now + this.cc.backedOff(this.persistBackoff);
      }
    }
    if (this.ackNow && this.state !== "closed" && this.state !== "listen" && this.state !== "syn-sent") {
      this.emit(ACK, this.sndMax, EMPTY);
    }
  }

  /** Sends the next segment at sndNxt if allowed; false when nothing (more) goes out. */
  private sendOne(now: number): boolean {
    const mss = this.opt.sndMss;
    const off = seqSub(this.sndNxt, this.bufSeq);
    const avail = this.sendBuf.length - off;
    const usable = seqSub(seqAdd(this.sndUna, Math.min(this.sndWnd, this.cc.cwnd)), this.sndNxt);
    const tso = this.o.segmentOffload?.maxBytes ?? 0;
    const most = tso > 2 * mss ? tso - (tso % mss) : mss;
    let len = Math.max(0, Math.min(avail, most, usable));
    if (len > 0 && len < mss && len < avail && this.sndNxt !== this.sndUna && len < this.maxSndWnd / 2) {
      return false; // sender SWS avoidance: wait for a fuller window
    }
    // A large segment ends where the send buffer's ring wraps, so its payload is a view
    // of the ring, not a copy into a fresh 64 KiB buffer; small ones are copied as needed.
    if (len > contiguousCutMin) {
      const run = this.sendBuf.contiguous(off);
      if (run >= contiguousCutMin && run < len) len = run;
    }
    const fin = this.finQueued && off + len === this.sendBuf.length && off <= this.sendBuf.length;
    if (len === 0 && !fin) return false;
    this.sendData(off, len, fin, now);
    return true;
  }

  /** Sends bytes [off, off+len) of the buffer (+FIN) at their sequence number; advances sndNxt. */
  private sendData(off: number, len: number, fin: boolean, now: number): void {
    const seq = seqAdd(this.bufSeq, off);
    const payload = this.sendBuf.read(off, len);
    let flags = ACK;
    if (len > 0 && off + len === this.sendBuf.length) flags |= PSH;
    if (fin) flags |= FIN;
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    const retransmission = seq !== this.sndMax;
    const mss = this.opt.sndMss;
    this.emit(flags, seq, payload, len > mss ? mss : 0);
    if (fin) {
      this.finSent = true;
      if (this.state === "established") this.state = "fin-wait-1";
      else if (this.state === "close-wait") this.state = "last-ack";
    }
    if (seqGt(end, this.sndNxt)) this.sndNxt = end;
    this.sndMax = seqMax(this.sndMax, end);
    this.sent(end, retransmission, now);
    this.cc.arm(now);
  }

  /** Retransmits the segment at sndUna (fast retransmit, partial ACK, timeout). */
  private retransmitFirst(now: number): void {
    const off = seqSub(this.sndUna, this.bufSeq);
    const avail = Math.max(0, this.sendBuf.length - Math.max(0, off));
    // within the guest's window when it is open (Linux does the same): a segment that
    // overran it would only be trimmed and leave a hole; a closed window gets a full one
    const mss = this.opt.sndMss;
    const len = Math.min(avail, mss, this.sndWnd > 0 ? this.sndWnd : mss);
    const fin = this.finSent && len === avail;
    if (len === 0 && !fin) return;
    this.sendData(Math.max(0, off), len, fin, now);
    this.cc.untime();
    this.cc.restart(now);
  }

  /** Emits a segment from the remote to the guest with the usual ACK, window and options. */
  private emit(flags: number, seq: number, payload: Buffer, gsoSize = 0): void {
    const seg = this.segment(
      flags,
      seq,
      flags & ACK ? this.rcvNxt : 0,
      this.rcv.advertise(this.rcvNxt),
      payload,
    );
    const opt = this.opt;
    if (opt.ts) {
      seg.tsVal = opt.tsValue(this.now);
      seg.tsEcr = opt.tsRecent;
    }
    if (opt.sack && !this.ooo.empty) {
      seg.sack = this.ooo.sackBlocks(seg.tsVal !== undefined ? 3 : 4);
    }
    if (flags & ACK) {
      opt.lastAckSent = this.rcvNxt;
      this.ackNow = false;
      this.delackAt = undefined;
      this.fullSegsUnacked = 0;
    }
    this.push(seg, gsoSize);
  }

  private sendSyn(now: number, synAck: boolean, retransmit = false): void {
    const window = synAck ? this.rcv.offerSyn(this.rcvNxt) : this.rcv.synField();
    const seg = this.segment(synAck ? SYN | ACK : SYN, this.iss, synAck ? this.rcvNxt : 0, window, EMPTY);
    this.opt.offer(seg, synAck, now);
    if (synAck) this.opt.lastAckSent = this.rcvNxt;
    this.sndMax = seqMax(this.sndMax, seqAdd(this.iss, 1));
    this.sndNxt = this.sndMax;
    this.push(seg);
    this.sent(this.sndMax, retransmit, now);
    this.cc.restart(now);
  }

  /** Bookkeeping for a segment ending at `end` that went out now: counters and RTT timing. */
  private sent(end: number, retransmission: boolean, now: number): void {
    if (retransmission) this.count.retransmittedSegments++;
    this.cc.sent(end, retransmission, !this.opt.ts, this.opt.tsValue(now), now);
  }

  private emitRst(seq: number, ack: number, withAck: boolean): void {
    this.push(this.segment(withAck ? RST | ACK : RST, seq, withAck ? ack : 0, 0, EMPTY));
  }

  /** A segment from the remote to the guest without options (one shape for all). */
  private segment(flags: number, seq: number, ack: number, window: number, payload: Buffer): TcpSegment {
    return {
      srcPort: this.tuple.remotePort,
      dstPort: this.tuple.guestPort,
      seq,
      ack,
      flags,
      window,
      urgent: 0,
      payload,
    };
  }

  private push(seg: TcpSegment, gsoSize = 0): void {
    const o: TcpOutput = { src: this.tuple.remoteAddr, dst: this.tuple.guestAddr, seg };
    if (gsoSize > 0) o.gsoSize = gsoSize;
    if (this.tuple.guestAddr6 !== undefined) {
      o.src6 = this.tuple.remoteAddr6;
      o.dst6 = this.tuple.guestAddr6;
    }
    this.out.push(o);
  }

  // ---- helpers ----

  private chooseIss(): void {
    this.iss = this.o.random() >>> 0;
    this.opt.tsOffset = this.o.random() >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.bufSeq = seqAdd(this.iss, 1);
    this.cc.start(this.iss);
  }

  /** Sequence numbers and options from the guest's SYN (or SYN-ACK). */
  private takeSyn(seg: TcpSegment, passive: boolean): void {
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.sndWl1 = seg.seq;
    this.opt.fromSyn(seg);
    this.rcv.shift = this.opt.rcvShift;
    this.rcv.mss = this.opt.rcvMss;
    this.sndWnd = seg.window; // never scaled in a SYN
    this.maxSndWnd = this.sndWnd;
    if (!passive) this.rcv.offerSyn(this.rcvNxt);
  }

  private updateWindow(seg: TcpSegment, force: boolean): void {
    if (force || seqGt(seg.seq, this.sndWl1) || (seg.seq === this.sndWl1 && seqGe(seg.ack, this.sndWl2))) {
      this.sndWnd = seg.flags & SYN ? seg.window : seg.window << this.opt.sndShift;
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
    }
  }

  private sampleRtt(seg: TcpSegment, now: number): void {
    const opt = this.opt;
    this.cc.sampleAck(seg.ack, opt.ts ? seg.tsEcr : undefined, opt.tsValue(now), now);
  }

  /** Charges guest bytes this endpoint holds to `guest`'s budget from now on (the flow table does). */
  chargeTo(budget: ByteBudget, guest: number): void {
    this.rcv.chargeTo(budget, guest);
    this.budget = budget;
    this.budgetGuest = guest;
  }

  /** Gives back what is charged (the connection left the table). */
  uncharge(): void {
    this.rcv.uncharge();
    const k = this.sndCharged;
    this.sndCharged = 0;
    this.budget?.release(this.budgetGuest, k);
    this.budget = undefined;
  }

  private finSeq(): number {
    return seqAdd(this.bufSeq, this.sendBuf.length);
  }

  private synchronized(): boolean {
    return (
      this.state !== "listen" &&
      this.state !== "syn-sent" &&
      this.state !== "syn-received" &&
      this.state !== "closed"
    );
  }

  private dataStates(): boolean {
    return (
      this.state === "established" ||
      this.state === "close-wait" ||
      this.state === "fin-wait-1" ||
      this.state === "closing" ||
      this.state === "last-ack"
    );
  }

  private enterTimeWait(now: number): void {
    this.state = "time-wait";
    this.stopSending();
    this.timeWaitAt = now + this.o.timeWaitMs;
    this.ev.push({ type: "time-wait" });
  }

  /** Retransmission gave up (or FIN_WAIT_2 timed out): RST, `reset` ("timeout"), closed. */
  private giveUp(): void {
    this.emitRst(this.sndMax, this.rcvNxt, true);
    this.reset("timeout");
  }

  private reset(reason: TcpResetReason): void {
    this.ev.push({ type: "reset", reason });
    this.close();
  }

  private close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.stopSending();
    this.delackAt = undefined;
    this.timeWaitAt = undefined;
    this.ackNow = false;
    this.ooo.clear();
    this.ev.push({ type: "closed" });
  }

  /** Nothing more goes out but ACKs: the send buffer and its timers go. */
  private stopSending(): void {
    this.sendBuf.release();
    this.cc.stop();
    this.persistAt = undefined;
    this.finWait2At = undefined;
  }

  private step(): TcpStep {
    const s: TcpStep = { send: this.out, events: this.ev };
    this.out = [];
    this.ev = [];
    const d = earliest(
      earliest(earliest(this.cc.rtxAt, this.delackAt), earliest(this.persistAt, this.timeWaitAt)),
      this.finWait2At,
    );
    if (d !== undefined) s.deadline = d;
    return s;
  }
}

/** The earlier of two deadlines, either of which may be absent. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || (b !== undefined && b < a) ? b : a;
}

const EMPTY = Buffer.alloc(0);
