/**
 * Retransmission and congestion control for one guest connection: the RTT samples, the
 * retransmission timer and when to give up, and the congestion window. Sans-I/O: the
 * endpoint tells it what was sent and acked and when, it answers with numbers and
 * verdicts (retransmit now, give up); the endpoint sends the segments.
 *
 * Theory of operation
 * -------------------
 * RTO: RFC 6298 (see rto.ts: initial 1 s, min 200 ms like Linux, max 60 s), samples
 * from timestamps when negotiated (except echoes of TSvals older than our last
 * retransmission, which may span a lost ACK's timeout), else one timed segment at a time
 * under Karn's rule (a retransmission cancels the timing); doubling on each timeout, the
 * timer restarted when new data is acked.
 *
 * Congestion control per RFC 5681: initial window 10 MSS (RFC 6928); slow start counts
 * every byte acked, as Linux does (RFC 3465 without its limit L: ACKs of super frames are
 * stretch ACKs); congestion avoidance adds about one MSS per window. Fast retransmit on
 * the third duplicate ACK, then NewReno recovery (RFC 6582: a partial ACK retransmits the
 * next hole at once and the timer restarts; a third duplicate for data sent before the
 * last recovery is not a new loss, §4.1). On timeout: ssthresh halves the flight (only
 * for the first timeout of a loss, RFC 5681 §3.1 eq. 4), cwnd = 1 MSS, and the endpoint
 * goes back to SND.UNA.
 *
 * Giving up: after `maxRetransmits` (15) timeouts without progress, or `userTimeoutMs`
 * (120 s) since the first of them; a SYN or SYN-ACK after `synRetries` (5). The endpoint
 * then sends RST and reports `reset` ("timeout").
 *
 * Not done: SACK-based loss recovery (RFC 6675: the guest's SACK blocks are not used to
 * skip retransmissions), D-SACK, ECN, pacing.
 */
import { seqGe, seqGt, seqSub } from "../wire/seq.js";
import { RtoEstimator, type RtoOptions } from "./rto.js";

export interface CongestionOptions extends RtoOptions {
  /** RTO expirations without progress before giving up */
  maxRetransmits: number;
  /** give up this long after the first unanswered retransmission (ms) */
  userTimeoutMs: number;
  /** SYN / SYN-ACK retransmissions before giving up */
  synRetries: number;
  /** initial congestion window in segments (RFC 6928) */
  initialWindowSegments: number;
}

export class Congestion {
  /** the congestion window (bytes) */
  cwnd = 0;
  /** the slow start threshold (bytes) */
  ssthresh = 0x3fffffff;
  /** when the retransmission timer fires (ms), undefined while it is stopped */
  rtxAt: number | undefined;
  readonly rtt: RtoEstimator;
  private dupAcks = 0;
  private inRecovery = false;
  /** SND.MAX when the last recovery began (RFC 6582 "recover") */
  private recover = 0;
  /** timeouts without progress */
  private retries = 0;
  private firstRetransmitAt: number | undefined;
  /** the end of the segment timed for an RTT sample (without timestamps), and its send time */
  private rttSeq: number | undefined;
  private rttStart = 0;
  /** our TSval when we last retransmitted anything */
  private lastRetransmitTs: number | undefined;

  constructor(private readonly o: CongestionOptions) {
    this.rtt = new RtoEstimator(o);
  }

  /** The current retransmission timeout (ms). */
  get rto(): number {
    return this.rtt.rto;
  }

  /** Our initial sequence number is chosen: no recovery has covered anything yet. */
  start(iss: number): void {
    this.recover = iss;
  }

  /** The handshake completed: the initial window (RFC 6928). */
  establish(mss: number): void {
    this.cwnd = this.o.initialWindowSegments * mss;
  }

  // ---- the retransmission timer ----

  /** Starts the timer unless it runs. */
  arm(now: number): void {
    this.rtxAt ??= now + this.rtt.rto;
  }

  /** Starts the timer afresh. */
  restart(now: number): void {
    this.rtxAt = now + this.rtt.rto;
  }

  stop(): void {
    this.rtxAt = undefined;
  }

  /**
   * A segment ending at `end` went out (`tsNow`: our TSval then). A retransmission
   * cancels the timed segment (Karn) and marks timestamps echoed from before it; without
   * timestamps (`timed`), a new segment is timed if none is.
   */
  sent(end: number, retransmission: boolean, timed: boolean, tsNow: number, now: number): void {
    if (retransmission) {
      this.rttSeq = undefined;
      this.lastRetransmitTs = tsNow;
    } else if (this.rttSeq === undefined && timed) {
      this.rttSeq = end;
      this.rttStart = now;
    }
  }

  /** A new retransmission of the segment at SND.UNA: nothing in flight is timed any more. */
  untime(): void {
    this.rttSeq = undefined;
  }

  /**
   * An acceptable ACK arrived: an RTT sample from its echoed timestamp (`tsEcr`,
   * undefined without timestamps; `tsNow` our TSval now), else from the timed segment.
   */
  sampleAck(ack: number, tsEcr: number | undefined, tsNow: number, now: number): void {
    if (tsEcr !== undefined && tsEcr !== 0) {
      // Karn's rule for timestamps: an echo from before our last retransmission may
      // span the timeout (the guest's ACK of the original was lost), so it is no sample.
      if (this.lastRetransmitTs !== undefined && seqSub(tsEcr, this.lastRetransmitTs) < 0) return;
      const r = seqSub(tsNow, tsEcr);
      if (r >= 0 && r <= this.o.maxRto * 2) this.rtt.sample(r);
      return;
    }
    if (this.rttSeq !== undefined && seqGe(ack, this.rttSeq)) {
      this.rtt.sample(now - this.rttStart);
      this.rttSeq = undefined;
    }
  }

  /** Our SYN or SYN-ACK was acked: the retries were the handshake's. */
  synAcked(): void {
    this.retries = 0;
    this.rtxAt = undefined;
  }

  /**
   * `acked` new bytes up to `ack` with `flight` bytes in flight before it; `mss` is the
   * send MSS. True when a partial ACK in recovery wants the next hole retransmitted now.
   * The caller restarts or stops the timer.
   */
  newAck(acked: number, flight: number, ack: number, mss: number): boolean {
    let partial = false;
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.cwnd = Math.min(this.ssthresh, Math.max(flight - acked, mss) + mss);
      } else {
        // NewReno partial ACK (RFC 6582 §3.2 step 3)
        partial = true;
        this.cwnd = Math.max(mss, this.cwnd - acked + (acked >= mss ? mss : 0));
      }
    } else if (this.cwnd < this.ssthresh) {
      // every byte acked counts, as in Linux: an offloading guest acks super frames
      // (64 KiB at a time), and one MSS per ACK would keep the window small for long
      this.cwnd += acked;
    } else {
      this.cwnd += Math.max(1, Math.floor((mss * mss) / this.cwnd));
    }
    this.dupAcks = 0;
    this.retries = 0;
    this.firstRetransmitAt = undefined;
    return partial;
  }

  /** A duplicate ACK at `sndUna`; true when it is the third, for a new loss: fast retransmit now. */
  dupAck(sndUna: number, sndMax: number, mss: number): boolean {
    this.dupAcks++;
    if (this.dupAcks === 3 && !this.inRecovery && seqGt(sndUna, this.recover)) {
      // fast retransmit (RFC 5681 §3.2, RFC 6582 §3.2 step 2)
      this.halve(seqSub(sndMax, sndUna), mss);
      this.recover = sndMax;
      this.inRecovery = true;
      this.cwnd = this.ssthresh + 3 * mss;
      return true;
    }
    // a third duplicate for data sent before the last recovery is not a new loss (RFC 6582 §4.1)
    if (this.dupAcks > 3 && this.inRecovery) this.cwnd += mss;
    return false;
  }

  /**
   * The timer fired for a SYN or SYN-ACK (`syn`) or data with `flight` bytes out to
   * `sndMax`. True: give up. Otherwise the RTO is backed off and the window collapsed;
   * the caller goes back to SND.UNA.
   */
  timeout(now: number, syn: boolean, flight: number, sndMax: number, mss: number): boolean {
    this.rtxAt = undefined;
    this.retries++;
    this.rttSeq = undefined;
    if (syn) {
      if (this.retries > this.o.synRetries) return true;
      this.rtt.backoff();
      return false;
    }
    this.firstRetransmitAt ??= now;
    if (this.retries > this.o.maxRetransmits || now - this.firstRetransmitAt >= this.o.userTimeoutMs)
      return true;
    // RFC 5681 §3.1 eq. 4 (only for the first timeout of a loss), RFC 6298 §5.5-5.6
    if (this.retries === 1) this.halve(flight, mss);
    this.cwnd = mss;
    this.inRecovery = false;
    this.recover = sndMax;
    this.dupAcks = 0;
    this.rtt.backoff();
    return false;
  }

  /** The RTO backed off `n` more times, within maxRto (the persist timer's interval). */
  backedOff(n: number): number {
    return Math.min(this.o.maxRto, this.rtt.rto * 2 ** n);
  }

  private halve(flight: number, mss: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
  }
}
