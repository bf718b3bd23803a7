/**
 * The receive window of one guest connection: how much of the guest's data we accept
 * and what window we advertise for it. Sans-I/O, no timers; the endpoint owns RCV.NXT
 * and passes it in.
 *
 * Theory of operation
 * -------------------
 * Receive buffer: delivered guest bytes count against `recvBufferSize` until the relay
 * `consume`s them (they are then on their way to the host): the window re-opens only
 * then, so a slow host stops the guest.
 *
 * Window edge: the right edge we advertised never moves left, and only moves right by at
 * least min(receive buffer / 2, MSS) (receiver SWS avoidance, RFC 1122 §4.2.3.3). A
 * `consume` is worth a window update of its own only when the open window had fallen
 * below half of what was offered (`updateIsUrgent`); otherwise the next segment we send
 * carries the new edge. While only the SYN or SYN-ACK has offered a window, its unscaled
 * (at most 64 KiB) field is that measure, not the whole buffer.
 *
 * Window scaling (RFC 7323): once the guest offered scaling we scale ours by the
 * negotiated shift (tcp-options.ts). A scaled window is rounded up to the scale's unit
 * (as Linux does), so up to 2^shift - 1 bytes beyond the receive buffer may be accepted;
 * with the default shift 7 that is under 128 bytes. The window in a SYN or SYN-ACK is
 * never scaled (at most 65,535).
 *
 * Buffer budget (guest-bounds.ts ByteBudget): when the flow table charges the
 * connection to its guest, delivered and unconsumed bytes are also charged to that
 * guest's budget, and the free space is also at most the budget's room, so a guest at
 * its budget is offered a zero window on every connection. It is a soft bound: a window
 * already advertised is honoured. The same budget also holds the host's bytes waiting
 * in the send buffer for the guest (tcp-endpoint.ts charges them), so a guest that
 * never reads what the host sends also gets a zero window, and the other way round.
 */
import type { ByteBudget } from "../guest-bounds.js";
import { seqAdd, seqGt, seqSub } from "../wire/seq.js";

export class ReceiveWindow {
  /** the right edge of the window we advertised last */
  adv = 0;
  /** our window scale shift (0 until the handshake negotiates one) */
  shift = 0;
  /** guest bytes delivered to the relay and not consumed yet */
  unconsumed = 0;
  /** the window our SYN or SYN-ACK offered, until a later segment offers a scaled one */
  private synWindow = 0;
  /** the budget `unconsumed` is charged to, its guest, and what is charged */
  private budget: ByteBudget | undefined;
  private budgetGuest = 0;
  private charged = 0;

  /**
   * @param bufferSize guest bytes in flight to the host (delivered, not consumed) plus the open window
   * @param mss the payload of a full-sized guest segment (changes when the handshake negotiates it)
   */
  constructor(
    readonly bufferSize: number,
    public mss: number,
  ) {}

  /** Free receive buffer: what the window may cover beyond RCV.NXT. */
  space(): number {
    const space = this.bufferSize - this.unconsumed;
    if (this.budget === undefined) return Math.max(0, space);
    return Math.max(0, Math.min(space, this.budget.room(this.budgetGuest)));
  }

  /** Charges delivered, unconsumed bytes to `guest`'s budget from now on (the flow table does). */
  chargeTo(budget: ByteBudget, guest: number): void {
    this.budget = budget;
    this.budgetGuest = guest;
  }

  /** Gives back what is charged (the connection left the table). */
  uncharge(): void {
    this.budget?.release(this.budgetGuest, this.charged);
    this.charged = 0;
    this.budget = undefined;
  }

  /** The window we may accept into beyond `rcvNxt` now (never left of what we advertised). */
  window(rcvNxt: number): number {
    return Math.max(this.space(), seqSub(this.adv, rcvNxt));
  }

  /** n guest bytes were delivered to the relay. */
  deliver(n: number): void {
    this.unconsumed += n;
    if (this.budget !== undefined) {
      this.budget.take(this.budgetGuest, n);
      this.charged += n;
    }
  }

  /** The relay passed n delivered bytes on to the host. */
  consume(n: number): void {
    this.unconsumed = Math.max(0, this.unconsumed - Math.max(0, n));
    if (this.charged > this.unconsumed) {
      this.budget?.release(this.budgetGuest, this.charged - this.unconsumed);
      this.charged = this.unconsumed;
    }
  }

  /** The window field of a SYN or SYN-ACK: never scaled. */
  synField(): number {
    return Math.min(0xffff, this.space());
  }

  /** The window a SYN-ACK offers (sent or received) beyond `rcvNxt`: the first advertised edge. */
  offerSyn(rcvNxt: number): number {
    const win = this.synField();
    this.adv = seqAdd(rcvNxt, win);
    this.synWindow = win;
    return win;
  }

  /** The window field for a non-SYN segment; moves the advertised edge (RFC 1122 §4.2.3.3). */
  advertise(rcvNxt: number): number {
    const edge = seqAdd(rcvNxt, this.space());
    let target = this.adv;
    if (seqSub(this.adv, rcvNxt) < 0) target = rcvNxt;
    if (seqSub(edge, target) >= this.swsThreshold()) target = edge;
    // Round up to the scale's unit, as Linux does: rounding down could shrink the window
    // already offered or hide a small one entirely; the cost is accepting up to 2^shift - 1
    // bytes beyond the receive buffer. (Shifts, not a division by 2 ** shift: this runs
    // for every segment sent.)
    const unit = (1 << this.shift) - 1;
    const win = Math.min(0xffff, (seqSub(target, rcvNxt) + unit) >>> this.shift);
    const adv = seqAdd(rcvNxt, win << this.shift);
    if (seqGt(adv, this.adv)) this.adv = adv;
    this.synWindow = 0;
    return win;
  }

  /** The window field a TIME_WAIT record answers with (see time-wait.ts). */
  scaledSpace(): number {
    return Math.min(0xffff, this.space() >>> this.shift);
  }

  /**
   * Whether buffer the host freed is worth a pure ACK of its own: the guest has used more
   * than half of the window it was offered, and the edge would move by at least the SWS
   * threshold. While only the SYN-ACK has offered a window, its unscaled (at most 64 KiB)
   * field is the measure, not the whole buffer: otherwise the first byte of every
   * request/response connection would look like a window worth announcing, and cost a
   * frame the response carries anyway.
   */
  updateIsUrgent(rcvNxt: number): boolean {
    const offered = this.synWindow > 0 ? this.synWindow : this.bufferSize;
    return seqSub(this.adv, rcvNxt) < offered / 2 && this.edgeWouldMove(rcvNxt);
  }

  private edgeWouldMove(rcvNxt: number): boolean {
    const edge = seqAdd(rcvNxt, this.space());
    return seqSub(edge, this.adv) >= this.swsThreshold();
  }

  private swsThreshold(): number {
    return Math.max(1, Math.min(Math.floor(this.bufferSize / 2), this.mss));
  }
}
