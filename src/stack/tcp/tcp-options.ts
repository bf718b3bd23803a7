/**
 * The TCP options one guest connection negotiated (the endpoint's part of them; the
 * bytes on the wire are wire/tcp.ts's business).
 *
 * Theory of operation
 * -------------------
 * Handshake: honours the guest's MSS (536 when absent, RFC 9293 §3.7.1), window scale
 * (RFC 7323: we scale ours by `windowScale`, 7 by default, only if the guest offered),
 * SACK-permitted and timestamps (we echo TSval; the endpoint measures RTT from TSecr).
 * `fromSyn` takes them from the guest's SYN (or SYN-ACK); `offer` puts ours on the SYN
 * or SYN-ACK we send: an active open offers everything enabled, a SYN-ACK only what the
 * guest's SYN did (RFC 7323, RFC 2018). The guest's window scale is clamped to 14 and
 * its MSS to ours (at least 64); the MSS we send with is the guest's less the timestamp
 * option (12 bytes) when timestamps are on, and so is the one we count the guest's
 * full-sized segments against.
 *
 * Timestamps: our clock is milliseconds from a random offset (RFC 7323 §5.4; the
 * endpoint draws the offset with its ISN). TS.Recent is taken from an acceptable segment
 * that covers the last ACK we sent (RFC 7323 §4.3) and echoed on everything we send.
 *
 * Not done: PAWS (RFC 7323 §5), TCP Fast Open, MD5 or AO signatures.
 */
import { seqLe } from "../wire/seq.js";
import type { TcpSegment } from "../wire/tcp.js";

/** bytes the timestamp option takes in every segment once negotiated */
export const TS_OPTION_BYTES = 12;
/** the MSS a guest that sends no MSS option gets (RFC 9293 §3.7.1) */
export const DEFAULT_GUEST_MSS = 536;
const MIN_MSS = 64;
export const MAX_WINDOW_SHIFT = 14;

/** What we enable and offer. */
export interface TcpOptionsOffer {
  /** MSS we advertise and the most we send (MTU - 40) */
  mss: number;
  /** our window scale shift when the guest offers scaling (0..14) */
  windowScale: number;
  sack: boolean;
  timestamps: boolean;
}

export class NegotiatedOptions {
  /** timestamps on both sides */
  ts = false;
  /** the guest offered window scaling (so our SYN-ACK offers it too) */
  ws = false;
  /** SACK permitted on both sides */
  sack = false;
  /** the guest's TSval to echo (TS.Recent) */
  tsRecent = 0;
  /** our timestamp clock's offset */
  tsOffset = 0;
  /** RCV.NXT as our last ACK carried it (for TS.Recent) */
  lastAckSent = 0;
  /** the largest payload we send the guest in one segment */
  sndMss = DEFAULT_GUEST_MSS;
  /** the guest's window scale shift */
  sndShift = 0;
  /** ours, 0 unless the guest offered scaling */
  rcvShift = 0;
  /** the payload of a full-sized guest segment (our MSS less the timestamp option) */
  rcvMss: number;

  constructor(private readonly o: TcpOptionsOffer) {
    this.rcvMss = o.mss;
  }

  /** Takes the options of the guest's SYN (or SYN-ACK). */
  fromSyn(seg: TcpSegment): void {
    const o = this.o;
    this.sack = o.sack && seg.sackPermitted === true;
    this.ts = o.timestamps && seg.tsVal !== undefined;
    if (this.ts) this.tsRecent = seg.tsVal ?? 0;
    this.ws = seg.windowScale !== undefined;
    if (seg.windowScale !== undefined) {
      this.sndShift = Math.min(MAX_WINDOW_SHIFT, seg.windowScale);
      this.rcvShift = o.windowScale;
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    const tsBytes = this.ts ? TS_OPTION_BYTES : 0;
    const guestMss = seg.mss === undefined || seg.mss === 0 ? DEFAULT_GUEST_MSS : seg.mss;
    this.sndMss = Math.max(MIN_MSS, Math.min(guestMss, o.mss)) - tsBytes;
    this.rcvMss = o.mss - tsBytes;
  }

  /** Puts our options on the SYN or SYN-ACK `seg`; `now` is the time of sending (ms). */
  offer(seg: TcpSegment, synAck: boolean, now: number): void {
    const o = this.o;
    seg.mss = o.mss;
    if (!synAck || this.ws) seg.windowScale = o.windowScale;
    if (synAck ? this.sack : o.sack) seg.sackPermitted = true;
    if (synAck ? this.ts : o.timestamps) {
      seg.tsVal = this.tsValue(now);
      seg.tsEcr = synAck ? this.tsRecent : 0;
    }
  }

  /** Takes the guest's TSval from an acceptable segment that covers our last ACK (RFC 7323 §4.3). */
  noteTsVal(seg: TcpSegment): void {
    if (this.ts && seg.tsVal !== undefined && seqLe(seg.seq, this.lastAckSent)) this.tsRecent = seg.tsVal;
  }

  /** Our timestamp clock at `now`: milliseconds from a random offset (RFC 7323 §5.4). */
  tsValue(now: number): number {
    return (this.tsOffset + Math.floor(now)) >>> 0;
  }
}
